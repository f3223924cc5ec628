"""OpenAI Chat Completions (`POST /v1/chat/completions`): the shape every provider adapter
takes, so nothing is translated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from posturio.gateway.decode import parse
from posturio.gateway.dialects import Dialect, Request
from posturio.gateway.errors import GatewayError
from posturio.gateway.inspection.segments import response_segments
from posturio.gateway.providers.base import sse
from posturio.gateway.schemas import ChatShape
from posturio.gateway.tokens import estimate_prompt


def read(body: bytes) -> Request:
    payload, shape = parse(body, ChatShape)
    return Request(
        payload=payload,
        model=shape.model,
        stream=shape.stream,
        max_output=shape.max_completion_tokens or shape.max_tokens,
        messages=len(shape.messages),
        prompt_estimate=estimate_prompt(payload["messages"]),
        n=shape.n,
        include_usage=bool((shape.stream_options or {}).get("include_usage")),
    )


def _same(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def _answer(body: dict[str, Any], request: Request) -> dict[str, Any]:
    return body


def _events(chunks: AsyncIterator[bytes], request: Request) -> AsyncIterator[bytes]:
    return chunks


def error_body(exc: GatewayError, request_id: str | None) -> dict[str, Any]:
    return exc.body(request_id)


def _never(chunk: bytes) -> str:
    return ""  # Chat is never forwarded natively: the stream guard reads its events


def _stream_error(message: str) -> bytes:
    return sse(msgspec.json.encode({"error": {"message": message, "type": "api_error"}}))


CHAT = Dialect(
    name="chat",
    endpoint="chat.completions",
    parse=read,
    to_chat=_same,
    from_chat=_answer,
    stream_from_chat=_events,
    error_body=error_body,
    output_segments=response_segments,
    event_text=_never,
    stream_error=_stream_error,
)
