"""The /v1 API as a plain ASGI application: the gateway's hot path.

Why not Litestar handlers here: measured on these 2 cores (bench/gateway.py), a Litestar
route with the app's middleware stack cost about 0.7 ms of CPU per proxied request, the
gateway's own work about 0.1 ms, and the upstream call itself 0.2 ms. Everything else the
product serves stays on Litestar; /v1 is dispatched here first (see posturio.app).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import structlog
from litestar import Litestar
from prometheus_client import Histogram

from posturio.gateway.errors import GatewayError
from posturio.gateway.inspection.segments import chat_segments, embeddings_segments
from posturio.gateway.pipeline import Call, Gateway, Send, estimate_chat, estimate_inputs
from posturio.platform.db import DB_RETRY_AFTER_S, database_unreachable
from posturio.platform.keyauth import bearer_or_key
from posturio.platform.logging import REQUEST_ID_HEADER, current_request_id, new_request_id

log = structlog.get_logger("posturio.access")
latency = Histogram(
    "posturio_gateway_request_seconds",
    "Gateway requests by endpoint and status",
    ["endpoint", "status"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
)

Receive = Callable[[], Awaitable[dict[str, Any]]]
JSON = [(b"content-type", b"application/json")]
SSE = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` (before reading it all)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def response_headers(
    call: Call, base: list[tuple[bytes, bytes]], extra: dict[str, str] | None = None
) -> list[tuple[bytes, bytes]]:
    pairs = [*base, (REQUEST_ID_HEADER, call.request_id.encode())]
    pairs += [(k.encode(), v.encode()) for k, v in call.headers().items()]
    if extra:
        pairs += [(k.encode(), v.encode()) for k, v in extra.items()]
    return pairs


async def send_json(
    send: Send, call: Call, status: int, body: bytes, extra: dict[str, str] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": response_headers(call, JSON, extra),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, call: Call, exc: GatewayError) -> None:
    call.status, call.error_code = exc.status, exc.code
    extra = {"retry-after": str(int(max(1, exc.retry_after)))} if exc.retry_after else None
    await send_json(send, call, exc.status, msgspec.json.encode(exc.body(call.request_id)), extra)


def _unhandled(call: Call, exc: Exception) -> GatewayError:
    """A dependency outage is a 503 to retry (README: without Postgres); anything else a 500."""
    if database_unreachable(exc):
        log.warning("gateway_database_unavailable", request_id=call.request_id)
        return GatewayError(
            503,
            "the database is unavailable, try again shortly",
            code="service_unavailable",
            retry_after=DB_RETRY_AFTER_S,
        )
    log.exception("gateway_unhandled_error", request_id=call.request_id)
    return GatewayError(500, "internal error", code="server_error")


async def chat_completions(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    payload, shape = gateway.chat_request(body)
    call.stream = shape.stream
    virtual = gateway.virtual_models.get(shape.model)
    if virtual is not None:  # a model served by a component, e.g. Navigator's answers
        await virtual(gateway, call, payload, shape, send)
        return
    route = await gateway.resolve(call, shape.model, "chat")
    call.prompt_estimate = estimate_chat(payload)
    asked = shape.max_completion_tokens or shape.max_tokens
    gateway.check_size(call, len(shape.messages), call.prompt_estimate, asked)
    route = await gateway.inspect_input(call, route, chat_segments(payload))
    max_out = asked or gateway.tier(call).max_output_tokens or 1024
    await gateway.admit(call, route, call.prompt_estimate, max_out * shape.n)
    if shape.stream:
        include_usage = bool((shape.stream_options or {}).get("include_usage"))
        stream = await gateway.open_stream(call, route, payload, include_usage)
        await send(
            {"type": "http.response.start", "status": 200, "headers": response_headers(call, SSE)}
        )
        chunks: AsyncIterator[bytes] = gateway.relay(call, stream, gateway.stream_guard(call))
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    result = await gateway.complete(call, route, payload)
    await send_json(send, call, 200, msgspec.json.encode(result.body))


async def embeddings(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    payload, shape = gateway.embeddings_request(body)
    route = await gateway.resolve(call, shape.model, "embeddings")
    call.prompt_estimate = estimate_inputs(shape.input)
    gateway.check_size(call, 0, call.prompt_estimate, None)
    route = await gateway.inspect_input(call, route, embeddings_segments(payload))
    await gateway.admit(call, route, call.prompt_estimate, 0)
    result = await gateway.embed(call, route, payload)
    await send_json(send, call, 200, msgspec.json.encode(result.body))


async def models(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    assert call.key is not None
    table = await gateway.routes.get(call.key.tenant_id)
    created = int(time.time())
    allowed = call.key.allowed_models
    tier_models = gateway.tier(call).models
    data = [
        {
            "id": r.alias,
            "object": "model",
            "created": created,
            "owned_by": "posturio",
            "kind": r.kind,
        }
        for r in table.aliases()
        if (allowed is None or r.alias in allowed)
        and (tier_models is None or r.alias in tier_models)
    ]
    data += [
        {"id": alias, "object": "model", "created": created, "owned_by": "posturio", "kind": "chat"}
        for alias in gateway.virtual_models
        if (allowed is None or alias in allowed) and (tier_models is None or alias in tier_models)
    ]
    call.key = None  # a listing is not metered
    await send_json(send, call, 200, msgspec.json.encode({"object": "list", "data": data}))


Handler = Callable[[Gateway, Call, bytes, Send], Awaitable[None]]
ROUTES: dict[str, tuple[str, str, Handler]] = {
    "/chat/completions": ("POST", "chat.completions", chat_completions),
    "/embeddings": ("POST", "embeddings", embeddings),
    "/models": ("GET", "models", models),
}


def scope_token(scope: dict[str, Any]) -> str | None:
    # Straight from the raw headers: no Headers object on the hot path.
    auth = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            auth = value.decode("latin-1")
        elif name in (b"api-key", b"x-api-key") and api_key is None:
            api_key = value.decode("latin-1")
    return bearer_or_key(auth, api_key)


Authenticate = Callable[[Call], Awaitable[None]]


async def serve(
    gateway: Gateway,
    call: Call,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    handler: Handler,
    authenticate: Authenticate,
) -> None:
    """One request through the gateway, however it was authenticated (an API key on /v1,
    a console session in the playground): body limits, errors, metering, access log."""
    method = scope["method"]
    try:
        await authenticate(call)
        client = scope.get("client")
        call.client_ip = client[0] if client else None
        body = b""
        if method == "POST":
            limit = gateway.tier(call).max_body_bytes
            timeout = gateway.settings.body_read_timeout_s
            try:
                async with asyncio.timeout(timeout):
                    body = await read_body(receive, limit)
            except BodyTooLarge:
                raise GatewayError(
                    413,
                    f"the request body is larger than this plan's limit of {limit} bytes",
                    code="body_too_large",
                ) from None
            except TimeoutError:
                raise GatewayError(
                    408,
                    f"the request body did not arrive within {timeout:g} seconds",
                    code="body_timeout",
                ) from None
        await handler(gateway, call, body, send)
    except GatewayError as exc:
        await _error(send, call, exc)
    except ConnectionResetError:
        call.status, call.error_code = 499, "client_disconnected"
    except Exception as exc:
        await _error(send, call, _unhandled(call, exc))
    finally:
        elapsed = time.perf_counter() - call.started
        latency.labels(call.endpoint, str(call.status)).observe(elapsed)
        if not call.stream or call.status >= 400:  # a stream meters itself when it ends
            await gateway.finish(call)
        log.info(
            "request",
            method=method,
            path=scope["path"],
            status=call.status,
            duration_ms=round(elapsed * 1000, 2),
            request_id=call.request_id,
        )


class GatewayASGI:
    """Serves /v1/*; the gateway object lives on the Litestar app's state (its lifespan).
    Reached directly through `dispatch` in production, or as a Litestar mount otherwise."""

    def __init__(self, app: Litestar | None = None) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        gateway: Gateway = (self._app or scope["app"]).state.gateway
        path = scope["path"].removeprefix("/v1").rstrip("/") or "/"
        method, endpoint, handler = ROUTES.get(path, ("", "unknown", None))  # type: ignore[assignment]
        # Mounted in Litestar, its middleware has named the request already.
        call = Call(request_id=current_request_id() or new_request_id(), endpoint=endpoint)

        async def authenticate(call: Call) -> None:
            if handler is None:
                raise GatewayError(404, f"no such endpoint: {scope['path']}", code="not_found")
            if scope["method"] != method:
                raise GatewayError(
                    405, f"use {method} for {scope['path']}", code="method_not_allowed"
                )
            await gateway.authenticate(call, scope_token(scope))

        await serve(gateway, call, scope, receive, send, handler or models, authenticate)
