"""Anthropic Messages (`POST /v1/messages`: Claude Code, Anthropic's SDKs) to and from
Chat, streaming and tool calls included. Fields without a Chat equivalent (thinking
blocks, cache_control) are dropped on a translated route only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec

from posturio.gateway.decode import parse
from posturio.gateway.dialects import (
    Dialect,
    Request,
    event_data,
    named_event,
    new_id,
    translate_stream,
)
from posturio.gateway.errors import GatewayError
from posturio.gateway.inspection.segments import Segment, body_segments
from posturio.gateway.tokens import estimate_text

# Anthropic's error "type" by HTTP status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class _Message(msgspec.Struct):
    # Anthropic's API takes user and assistant turns; Claude Code also sends system turns.
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class MessagesShape(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1)]
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0)] | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def text_of(content: Any) -> str:
    """The text of a string or of a list of blocks (text blocks only)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b["text"]
            for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
    return ""


def estimate(payload: dict[str, Any]) -> int:
    """Tokens of everything the model reads: system, every block, tool definitions."""
    total = estimate_text(text_of(payload.get("system")))
    for message in payload.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        total += 4 + estimate_text(
            content if isinstance(content, str) else json.dumps(content or "")
        )
    if payload.get("tools"):
        total += estimate_text(json.dumps(payload["tools"]))
    return total


def read(body: bytes) -> Request:
    payload, shape = parse(body, MessagesShape)
    return Request(
        payload=payload,
        model=shape.model,
        stream=shape.stream,
        max_output=shape.max_tokens,
        messages=len(shape.messages),
        prompt_estimate=estimate(payload),
    )


# ------------------------------------------------------------------ Messages -> Chat


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _document_text(block: dict[str, Any]) -> str | None:
    source = block.get("source") or {}
    if source.get("type") == "text":
        return str(source.get("data", ""))
    if source.get("type") == "content":
        return text_of(source.get("content"))
    return None  # a PDF: Chat deployments take no documents


def _user_turn(content: Any) -> list[dict[str, Any]]:
    """A user turn becomes its tool results (each a `tool` message, answering the
    previous assistant's calls) followed by one user message with the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "tool_result":
            result = block.get("content")
            text = result if isinstance(result, str) else text_of(result)
            if block.get("is_error"):
                text = f"[tool error] {text}"
            tools.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image" and (image := _image_part(block)) is not None:
            parts.append(image)
        elif kind == "document" and (document := _document_text(block)) is not None:
            title = block.get("title")
            parts.append({"type": "text", "text": f"{title}\n\n{document}" if title else document})
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        content_out: Any = "\n".join(p["text"] for p in parts) if only_text else parts
        tools.append({"role": "user", "content": content_out})
    return tools


def _assistant_turn(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    text = [b.get("text", "") for b in content if b.get("type") == "text"]
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in content
        if b.get("type") == "tool_use"
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def to_chat(payload: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = text_of(payload.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in payload["messages"]:
        if message["role"] == "user":
            messages += _user_turn(message["content"])
        elif message["role"] == "system":
            messages.append({"role": "system", "content": text_of(message["content"])})
        else:
            messages.append(_assistant_turn(message["content"]))
    chat: dict[str, Any] = {
        "model": payload["model"],
        "messages": messages,
        "max_tokens": payload["max_tokens"],
    }
    for name in ("temperature", "top_p", "stream"):
        if payload.get(name) is not None:
            chat[name] = payload[name]
    if payload.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    if payload.get("stop_sequences"):
        chat["stop"] = payload["stop_sequences"][:4]
    user = (payload.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = str(user)
    tools = [t for t in payload.get("tools") or () if isinstance(t, dict) and "input_schema" in t]
    if tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in tools
        ]
        if payload.get("tool_choice"):
            chat["tool_choice"] = _tool_choice(payload["tool_choice"])
    return chat


# ------------------------------------------------------------------ Chat -> Messages


def _usage(chat_usage: dict[str, Any] | None) -> dict[str, int]:
    usage = chat_usage or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _arguments(raw: Any) -> Any:
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}


def from_chat(body: dict[str, Any], request: Request) -> dict[str, Any]:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": fn.get("name"),
                "input": _arguments(fn.get("arguments")),
            }
        )
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": content,
        "stop_reason": STOP.get(choice.get("finish_reason") or "", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(body.get("usage")),
    }


class _StreamState:
    """Chat chunks -> Anthropic's event sequence (message_start, content blocks opened,
    filled and closed in order, message_delta with the stop reason and usage,
    message_stop)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.block = -1  # index of the open content block, -1: none
        self.open_kind: str | None = None
        self.tools: dict[int, int] = {}  # chat tool_calls index -> block index
        self.stop = "end_turn"
        self.usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}

    def start(self) -> list[bytes]:
        start = named_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": new_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "model": self.request.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": self.request.prompt_estimate,
                        "output_tokens": 0,
                    },
                },
            },
        )
        return [start]

    def close(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [
            named_event("content_block_stop", {"type": "content_block_stop", "index": self.block})
        ]

    def open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.block += 1
        self.open_kind = kind
        out.append(
            named_event(
                "content_block_start",
                {"type": "content_block_start", "index": self.block, "content_block": block},
            )
        )
        return out

    def delta(self, delta: dict[str, Any]) -> bytes:
        return named_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.block, "delta": delta},
        )

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if event.get("usage"):
            self.usage = _usage(event["usage"])
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.open_kind != "text":
                    out += self.open("text", {"type": "text", "text": ""})
                out.append(self.delta({"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                index = call.get("index", 0)
                fn = call.get("function") or {}
                if index not in self.tools:
                    out += self.open(
                        "tool_use",
                        {
                            "type": "tool_use",
                            "id": call.get("id") or new_id("toolu"),
                            "name": fn.get("name"),
                            "input": {},
                        },
                    )
                    self.tools[index] = self.block
                if fn.get("arguments"):
                    out.append(
                        self.delta({"type": "input_json_delta", "partial_json": fn["arguments"]})
                    )
            if choice.get("finish_reason"):
                self.stop = STOP.get(choice["finish_reason"], "end_turn")
        return out

    def end(self) -> list[bytes]:
        return [
            *self.close(),
            named_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop, "stop_sequence": None},
                    "usage": {"output_tokens": self.usage["output_tokens"]},
                },
            ),
            named_event("message_stop", {"type": "message_stop"}),
        ]

    def failed(self, message: str) -> bytes:
        return stream_error(message)


def stream_from_chat(chunks: AsyncIterator[bytes], request: Request) -> AsyncIterator[bytes]:
    return translate_stream(_StreamState(request), chunks)


def error_body(exc: GatewayError, request_id: str | None) -> dict[str, Any]:
    message = f"{exc.message} (request id {request_id})" if request_id else exc.message
    kind = _ERROR_TYPES.get(exc.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def output_segments(body: dict[str, Any]) -> list[Segment]:
    return body_segments({"content": body.get("content")})


def event_text(chunk: bytes) -> str:
    event = event_data(chunk, (b"content_block_delta",))
    delta = (event or {}).get("delta") or {}
    return str(delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")


def stream_error(message: str) -> bytes:
    return named_event(
        "error", {"type": "error", "error": {"type": "api_error", "message": message}}
    )


MESSAGES = Dialect(
    name="messages",
    endpoint="messages",
    parse=read,
    to_chat=to_chat,
    from_chat=from_chat,
    stream_from_chat=stream_from_chat,
    error_body=error_body,
    output_segments=output_segments,
    event_text=event_text,
    stream_error=stream_error,
)
