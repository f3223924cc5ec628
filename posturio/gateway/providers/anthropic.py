"""Anthropic's Messages API behind the OpenAI chat completions shape, both ways,
streaming and tool calls included."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
import msgspec

from posturio.gateway.providers.base import (
    SSE_DONE,
    ChatResult,
    ChatStream,
    EmbeddingsResult,
    Target,
    UpstreamError,
    Usage,
    named_sse,
    no_events,
    opened,
    sse,
)
from posturio.gateway.providers.http import Upstreams, post, read_json, sse_events, timeout_for

DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
_encode = msgspec.json.encode
MESSAGES_ONLY = frozenset({"messages"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    url = (part.get("image_url") or {}).get("url", "")
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            blocks.append(_image_block(part))
    return blocks


def to_anthropic(payload: dict[str, Any], model: str) -> dict[str, Any]:
    if (payload.get("n") or 1) > 1:
        raise UpstreamError(
            "n > 1 is not supported by Anthropic models",
            status=400,
            retryable=False,
            client_fault=True,
        )
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        # The Messages API wants user and assistant turns to alternate: merge neighbours.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for m in payload.get("messages", []):
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(m.get("content")))
        elif role == "user":
            add("user", _user_blocks(m.get("content")))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [
                {"type": "text", "text": t} for t in [_text_of(m.get("content"))] if t
            ]
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except json.JSONDecodeError:
                    args = {"_raw": fn.get("arguments")}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": args,
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": m.get("tool_call_id"),
                        "content": _text_of(m.get("content")),
                    }
                ],
            )
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": payload.get("max_completion_tokens")
        or payload.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(s for s in system if s)
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        if payload.get(ours) is not None:
            body[theirs] = payload[ours]
    stop = payload.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if payload.get("user"):
        body["metadata"] = {"user_id": str(payload["user"])}
    tools = payload.get("tools")
    if tools:
        body["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in tools
            if isinstance(t, dict) and t.get("type") == "function"
        ]
        choice = payload.get("tool_choice")
        if choice == "required":
            body["tool_choice"] = {"type": "any"}
        elif choice == "none":
            body["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict) and choice.get("type") == "function":
            body["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
        elif choice == "auto":
            body["tool_choice"] = {"type": "auto"}
    return body


def _usage(u: dict[str, Any] | None) -> Usage:
    if not u:
        return Usage()
    prompt = (
        int(u.get("input_tokens") or 0)
        + int(u.get("cache_read_input_tokens") or 0)
        + int(u.get("cache_creation_input_tokens") or 0)
    )
    return Usage(prompt, int(u.get("output_tokens") or 0), estimated=False)


def _openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def from_anthropic(body: dict[str, Any], alias_model: str) -> ChatResult:
    text, calls = [], []
    for block in body.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if calls:
        message["tool_calls"] = calls
    usage = _usage(body.get("usage"))
    result = {
        "id": body.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": alias_model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": FINISH.get(body.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": _openai_usage(usage),
    }
    return ChatResult(result, usage)


class Anthropic:
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    def speaks(self, target: Target) -> frozenset[str]:
        return MESSAGES_ONLY

    def _call(
        self,
        target: Target,
        body: dict[str, Any],
        *,
        stream: bool,
        client: dict[str, str] | None = None,
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        # A native request keeps the client's API version and betas (Claude Code's
        # prompt caching and extended thinking depend on them).
        headers = {
            "content-type": "application/json",
            "anthropic-version": (client or {}).get("anthropic-version", API_VERSION),
        }
        if client and client.get("anthropic-beta"):
            headers["anthropic-beta"] = client["anthropic-beta"]
        if target.api_key:
            headers["x-api-key"] = target.api_key
        base = (target.base_url or DEFAULT_BASE).rstrip("/")
        return post(
            self._upstreams.session("anthropic"),
            f"{base}/v1/messages",
            headers=headers,
            payload=body,
            timeout=timeout_for(target.timeout_s, stream=stream),
        )

    async def chat(self, target: Target, payload: dict[str, Any]) -> ChatResult:
        response = await self._call(target, to_anthropic(payload, target.model), stream=False)
        return from_anthropic(await read_json(response), payload.get("model", target.model))

    async def chat_stream(
        self, target: Target, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream:
        body = {**to_anthropic(payload, target.model), "stream": True}
        response = await self._call(target, body, stream=True)
        stream = ChatStream(first=b"", rest=no_events())
        return await opened(
            stream,
            self._translate(
                sse_events(response), stream, payload.get("model", target.model), include_usage
            ),
        )

    async def _translate(
        self,
        events: AsyncIterator[tuple[bytes, bytes]],
        stream: ChatStream,
        model: str,
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        chunk_id, created = "", int(time.time())
        tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(
                _encode(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )
            )

        async for name, data in events:
            try:
                event = msgspec.json.decode(data)
            except msgspec.DecodeError:
                continue
            kind = event.get("type") or name.decode()
            if kind == "message_start":
                message = event.get("message") or {}
                chunk_id = message.get("id", "")
                start = _usage(message.get("usage"))
                stream.usage.prompt_tokens = start.prompt_tokens
                stream.usage.estimated = False
                yield chunk({"role": "assistant", "content": ""})
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                if block.get("type") == "tool_use":
                    index = tool_index.setdefault(event.get("index", 0), len(tool_index))
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": block.get("id"),
                                    "type": "function",
                                    "function": {"name": block.get("name"), "arguments": ""},
                                }
                            ]
                        }
                    )
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    yield chunk({"content": delta.get("text", "")})
                elif delta.get("type") == "input_json_delta":
                    index = tool_index.get(event.get("index", 0), 0)
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "function": {"arguments": delta.get("partial_json", "")},
                                }
                            ]
                        }
                    )
            elif kind == "message_delta":
                stream.usage.completion_tokens = int(
                    (event.get("usage") or {}).get("output_tokens") or 0
                )
                reason = (event.get("delta") or {}).get("stop_reason") or ""
                yield chunk({}, FINISH.get(reason, "stop"))
            elif kind == "message_stop":
                if include_usage:
                    yield sse(
                        _encode(
                            {
                                "id": chunk_id,
                                "object": "chat.completion.chunk",
                                "created": created,
                                "model": model,
                                "choices": [],
                                "usage": _openai_usage(stream.usage),
                            }
                        )
                    )
                yield SSE_DONE
                return
            elif kind == "error":
                err = event.get("error") or {}
                raise UpstreamError(f"upstream stream error: {err.get('message', 'unknown')}")
        raise UpstreamError("upstream stream ended without message_stop")

    async def embeddings(self, target: Target, payload: dict[str, Any]) -> EmbeddingsResult:
        raise UpstreamError(
            "Anthropic has no embeddings API", status=400, retryable=False, client_fault=True
        )

    async def forward(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatResult:
        body = {**payload, "model": target.model}
        response = await self._call(target, body, stream=False, client=headers)
        result = await read_json(response)
        return ChatResult(result, _usage(result.get("usage")))

    async def forward_stream(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatStream:
        body = {**payload, "model": target.model, "stream": True}
        response = await self._call(target, body, stream=True, client=headers)
        stream = ChatStream(first=b"", rest=no_events())
        return await opened(stream, _passthrough(sse_events(response), stream))


async def _passthrough(
    events: AsyncIterator[tuple[bytes, bytes]], stream: ChatStream
) -> AsyncIterator[bytes]:
    """Anthropic's events as they come, metered on the way (input and cache tokens from
    message_start, output tokens from message_delta)."""
    async for name, data in events:
        if name in (b"message_start", b"message_delta"):
            try:
                event = msgspec.json.decode(data)
            except msgspec.DecodeError:
                event = {}
            if name == b"message_start":
                start = _usage((event.get("message") or {}).get("usage"))
                stream.usage.prompt_tokens, stream.usage.estimated = start.prompt_tokens, False
            else:
                stream.usage.completion_tokens = int(
                    (event.get("usage") or {}).get("output_tokens") or 0
                )
        yield named_sse(name, data)
        if name in (b"message_stop", b"error"):
            return
    raise UpstreamError("upstream stream ended without message_stop")
