"""The browser playground: a signed-in user chats through the gateway's own request path
(inspection, policy, routing, limits, metering) as their playground key, and sees for each
reply what the gateway did: decision, route, findings with masked previews, tokens and
latency.

The console session is the credential here (with its CSRF token), so the page never holds
an API key; requests are metered and limited as the user's playground key — the demo key
for a signup, else a key made for the user on first use."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, asgi, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from litestar.types import HTTPScope
from litestar.types import Receive as LitestarReceive
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.asgi import Receive, Send, chat_completions, serve
from posturio.gateway.errors import GatewayError
from posturio.gateway.pipeline import Call, Gateway
from posturio.platform import accounts, keys
from posturio.platform.db import tenant_session
from posturio.platform.dependencies import Caller, Db, provide_console_principal, provide_db
from posturio.platform.errors import PosturioError, Unauthorized
from posturio.platform.logging import current_request_id, new_request_id
from posturio.platform.models import ApiKey, Scope, User
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped

PLAYGROUND_KEY = "playground"
SESSION_KEY = "playground_key"  # the key's prefix, in the server-side session


class PasswordForm(msgspec.Struct):
    password: str = ""


async def playground_key(session: AsyncSession, principal: Principal) -> ApiKey:
    """The user's usable playground key, made on first use."""
    rows = await session.scalars(
        scoped(ApiKey, principal.tenant_id).where(
            ApiKey.created_by == principal.user_id,
            ApiKey.name.in_(("demo", PLAYGROUND_KEY)),
            ApiKey.revoked_at.is_(None),
        )
    )
    usable = [k for k in rows.all() if keys.key_status(k) == "active"]
    if usable:
        return max(usable, key=lambda k: k.created_at)
    created = await keys.create_key(
        session, principal, name=PLAYGROUND_KEY, scopes=[Scope.gateway.value]
    )
    return created.key


def _login_redirect(request: Request, exc: Unauthorized) -> Redirect:
    return Redirect("/login?next=/playground", status_code=303)


class PlaygroundPage(Controller):
    path = "/playground"
    include_in_schema = False
    dependencies = {"db": Provide(provide_db), "principal": Provide(provide_console_principal)}
    exception_handlers = {Unauthorized: _login_redirect}

    @get("/")
    async def page(self, request: Request, db: Db, principal: Caller) -> Template:
        app = request.app
        gateway: Gateway = app.state.gateway
        async with tenant_session(app.state.sessionmaker, principal.tenant_id) as session:
            key = await playground_key(session, principal)
        request.set_session({**request.session, SESSION_KEY: key.prefix})
        cached = await app.state.key_authenticator.for_session(key.prefix, principal.tenant_id)
        tier = gateway.tiers.get(cached.plan) or gateway.tiers["standard"]
        table = await gateway.routes.get(principal.tenant_id)
        chat = [r.alias for r in table.aliases() if r.kind == "chat"]
        models = [
            alias
            for alias in [*chat, *gateway.virtual_models]
            if (tier.models is None or alias in tier.models)
            and (key.allowed_models is None or alias in key.allowed_models)
        ]
        user = await db.get(User, principal.user_id)
        return Template(
            "playground.html",
            context={
                "signed_in": True,
                "email": user.email if user else "",
                "has_password": bool(user and user.password_hash),
                "models": models,
                "key": key,
                "tier": tier,
                "usage": await gateway.limiter.today(str(key.id)),
            },
        )

    @post("/password", status_code=303)
    async def set_password(
        self,
        db: Db,
        principal: Caller,
        data: Annotated[PasswordForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        user = await db.get(User, principal.user_id)
        if user is None:
            raise Unauthorized("sign in first")
        await accounts.set_password(db, user, data.password)
        return Redirect("/playground?password=set", status_code=303)


class _MetadataSend:
    """Wraps `send` so the page gets the gateway's metadata with the answer: a final
    `event: posturio` on a stream, or `{"response", "posturio"}` around a JSON body."""

    def __init__(self, send: Send, call: Call) -> None:
        self._send = send
        self._call = call
        self._start: dict[str, Any] | None = None
        self._stream = False
        self._json: list[bytes] = []

    def meta(self) -> dict[str, Any]:
        c = self._call
        return {
            "request_id": c.request_id,
            "status": c.status,
            "decision": c.decision,
            "output_decision": c.output_decision,
            "policy": c.policy.label if c.policy else None,
            "route": c.target.label if c.target else None,
            "attempts": c.attempts,
            "findings": c.hits or [],
            "usage": {
                "prompt_tokens": c.usage.prompt_tokens or c.prompt_estimate,
                "completion_tokens": c.usage.completion_tokens,
                "estimated": c.usage.estimated,
            },
            "overhead_ms": round(c.overhead(), 3),
        }

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers") or [])
            self._stream = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            self._start = message
            if self._stream:
                await self._send(message)
            return
        if self._stream:
            if not message.get("more_body"):
                event = b"event: posturio\ndata: " + msgspec.json.encode(self.meta()) + b"\n\n"
                await self._send({"type": "http.response.body", "body": event, "more_body": True})
            await self._send(message)
            return
        self._json.append(message.get("body", b""))
        if not message.get("more_body"):
            assert self._start is not None
            self._call.status = self._start["status"]
            body = msgspec.json.encode(
                {"response": msgspec.json.decode(b"".join(self._json)), "posturio": self.meta()}
            )
            await self._send(self._start)
            await self._send({"type": "http.response.body", "body": body})


@asgi("/playground/chat", include_in_schema=False, copy_scope=False)
async def playground_chat(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    app = scope["app"]
    gateway: Gateway = app.state.gateway
    call = Call(request_id=current_request_id() or new_request_id(), endpoint="chat.completions")
    wrapped = _MetadataSend(send, call)

    async def authenticate(call: Call) -> None:
        await session_key(scope, receive, call)

    await serve(gateway, call, scope, receive, wrapped, chat_completions, authenticate)


async def session_key(scope: dict[str, Any], receive: Receive, call: Call) -> None:
    """Authenticate a browser's POST as its console session's playground key (the page
    that made the key put its prefix in the session); the CSRF middleware has already
    checked the token."""
    app = scope["app"]
    if scope["method"] != "POST":
        raise GatewayError(405, "use POST", code="method_not_allowed")
    # The gateway's raw ASGI callables are typed as plain dicts; they are Litestar's.
    request: Request[Any, Any, Any] = Request(
        cast(HTTPScope, scope), cast(LitestarReceive, receive)
    )
    session = request.session if scope.get("session") is not None else {}
    user_id, tenant_id, prefix = (session.get(k) for k in ("user_id", "tenant_id", SESSION_KEY))
    if not (user_id and tenant_id and prefix):
        raise GatewayError(401, "sign in and open the page again", code="login_required")
    async with app.state.sessionmaker() as db:
        access = await accounts.memberships_of(db, uuid.UUID(user_id))
    if not any(str(a.tenant_id) == tenant_id for a in access):
        raise GatewayError(401, "your membership has ended", code="login_required")
    try:
        call.key = await app.state.key_authenticator.for_session(prefix, uuid.UUID(tenant_id))
    except PosturioError as exc:
        raise GatewayError(401, exc.message, code=exc.code) from None
