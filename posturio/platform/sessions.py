"""Console sessions: stored server-side in Redis, the id issued by the server only.

Litestar's server-side backend keeps whatever id the browser's cookie names, so an id an
attacker planted before sign-in would carry the signed-in session (fixation). Here a
cookie id the store does not know is never adopted, and `begin` gives the session a new
id (the old one deleted) at every sign-in and privilege change.

Litestar writes the session while sending the response; an error there can no longer
become a clean status code. Reads fail before the response (a 503 through the
handlers); writes and deletes during a Redis outage are logged and dropped, so the
worst case is being asked to sign in again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.redis import RedisStore
from litestar.types import Message, ScopeSession
from redis.exceptions import RedisError

log = structlog.get_logger("posturio.sessions")

COOKIE = "posturio_session"
SESSION_ID_BYTES = 32

# Per-request markers in the ASGI scope (shared by the handler and the middleware).
_NEW_ID = "posturio_session_new_id"
_DROP_ID = "posturio_session_drop_id"


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


def _markers(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    return connection.scope.setdefault("state", {})


class ConsoleSessionBackend(ServerSideSessionBackend):
    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        session_id = connection.cookies.get(self.config.key)
        if not session_id or session_id == "null":
            return {}
        store = self.config.get_store_from_app(connection.scope["app"])
        data = await self.get(session_id, store=store)
        if data is None:
            # An id this server did not issue (or one that expired): never adopted.
            _markers(connection)[_NEW_ID] = self.generate_session_id()
            return {}
        return self.deserialize_data(data)

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        return _markers(connection).get(_NEW_ID) or super().get_session_id(connection)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        dropped = _markers(connection).get(_DROP_ID)
        if dropped:
            await self.delete(
                dropped, store=self.config.get_store_from_app(connection.scope["app"])
            )
        await super().store_in_message(scope_session, message, connection)


@dataclass
class ConsoleSessionConfig(ServerSideSessionConfig):
    _backend_class = ConsoleSessionBackend
    key: str = COOKIE
    session_id_bytes: int = SESSION_ID_BYTES


def begin(request: ASGIConnection[Any, Any, Any, Any], data: dict[str, Any]) -> None:
    """Replace the session with `data` under a new id; the old id stops working. Call at
    sign-in and whenever the session's privileges change (tenant switch)."""
    markers = _markers(request)
    old = request.cookies.get(COOKIE)
    if old and old != "null":
        markers[_DROP_ID] = old
    markers[_NEW_ID] = secrets.token_hex(SESSION_ID_BYTES)
    request.set_session(data)
