"""The OpenAI-compatible API under /v1."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import HTTPException
from litestar.response import Stream

from posturio.gateway.errors import GatewayError, invalid
from posturio.gateway.pipeline import Call, Gateway, estimate_chat, estimate_inputs
from posturio.platform.keyauth import token_from_headers
from posturio.platform.logging import current_request_id

JSON = "application/json"


def error_response(gateway: Gateway | None, call: Call, exc: GatewayError) -> Response[bytes]:
    call.status = exc.status
    call.error_code = exc.code
    headers = call.headers()
    if exc.retry_after is not None:
        headers["retry-after"] = str(int(max(1, exc.retry_after)))
    return Response(
        msgspec.json.encode(exc.body(call.request_id)),
        status_code=exc.status,
        media_type=JSON,
        headers=headers,
        # Refused requests are metered too (who tried what, and why it failed).
        background=BackgroundTask(gateway.finish, call) if gateway and call.key else None,
    )


async def _body(request: Request[Any, Any, Any]) -> bytes:
    try:
        return await request.body()
    except HTTPException as exc:
        if exc.status_code == 413:
            raise GatewayError(
                413, "the request body is too large", code="body_too_large"
            ) from None
        raise invalid(str(exc.detail)) from None


def _new_call(endpoint: str) -> Call:
    return Call(request_id=current_request_id() or "", endpoint=endpoint)


@post(
    "/v1/chat/completions",
    tags=["gateway"],
    summary="Chat completions (OpenAI-compatible)",
    status_code=200,
)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    gateway: Gateway = request.app.state.gateway
    call = _new_call("chat.completions")
    try:
        await gateway.authenticate(call, token_from_headers(request.headers))
        payload, shape = gateway.chat_request(await _body(request))
        call.stream = shape.stream
        route = await gateway.resolve(call, shape.model, "chat")
        call.prompt_estimate = estimate_chat(payload)
        max_out = shape.max_completion_tokens or shape.max_tokens or 1024
        await gateway.admit(call, route, call.prompt_estimate, max_out * shape.n)
        if shape.stream:
            include_usage = bool((shape.stream_options or {}).get("include_usage"))
            stream = await gateway.open_stream(call, route, payload, include_usage)
            return Stream(
                gateway.relay(call, stream),
                media_type="text/event-stream",
                headers={**call.headers(), "cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        result = await gateway.complete(call, route, payload)
        headers = call.headers()
        return Response(
            msgspec.json.encode(result.body),
            media_type=JSON,
            headers=headers,
            background=BackgroundTask(gateway.finish, call),
        )
    except GatewayError as exc:
        return error_response(gateway, call, exc)


@post("/v1/embeddings", tags=["gateway"], summary="Embeddings (OpenAI-compatible)", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway: Gateway = request.app.state.gateway
    call = _new_call("embeddings")
    try:
        await gateway.authenticate(call, token_from_headers(request.headers))
        payload, shape = gateway.embeddings_request(await _body(request))
        route = await gateway.resolve(call, shape.model, "embeddings")
        call.prompt_estimate = estimate_inputs(shape.input)
        await gateway.admit(call, route, call.prompt_estimate, 0)
        result = await gateway.embed(call, route, payload)
        return Response(
            msgspec.json.encode(result.body),
            media_type=JSON,
            headers=call.headers(),
            background=BackgroundTask(gateway.finish, call),
        )
    except GatewayError as exc:
        return error_response(gateway, call, exc)


@get("/v1/models", tags=["gateway"], summary="The model aliases this key may use")
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway: Gateway = request.app.state.gateway
    call = _new_call("models")
    try:
        key = await gateway.authenticate(call, token_from_headers(request.headers))
        table = await gateway.routes.table(key.tenant_id)
        created = int(time.time())
        data = [
            {
                "id": r.alias,
                "object": "model",
                "created": created,
                "owned_by": "posturio",
                "kind": r.kind,
            }
            for r in table.aliases()
            if key.allowed_models is None or r.alias in key.allowed_models
        ]
        return Response(
            msgspec.json.encode({"object": "list", "data": data}),
            media_type=JSON,
            headers=call.headers(),
        )
    except GatewayError as exc:
        return error_response(None, call, exc)  # nothing to meter for a listing


ROUTES = [chat_completions, embeddings, list_models]
