"""Client dialects at the gateway's edge: Chat Completions, Anthropic Messages and OpenAI
Responses. Each dialect is inspected in its own shape (inspection/segments.py walks any
body), then — where the deployment does not speak it — translated to and from Chat, the
shape every provider adapter takes. One module per dialect; all of them share the event
plumbing below."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from posturio.gateway.errors import GatewayError
from posturio.gateway.inspection.segments import Segment

_encode = msgspec.json.encode


def named_event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with an `event:` line (Messages and Responses streams)."""
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def _data(event: bytes) -> list[dict[str, Any] | None]:
    """One event's decoded `data:` object ([None] for `[DONE]`, [] when it holds none)."""
    for line in event.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return [None]
        try:
            decoded = msgspec.json.decode(data)
        except msgspec.DecodeError:
            return []
        return [decoded] if isinstance(decoded, dict) else []
    return []


async def chat_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any] | None]:
    """Chat SSE bytes -> decoded `data:` objects; None for `[DONE]`. Events may arrive
    split across chunks or several to a chunk (the common case, one whole event per
    chunk, takes no buffering)."""
    pending = b""
    async for chunk in chunks:
        if not pending and chunk.endswith(b"\n\n") and chunk.count(b"\n\n") == 1:
            events = [chunk]
        else:
            pending += chunk
            *events, pending = pending.split(b"\n\n")
        for event in events:
            for data in _data(event):
                yield data


class StreamTranslation(Protocol):
    """A Chat stream retold in a dialect's events: opening events, those each Chat event
    gives, the closing ones, and the event that ends a stream broken upstream."""

    def start(self) -> list[bytes]: ...

    def feed(self, event: dict[str, Any]) -> list[bytes]: ...

    def end(self) -> list[bytes]: ...

    def failed(self, message: str) -> bytes: ...


async def translate_stream(
    state: StreamTranslation, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    for out in state.start():
        yield out
    async for event in chat_events(chunks):
        if event is None:
            continue
        if "error" in event:  # the relay's own event for a stream broken upstream
            yield state.failed(str((event["error"] or {}).get("message")))
            return
        for out in state.feed(event):
            yield out
    for out in state.end():
        yield out


def new_id(prefix: str) -> str:
    """A unique id for an answer or one of its items (uuid4's randomness, minus its cost)."""
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one client dialect is read, translated and answered."""

    name: str  # chat | messages | responses
    endpoint: str  # the usage record's endpoint
    parse: Callable[[bytes], Request]
    to_chat: Callable[[dict[str, Any]], dict[str, Any]]
    from_chat: Callable[[dict[str, Any], Request], dict[str, Any]]
    stream_from_chat: Callable[[AsyncIterator[bytes], Request], AsyncIterator[bytes]]
    error_body: Callable[[GatewayError, str | None], dict[str, Any]]
    # Where an answer's text lives (output inspection redacts it in place).
    output_segments: Callable[[dict[str, Any]], list[Segment]]
    # The text one streamed event of the dialect adds (text, tool arguments), if any.
    event_text: Callable[[bytes], str]
    # The event that ends a stream broken after its first byte.
    stream_error: Callable[[str], bytes]


def event_data(chunk: bytes, kinds: tuple[bytes, ...]) -> dict[str, Any] | None:
    """The decoded data of one `event:`-named SSE event when its name is in `kinds`."""
    if not chunk.startswith(b"event: "):
        return None
    name, _, rest = chunk[7:].partition(b"\n")
    if name not in kinds or not rest.startswith(b"data: "):
        return None
    try:
        data = msgspec.json.decode(rest[6:].strip())
    except msgspec.DecodeError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(slots=True)
class Request:
    """What the request path needs to know of a request, whatever its dialect."""

    payload: dict[str, Any]
    model: str
    stream: bool
    max_output: int | None
    messages: int
    prompt_estimate: int
    n: int = 1
    include_usage: bool = True
