"""Per-process resources for actors: settings, database sessions, Redis.

Created lazily inside the worker's event loop (dramatiq's AsyncIO middleware runs every
async actor on one loop thread), so connections belong to the loop that uses them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from posturio.config import Settings, get_settings
from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
from posturio.platform.redis import create_redis


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis


_resources: Resources | None = None


def resources() -> Resources:
    global _resources
    if _resources is None:
        settings = get_settings()
        engine = create_engine(settings)
        _resources = Resources(
            settings, engine, create_sessionmaker(engine), create_redis(settings)
        )
    return _resources


@asynccontextmanager
async def unit_of_work(tenant_id: uuid.UUID | str | None) -> AsyncIterator[AsyncSession]:
    tid = uuid.UUID(str(tenant_id)) if tenant_id is not None else None
    async with tenant_session(resources().sessionmaker, tid) as session:
        yield session
