"""Per-tenant configuration cached in process for the hot path (routes, policy): loaded
once per TTL, one load per tenant at a time however many requests wait, and dropped at
once when a change is published (see invalidation)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.platform.db import tenant_session
from posturio.platform.dependencies import after_commit
from posturio.platform.invalidation import publish

T = TypeVar("T")
Loader = Callable[[AsyncSession, uuid.UUID], Awaitable[T]]


class TenantCache(Generic[T]):
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        loader: Loader[T],
        *,
        ttl_s: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._loader = loader
        self._ttl = ttl_s
        self._entries: dict[uuid.UUID, tuple[float, T]] = {}
        self._loading: dict[uuid.UUID, asyncio.Future[T]] = {}

    async def get(self, tenant_id: uuid.UUID) -> T:
        entry = self._entries.get(tenant_id)
        if entry is not None and time.monotonic() - entry[0] < self._ttl:
            return entry[1]
        pending = self._loading.get(tenant_id)
        if pending is not None:  # one load per tenant at a time, shared by all waiters
            return await pending
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        try:
            async with tenant_session(self._sessionmaker, tenant_id) as session:
                value = await self._loader(session, tenant_id)
            self._entries[tenant_id] = (time.monotonic(), value)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        finally:
            del self._loading[tenant_id]

    def invalidate(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            self._entries.clear()
        else:
            self._entries.pop(uuid.UUID(tenant_id), None)


def invalidate_after_commit(
    db: AsyncSession, redis: Redis, cache: TenantCache[Any], channel: str, tenant_id: uuid.UUID
) -> None:
    """Once the change is committed: drop this process's copy and tell every other one."""

    async def publish_change() -> None:
        cache.invalidate(str(tenant_id))
        await publish(redis, channel, str(tenant_id))

    after_commit(db, publish_change)
