"""Console sessions: stored server-side in Redis, the id issued by the server only.

Litestar's server-side backend keeps whatever id the browser's cookie names, so an id an
attacker planted before sign-in would carry the signed-in session (fixation). Here a
cookie id the store does not know is never adopted, and `begin` gives the session a new
id (the old one deleted) at every sign-in and privilege change. Each signed-in id is noted
under its user, so deprovisioning (SCIM) can end a person's sessions in a tenant at once.

Litestar writes the session while sending the response; an error there can no longer
become a clean status code. Reads fail before the response (a 503 through the
handlers); writes and deletes during a Redis outage are logged and dropped, so the
worst case is being asked to sign in again.
"""

from __future__ import annotations

import json
import secrets
import uuid
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

    def _index(self, user_id: str) -> str:
        # Beside the namespace, not in it: a cookie can never name the index as a session.
        return f"{self.namespace}-of-user:{user_id}"

    async def remember(self, user_id: str, session_id: str, expires_in: int) -> None:
        """Note a signed-in session under its user, so it can be ended from elsewhere."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self._index(user_id), session_id)
                pipe.expire(self._index(user_id), expires_in)
                await pipe.execute()
        except RedisError as exc:
            log.warning("session_not_indexed", error=type(exc).__name__)

    async def end_sessions(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
        """Delete the user's console sessions in `tenant_id` (their sessions in other
        tenants are not this tenant's to end); how many were ended."""
        index = self._index(str(user_id))
        ended = 0
        for raw in await self._redis.smembers(index):
            session_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            data = await self.get(session_id)
            if data is not None and json.loads(data).get("tenant_id") != str(tenant_id):
                continue
            await self._redis.delete(self._make_key(session_id))
            await self._redis.srem(index, session_id)
            ended += data is not None
        return ended


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
        store = self.config.get_store_from_app(connection.scope["app"])
        dropped = _markers(connection).get(_DROP_ID)
        if dropped:
            await self.delete(dropped, store=store)
        await super().store_in_message(scope_session, message, connection)
        new_id = _markers(connection).get(_NEW_ID)
        user_id = scope_session.get("user_id") if isinstance(scope_session, dict) else None
        if new_id and user_id and isinstance(store, ConsoleSessionStore):
            await store.remember(str(user_id), new_id, int(self.config.max_age))


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
