"""Alembic environment: async engine, connecting as the schema owner."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from posturio.config import get_settings
from posturio.gateway import models as gateway_models  # noqa: F401 - registers tables
from posturio.platform import models  # noqa: F401 - registers the tables on the metadata
from posturio.platform.db import Base, create_engine

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    settings = context.config.attributes.get("settings") or get_settings()
    engine = create_engine(settings, as_owner=True)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `posturio migrate`")
asyncio.run(_run_async())
