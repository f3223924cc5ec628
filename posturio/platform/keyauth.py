"""API key authentication for the hot path: an in-process cache in front of Postgres.

A hit costs one hash and a dict lookup. Entries live `ttl` seconds; a revocation is
broadcast on Redis and drops the entry in every process at once. Last-use times are
written by a background job at most once a minute per key, never inline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from litestar.datastructures import Headers
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.platform.errors import Unauthorized
from posturio.platform.keys import KEY_INVALIDATION_CHANNEL
from posturio.platform.security import secret_matches, split_api_key

log = structlog.get_logger("posturio.keyauth")
LAST_USED_GRANULARITY_S = 60.0


@dataclass(slots=True)
class CachedKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    prefix: str
    secret_hash: bytes
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    loaded_at: float


def token_from_headers(headers: Headers) -> str | None:
    """OpenAI-style `Authorization: Bearer`, or Azure's `api-key`, or `x-api-key`."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return headers.get("api-key") or headers.get("x-api-key")


class KeyAuthenticator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float,
        max_entries: int = 20_000,
        on_used: Callable[[CachedKey, datetime], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl_s
        self._max = max_entries
        self._cache: OrderedDict[str, CachedKey] = OrderedDict()
        self._on_used = on_used

    async def authenticate(self, token: str | None) -> CachedKey:
        if not token:
            raise Unauthorized("missing API key (send Authorization: Bearer <key>)")
        parts = split_api_key(token)
        if parts is None:
            raise Unauthorized("invalid API key")
        prefix, secret = parts
        key = await self._lookup(prefix)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise Unauthorized("invalid API key")
        now = datetime.now(UTC)
        if key.revoked_at is not None:
            raise Unauthorized("this API key has been revoked", code="key_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthorized("this API key has expired", code="key_expired")
        self._note_use(key, now)
        return key

    async def _lookup(self, prefix: str) -> CachedKey | None:
        entry = self._cache.get(prefix)
        if entry is not None and time.monotonic() - entry.loaded_at < self._ttl:
            self._cache.move_to_end(prefix)
            return entry
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    text("SELECT * FROM posturio_api_key_by_prefix(:p)"), {"p": prefix}
                )
            ).first()
        if row is None:
            self._cache.pop(prefix, None)
            return None
        entry = CachedKey(
            id=row.id,
            tenant_id=row.tenant_id,
            prefix=prefix,
            secret_hash=bytes(row.secret_hash),
            scopes=frozenset(row.scopes),
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            loaded_at=time.monotonic(),
        )
        self._cache[prefix] = entry
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return entry

    def _note_use(self, key: CachedKey, now: datetime) -> None:
        if (
            key.last_used_at is not None
            and (now - key.last_used_at).total_seconds() < LAST_USED_GRANULARITY_S
        ):
            return
        key.last_used_at = now
        if self._on_used is not None:
            try:
                self._on_used(key, now)
            except Exception as exc:
                log.warning("last_used_not_recorded", key=key.prefix, error=str(exc))

    def invalidate(self, prefix: str | None = None) -> None:
        if prefix is None:
            self._cache.clear()
        else:
            self._cache.pop(prefix, None)

    async def listen_for_invalidations(self, redis: Redis) -> None:
        """Run for the app's lifetime; reconnects if Redis goes away."""
        while True:
            try:
                pubsub = redis.pubsub()
                await pubsub.subscribe(KEY_INVALIDATION_CHANNEL)
                # A message may have been missed while (re)connecting: start clean.
                self.invalidate()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.invalidate(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("key_invalidation_listener_error", error=str(exc))
                self.invalidate()
                await asyncio.sleep(1.0)


async def broadcast_revocation(redis: Redis, prefix: str) -> None:
    await redis.publish(KEY_INVALIDATION_CHANNEL, prefix)
