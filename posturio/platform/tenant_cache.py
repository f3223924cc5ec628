"""Per-tenant configuration cached in process for the hot path (routes, policy): loaded
once per TTL, one load per tenant at a time however many requests wait, and dropped at
once when a change is published (see invalidation). Without Postgres, a tenant's last
copy keeps serving for up to STALE_IF_ERROR_S past its TTL (changes still drop it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.platform.db import (
    DB_RETRY_AFTER_S,
    STALE_IF_ERROR_S,
    after_commit,
    database_unreachable,
    tenant_session,
)
from posturio.platform.invalidation import publish

log = structlog.get_logger("posturio.tenant_cache")
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
        # While the database is known to be down, stale copies are served without trying
        # it on every request.
        self._db_retry_at = 0.0

    async def get(self, tenant_id: uuid.UUID) -> T:
        now = time.monotonic()
        entry = self._entries.get(tenant_id)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        stale = entry is not None and now - entry[0] < self._ttl + STALE_IF_ERROR_S
        if entry is not None and stale and now < self._db_retry_at:  # known down: no wait
            return entry[1]
        pending = self._loading.get(tenant_id)
        if pending is not None:  # one load per tenant at a time, shared by all waiters
            return await pending
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._loading[tenant_id] = future
        try:
            try:
                async with tenant_session(self._sessionmaker, tenant_id) as session:
                    value = await self._loader(session, tenant_id)
                self._entries[tenant_id] = (time.monotonic(), value)
            except Exception as exc:
                if entry is None or not stale or not database_unreachable(exc):
                    raise
                self._db_retry_at = now + DB_RETRY_AFTER_S
                log.warning("served_stale", tenant=str(tenant_id), error=type(exc).__name__)
                value = entry[1]
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
