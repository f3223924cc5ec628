"""The built-in offline `echo` model: replies with exactly the user content it received
(after any redaction), streams it word by word, and reports token usage."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from posturio.gateway.providers.base import (
    SSE_DONE,
    ChatOnly,
    ChatResult,
    ChatStream,
    EmbeddingsResult,
    Target,
    UpstreamError,
    Usage,
    sse,
)
from posturio.gateway.tokens import estimate_prompt, estimate_text, message_text

_WORDS = re.compile(r"\S+\s*|\s+")


def _reply(payload: dict[str, Any]) -> str:
    users = [m for m in payload.get("messages", []) if m.get("role") == "user"]
    return message_text(users[-1].get("content")) if users else ""


def _usage(payload: dict[str, Any], reply: str) -> Usage:
    return Usage(estimate_prompt(payload.get("messages", [])), estimate_text(reply), False)


class Echo(ChatOnly):
    async def reply(self, target: Target, payload: dict[str, Any]) -> tuple[str, Usage]:
        """The answer's text and its usage (a subclass writes another answer)."""
        reply = _reply(payload)
        return reply, _usage(payload, reply)

    async def chat(self, target: Target, payload: dict[str, Any]) -> ChatResult:
        reply, usage = await self.reply(target, payload)
        n = max(1, int(payload.get("n") or 1))
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": payload.get("model", "echo"),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                }
                for i in range(n)
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens * n,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens * n,
            },
        }
        usage.completion_tokens *= n
        return ChatResult(body, usage)

    async def chat_stream(
        self, target: Target, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream:
        reply, usage = await self.reply(target, payload)
        chunks = self._chunks(payload.get("model", "echo"), reply, usage, include_usage)
        return ChatStream(first=await anext(chunks), rest=chunks, usage=usage)

    async def _chunks(
        self, model: str, reply: str, usage: Usage, include_usage: bool
    ) -> AsyncIterator[bytes]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse(
                msgspec.json.encode(
                    {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                )
            )

        yield chunk({"role": "assistant", "content": ""})
        for word in _WORDS.findall(reply):
            yield chunk({"content": word})
        yield chunk({}, "stop")
        if include_usage:
            yield sse(
                msgspec.json.encode(
                    {
                        **base,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": usage.prompt_tokens,
                            "completion_tokens": usage.completion_tokens,
                            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                        },
                    }
                )
            )
        yield SSE_DONE

    async def embeddings(self, target: Target, payload: dict[str, Any]) -> EmbeddingsResult:
        raise UpstreamError(
            f"{target.model} is a chat model; use an embeddings model",
            status=400,
            retryable=False,
            client_fault=True,
        )
