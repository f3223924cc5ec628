"""Chat models written in-process by a component from their prompt alone — Navigator's
extractive answers: routed, inspected, streamed and metered as any deployment (through
`Gateway.complete` / `open_stream`), at no cost, spending no model's tokens. The writer
is plain CPU work (sentence scoring, a small embedding), so it runs in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from posturio.gateway.providers.base import Target, Usage
from posturio.gateway.providers.echo import Echo

Write = Callable[[list[dict[str, Any]]], str]  # the prompt's messages -> the answer's text


class Writer(Echo):
    """Answers and streams as `echo` does, with text written by `write`."""

    def __init__(self, write: Write) -> None:
        self._write = write

    async def reply(self, target: Target, payload: dict[str, Any]) -> tuple[str, Usage]:
        text = await asyncio.to_thread(self._write, payload.get("messages") or [])
        return text, Usage(0, 0, estimated=False)  # no model was called
