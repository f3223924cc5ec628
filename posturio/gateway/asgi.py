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

from posturio.gateway.decode import decode_object
from posturio.gateway.dialects import Dialect, Request
from posturio.gateway.dialects.chat import CHAT
from posturio.gateway.dialects.messages import MESSAGES, estimate
from posturio.gateway.dialects.responses import RESPONSES
from posturio.gateway.errors import GatewayError, invalid
from posturio.gateway.inspection.segments import Segment, body_segments, embeddings_segments
from posturio.gateway.pipeline import DEFAULT_MAX_OUTPUT, Call, Gateway, Send, estimate_inputs
from posturio.gateway.policy.evaluate import Verdict
from posturio.gateway.policy.stream import StreamGuard
from posturio.gateway.providers.base import Provider, Target
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
    body = DIALECTS[call.dialect].error_body(exc, call.request_id)
    await send_json(send, call, exc.status, msgspec.json.encode(body), extra)


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


async def generate(dialect: Dialect, gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    """A generation request in any dialect: inspected as the caller sent it, redacted in
    place, then forwarded as is to a deployment that speaks the dialect, or translated
    to Chat for one that does not, and answered in the caller's dialect."""
    request = dialect.parse(body)
    call.stream = request.stream
    virtual = gateway.virtual_models.get(request.model)
    if virtual is not None:  # a model served by a component, e.g. Navigator's answers
        payload, shape = gateway.chat_request(msgspec.json.encode(dialect.to_chat(request.payload)))
        await virtual(gateway, call, payload, shape, translated_send(dialect, request, send))
        return
    route = await gateway.resolve(call, request.model, "chat")
    call.prompt_estimate = request.prompt_estimate
    max_out = request.max_output or gateway.tier(call).max_output_tokens or DEFAULT_MAX_OUTPUT
    route = await gateway.govern(
        call,
        route,
        body_segments(request.payload),
        messages=request.messages,
        max_out=request.max_output,
        reserve_out=max_out * request.n,
    )
    guard = gateway.stream_guard(call) if request.stream else None
    # Forwarded natively unless the answer's events may have to be rewritten (a redacting
    # output rule on a stream): the guard rewrites Chat events only.
    may_forward = dialect is not CHAT and not (guard is not None and guard.holding)
    translated: list[dict[str, Any]] = []

    def chat_payload() -> dict[str, Any]:
        if not translated:  # once, after redaction rewrote the original
            translated.append(dialect.to_chat(request.payload))
        return translated[0]

    async def attempt(provider: Provider, target: Target) -> tuple[bool, Any]:
        if may_forward and dialect.name in provider.speaks(target):
            headers = call.forward_headers
            if request.stream:
                return True, await provider.forward_stream(target, request.payload, headers)
            return True, await provider.forward(target, request.payload, headers)
        if request.stream:
            return False, await provider.chat_stream(target, chat_payload(), request.include_usage)
        return False, await provider.chat(target, chat_payload())

    native, result = await gateway.try_deployments(call, route, attempt)
    call.usage = result.usage
    if request.stream:
        call.overhead()  # fixed when the first byte is ready: what the caller waited on us
        await send(
            {"type": "http.response.start", "status": 200, "headers": response_headers(call, SSE)}
        )
        if native:
            observer = NativeObserver(guard, dialect) if guard is not None else None
            chunks = native_errors(dialect, gateway.relay(call, result, observer))
        else:
            chunks = dialect.stream_from_chat(gateway.relay(call, result, guard), request)
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = result.body if native else dialect.from_chat(result.body, request)
    if native:
        answer["model"] = request.model  # the alias the caller asked for, as on Chat
    gateway.inspect_output(call, answer, dialect.output_segments(answer))
    await send_json(send, call, 200, msgspec.json.encode(answer))


class NativeObserver:
    """The stream guard beside a stream forwarded in its own dialect: it reads the text
    each event adds (flag-only output rules: nothing is rewritten or held back)."""

    def __init__(self, guard: StreamGuard, dialect: Dialect) -> None:
        self._guard, self._text = guard, dialect.event_text

    def feed(self, chunk: bytes) -> bytes:
        if text := self._text(chunk):
            self._guard.observe(text)
        return chunk

    def flush(self) -> bytes:
        self._guard.flush()
        return b""

    def verdict(self) -> tuple[Verdict, list[Segment]]:
        return self._guard.verdict()


async def native_errors(dialect: Dialect, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The relay ends a broken stream with a Chat error event: say it in the dialect."""
    async for chunk in chunks:
        if chunk.startswith(b'data: {"error"'):
            error = msgspec.json.decode(chunk[6:]).get("error") or {}
            yield dialect.stream_error(str(error.get("message", "the upstream stream broke off")))
        else:
            yield chunk


def translated_send(dialect: Dialect, request: Request, send: Send) -> Send:
    """`send` for a component that answers in Chat (Navigator): its JSON answer or its
    event stream reach the caller in the caller's dialect."""
    if dialect is CHAT:
        return send
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    state: dict[str, Any] = {}

    async def chunks() -> AsyncIterator[bytes]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            state["start"] = message
            state["sse"] = (b"content-type", b"text/event-stream") in message["headers"]
            if state["sse"]:
                await send(message)
                state["pump"] = asyncio.ensure_future(_pump(dialect, request, chunks(), send))
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        if state.get("sse"):
            await queue.put(body)
            if not more:
                await queue.put(None)
                await state["pump"]
            return
        state["body"] = state.get("body", b"") + body
        if more:
            return
        start = state["start"]
        answer = msgspec.json.decode(state["body"])
        if start["status"] == 200:
            out = msgspec.json.encode(dialect.from_chat(answer, request))
        else:
            error = (answer.get("error") or {}) if isinstance(answer, dict) else {}
            exc = GatewayError(
                start["status"], str(error.get("message", "")), code=error.get("code")
            )
            out = msgspec.json.encode(dialect.error_body(exc, None))
        headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": out})

    return wrapped


async def _pump(
    dialect: Dialect, request: Request, chunks: AsyncIterator[bytes], send: Send
) -> None:
    async for chunk in dialect.stream_from_chat(chunks, request):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def chat_completions(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    await generate(CHAT, gateway, call, body, send)


async def messages(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    await generate(MESSAGES, gateway, call, body, send)


async def responses(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    await generate(RESPONSES, gateway, call, body, send)


async def count_tokens(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    """Anthropic's token count: the gateway's own estimate (what its limits reserve)."""
    payload = decode_object(body)
    if not isinstance(payload.get("messages"), list) or not payload["messages"]:
        raise invalid("messages must be a non-empty list", "messages")
    gateway.allow(call, str(payload.get("model") or ""))
    call.metered = False  # a count is not a generation
    await send_json(send, call, 200, msgspec.json.encode({"input_tokens": estimate(payload)}))


async def embeddings(gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
    payload, shape = gateway.embeddings_request(body)
    route = await gateway.resolve(call, shape.model, "embeddings")
    call.prompt_estimate = estimate_inputs(shape.input)
    segments = embeddings_segments(payload)
    route = await gateway.govern(call, route, segments, messages=0, max_out=None, reserve_out=0)
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
    call.metered = False  # a listing is not a generation
    if call.dialect == "messages":  # asked by an Anthropic client (anthropic-version)
        listing: dict[str, Any] = {
            "data": [
                {
                    "type": "model",
                    "id": m["id"],
                    "display_name": m["id"],
                    "created_at": "1970-01-01T00:00:00Z",
                }
                for m in data
                if m["kind"] == "chat"
            ],
            "has_more": False,
        }
        listing["first_id"] = listing["data"][0]["id"] if listing["data"] else None
        listing["last_id"] = listing["data"][-1]["id"] if listing["data"] else None
        await send_json(send, call, 200, msgspec.json.encode(listing))
        return
    await send_json(send, call, 200, msgspec.json.encode({"object": "list", "data": data}))


Handler = Callable[[Gateway, Call, bytes, Send], Awaitable[None]]
# path -> (method, endpoint, dialect of its answers and errors, handler)
ENDPOINTS: dict[str, tuple[str, str, str, Handler]] = {
    "/chat/completions": ("POST", "chat.completions", "chat", chat_completions),
    "/messages": ("POST", "messages", "messages", messages),
    "/messages/count_tokens": ("POST", "messages.count_tokens", "messages", count_tokens),
    "/responses": ("POST", "responses", "responses", responses),
    "/embeddings": ("POST", "embeddings", "chat", embeddings),
    "/models": ("GET", "models", "chat", models),
}
DIALECTS: dict[str, Dialect] = {d.name: d for d in (CHAT, MESSAGES, RESPONSES)}


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
    try:
        await authenticate(call)
        client = scope.get("client")
        call.client_ip = client[0] if client else None
        body = b""
        if scope["method"] == "POST":
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
        if not call.stream or call.status >= 400:  # a stream meters itself when it ends
            await gateway.finish(call)
        _access_log(call, scope)


def _access_log(call: Call, scope: dict[str, Any]) -> None:
    elapsed = time.perf_counter() - call.started
    latency.labels(call.endpoint, str(call.status)).observe(elapsed)
    log.info(
        "request",
        method=scope["method"],
        path=scope["path"],
        status=call.status,
        duration_ms=round(elapsed * 1000, 2),
        request_id=call.request_id,
    )


async def refuse(call: Call, scope: dict[str, Any], send: Send, exc: GatewayError) -> None:
    """A request for no endpoint, or with the wrong method: answered before anything is
    authenticated or read."""
    await _error(send, call, exc)
    _access_log(call, scope)


class GatewayASGI:
    """Serves /v1/*; the gateway object lives on the Litestar app's state (its lifespan).
    Reached directly through `dispatch` in production, or as a Litestar mount otherwise."""

    def __init__(self, app: Litestar | None = None) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        gateway: Gateway = (self._app or scope["app"]).state.gateway
        path = scope["path"].removeprefix("/v1").rstrip("/") or "/"
        method, endpoint, dialect, handler = ENDPOINTS.get(path, ("", "unknown", "chat", None))
        # An Anthropic client: its envelope for errors and listings, its API version and
        # betas for a native upstream.
        forward = {
            name.decode(): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"anthropic-version", b"anthropic-beta")
        }
        if forward and endpoint == "models":
            dialect = "messages"
        # Mounted in Litestar, its middleware has named the request already.
        call = Call(
            request_id=current_request_id() or new_request_id(),
            endpoint=endpoint,
            dialect=dialect,
            forward_headers=forward,
        )

        if handler is None:
            exc = GatewayError(404, f"no such endpoint: {scope['path']}", code="not_found")
            await refuse(call, scope, send, exc)
        elif scope["method"] != method:
            exc = GatewayError(405, f"use {method} for {scope['path']}", code="method_not_allowed")
            await refuse(call, scope, send, exc)
        else:

            async def authenticate(call: Call) -> None:
                await gateway.authenticate(call, scope_token(scope))

            await serve(gateway, call, scope, receive, send, handler, authenticate)
