"""OpenAI-compatible upstreams: OpenAI, Azure OpenAI, vLLM, Ollama, LM Studio, …"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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

DEFAULT_BASE = "https://api.openai.com/v1"
RESPONSES_ONLY, NOTHING = frozenset({"responses"}), frozenset[str]()


class _UsageOnly(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None


class _Chunk(msgspec.Struct):
    """Only what metering reads; msgspec skips everything else without building it."""

    choices: list[_Choice] = []
    usage: _UsageOnly | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


def usage_from(body: dict[str, Any]) -> Usage:
    u = body.get("usage")
    if isinstance(u, dict) and isinstance(u.get("prompt_tokens"), int):
        return Usage(u["prompt_tokens"], int(u.get("completion_tokens") or 0), estimated=False)
    return Usage()


class OpenAICompatible:
    def __init__(self, upstreams: Upstreams, *, azure: bool = False) -> None:
        self._upstreams = upstreams
        self._azure = azure
        self._kind = "azure" if azure else "openai"

    def _url(self, target: Target, operation: str) -> str:
        base = (target.base_url or DEFAULT_BASE).rstrip("/")
        if self._azure:
            version = target.api_version or "2024-10-21"
            return f"{base}/openai/deployments/{target.model}/{operation}?api-version={version}"
        return f"{base}/{operation}"

    def _headers(self, target: Target) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if target.api_key:
            if self._azure:
                headers["api-key"] = target.api_key
            else:
                headers["authorization"] = f"Bearer {target.api_key}"
        return headers

    async def chat(self, target: Target, payload: dict[str, Any]) -> ChatResult:
        body = {**payload, "model": target.model}
        response = await post(
            self._upstreams.session(self._kind),
            self._url(target, "chat/completions"),
            headers=self._headers(target),
            payload=body,
            timeout=timeout_for(target.timeout_s, stream=False),
        )
        result = await read_json(response)
        return ChatResult(result, usage_from(result))

    async def chat_stream(
        self, target: Target, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream:
        # Always ask for usage (metering needs it); drop it again if the caller did not.
        body = {
            **payload,
            "model": target.model,
            "stream": True,
            "stream_options": {**(payload.get("stream_options") or {}), "include_usage": True},
        }
        response = await post(
            self._upstreams.session(self._kind),
            self._url(target, "chat/completions"),
            headers=self._headers(target),
            payload=body,
            timeout=timeout_for(target.timeout_s, stream=True),
        )
        stream = ChatStream(first=b"", rest=no_events())
        return await opened(stream, self._relay(sse_events(response), stream, include_usage))

    async def _relay(
        self, events: AsyncIterator[tuple[bytes, bytes]], stream: ChatStream, include_usage: bool
    ) -> AsyncIterator[bytes]:
        completion_chars = 0
        try:
            async for _, data in events:
                if data == b"[DONE]":
                    yield SSE_DONE
                    return
                try:
                    chunk = _decode_chunk(data)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    yield sse(data)  # not ours to judge: pass it on untouched
                    continue
                if chunk.usage is not None:
                    stream.usage.prompt_tokens = chunk.usage.prompt_tokens
                    stream.usage.completion_tokens = chunk.usage.completion_tokens
                    stream.usage.estimated = False
                    if not chunk.choices and not include_usage:
                        continue
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        completion_chars += len(choice.delta.content)
                yield sse(data)
            raise UpstreamError("upstream stream ended without [DONE]")
        finally:
            # Without the upstream's count (a stream broken off, or no usage chunk), what
            # was delivered is still metered: estimated from its characters.
            if stream.usage.estimated:
                stream.usage.completion_tokens = (completion_chars + 3) // 4

    def speaks(self, target: Target) -> frozenset[str]:
        """Responses is OpenAI's own API; OpenAI-compatible servers mostly speak Chat only,
        so a deployment is asked in Responses when its base URL is OpenAI's, or when the
        operator marks a self-hosted server that speaks it (api_version "responses", the
        one field OpenAI-compatible deployments leave unused)."""
        if self._azure:
            return NOTHING
        official = (target.base_url or DEFAULT_BASE).rstrip("/") == DEFAULT_BASE
        return RESPONSES_ONLY if official or target.api_version == "responses" else NOTHING

    async def forward(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatResult:
        response = await post(
            self._upstreams.session(self._kind),
            self._url(target, "responses"),
            headers=self._headers(target),
            payload={**payload, "model": target.model},
            timeout=timeout_for(target.timeout_s, stream=False),
        )
        result = await read_json(response)
        return ChatResult(result, responses_usage(result.get("usage")))

    async def forward_stream(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatStream:
        response = await post(
            self._upstreams.session(self._kind),
            self._url(target, "responses"),
            headers=self._headers(target),
            payload={**payload, "model": target.model, "stream": True},
            timeout=timeout_for(target.timeout_s, stream=True),
        )
        stream = ChatStream(first=b"", rest=no_events())
        return await opened(stream, _responses_passthrough(sse_events(response), stream))

    async def embeddings(self, target: Target, payload: dict[str, Any]) -> EmbeddingsResult:
        body = {**payload, "model": target.model}
        response = await post(
            self._upstreams.session(self._kind),
            self._url(target, "embeddings"),
            headers=self._headers(target),
            payload=body,
            timeout=timeout_for(target.timeout_s, stream=False),
        )
        result = await read_json(response)
        return EmbeddingsResult(result, usage_from(result))


def responses_usage(u: Any) -> Usage:
    if isinstance(u, dict) and isinstance(u.get("input_tokens"), int):
        return Usage(u["input_tokens"], int(u.get("output_tokens") or 0), estimated=False)
    return Usage()


_TERMINAL = (b"response.completed", b"response.failed", b"response.incomplete")


async def _responses_passthrough(
    events: AsyncIterator[tuple[bytes, bytes]], stream: ChatStream
) -> AsyncIterator[bytes]:
    """Responses events as they come; usage from the terminal event."""
    async for name, data in events:
        yield named_sse(name, data)
        if name in _TERMINAL or name == b"error":
            try:
                response = msgspec.json.decode(data).get("response") or {}
            except (msgspec.DecodeError, AttributeError):
                response = {}
            usage = responses_usage(response.get("usage"))
            if not usage.estimated:
                stream.usage.prompt_tokens = usage.prompt_tokens
                stream.usage.completion_tokens = usage.completion_tokens
                stream.usage.estimated = False
            return
    raise UpstreamError("upstream stream ended without a final response event")
