"""Console session storage in Redis that degrades instead of failing mid-response.

Litestar writes the session while sending the response; an error there can no longer
become a clean status code. Reads fail before the response (a 503 through the
handlers); writes and deletes during a Redis outage are logged and dropped, so the
worst case is being asked to sign in again.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from litestar.stores.redis import RedisStore
from redis.exceptions import RedisError

log = structlog.get_logger("posturio.sessions")


class ConsoleSessionStore(RedisStore):
    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        try:
            await super().set(key, value, expires_in)
        except RedisError as exc:
            log.error("session_not_saved", error=type(exc).__name__)

    async def delete(self, key: str) -> None:
        try:
            await super().delete(key)
        except RedisError as exc:
            log.warning("session_not_deleted", error=type(exc).__name__)
