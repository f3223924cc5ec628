"""What every provider adapter gives the router: a chat call, a streaming chat call,
embeddings, and failures classified for retry and fallback decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


class UpstreamError(Exception):
    """An upstream call failed. `retryable`: worth another attempt or deployment;
    `client_fault`: the request itself is wrong (passed back to the caller, no fallback)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = True,
        client_fault: bool = False,
        timeout: bool = False,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.client_fault = client_fault
        self.timeout = timeout
        self.retry_after = retry_after
        self.body = body


def classify_status(
    status: int, message: str, retry_after: float | None, body: Any
) -> UpstreamError:
    if status == 429 or status >= 500:
        return UpstreamError(message, status=status, retry_after=retry_after, body=body)
    if status in (400, 413, 422):
        return UpstreamError(message, status=status, retryable=False, client_fault=True, body=body)
    # 401/403/404 from upstream: our configuration is wrong; another deployment may work.
    return UpstreamError(message, status=status, retryable=False, body=body)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: treat as "no hint"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = True


@dataclass(frozen=True, slots=True)
class Target:
    """A deployment as the provider adapter needs it (credentials already decrypted)."""

    id: str
    name: str
    provider: str
    model: str
    base_url: str | None
    api_version: str | None
    api_key: str | None
    timeout_s: float
    max_retries: int
    weight: int
    priority: int
    input_price_per_1k: Decimal
    output_price_per_1k: Decimal

    @property
    def label(self) -> str:
        return f"{self.name}:{self.provider}/{self.model}"


@dataclass(slots=True)
class ChatResult:
    body: dict[str, Any]
    usage: Usage


@dataclass(slots=True)
class ChatStream:
    """An open upstream stream whose first event has already arrived (so a failure
    before any byte reaches the caller can still fall back)."""

    first: bytes
    rest: AsyncIterator[bytes]
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class EmbeddingsResult:
    body: dict[str, Any]
    usage: Usage


class Provider(Protocol):
    def speaks(self, target: Target) -> frozenset[str]:
        """Client dialects the deployment's API speaks itself ("messages", "responses"): a
        request in one of them is forwarded as the client wrote it (after redaction), so
        fields the gateway does not model (cache_control, thinking, reasoning items,
        betas) keep working. Others are translated to and from Chat."""
        ...

    async def chat(self, target: Target, payload: dict[str, Any]) -> ChatResult: ...

    async def chat_stream(
        self, target: Target, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream: ...

    async def embeddings(self, target: Target, payload: dict[str, Any]) -> EmbeddingsResult: ...

    async def forward(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatResult: ...

    async def forward_stream(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatStream: ...


async def no_events() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover


async def opened(stream: ChatStream, events: AsyncIterator[bytes]) -> ChatStream:
    """`stream` once its first event has arrived (a failure before any byte reaches the
    caller can still fall back to another deployment); `events` fills its usage."""
    try:
        stream.first = await anext(events)
    except StopAsyncIteration:
        raise UpstreamError("upstream closed the stream before any event") from None
    stream.rest = events
    return stream


class ChatOnly:
    """A provider whose API speaks only Chat: every other dialect is translated to it."""

    def speaks(self, target: Target) -> frozenset[str]:
        return frozenset()

    async def forward(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatResult:
        raise NotImplementedError("a Chat-only provider is never asked natively")

    async def forward_stream(
        self, target: Target, payload: dict[str, Any], headers: dict[str, str]
    ) -> ChatStream:
        raise NotImplementedError("a Chat-only provider is never asked natively")


def named_sse(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n" if name else sse(data)


def sse(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
