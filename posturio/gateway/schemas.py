"""Bodies of the gateway's admin API (routes, credentials, usage) and of /v1 validation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")]
Provider = Literal["openai", "azure", "anthropic", "echo", "local"]
Price = Annotated[float, msgspec.Meta(ge=0, le=1000)]  # USD per 1K tokens


# ---------------------------------------------------------------- /v1 request shapes
# Only what the gateway must rely on is validated; every other field passes through.

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(msgspec.Struct):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class ChatShape(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool = False
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] = 1
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None


class EmbeddingsShape(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # A string, strings, or token ids (list[int] / list[list[int]]): checked in the pipeline.
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None


# ---------------------------------------------------------------- admin API


class DeploymentIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    provider: Provider
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    base_url: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    api_version: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    credential: Name | None = None
    weight: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 1
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60.0
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 1
    input_price_per_1k: Price = 0.0
    output_price_per_1k: Price = 0.0
    enabled: bool = True


class RouteIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["chat", "embeddings"] = "chat"
    deployments: Annotated[list[DeploymentIn], msgspec.Meta(min_length=1, max_length=50)] = []


class DeploymentOut(msgspec.Struct):
    id: str
    name: str
    provider: str
    model: str
    base_url: str | None
    api_version: str | None
    credential: str | None
    weight: int
    priority: int
    timeout_s: float
    max_retries: int
    input_price_per_1k: Decimal
    output_price_per_1k: Decimal
    enabled: bool


class RouteOut(msgspec.Struct):
    alias: str
    kind: str
    builtin: bool
    deployments: list[DeploymentOut]
    updated_at: datetime | None = None


class CredentialIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    provider: Literal["openai", "azure", "anthropic"]
    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


class CredentialOut(msgspec.Struct):
    id: str
    name: str
    provider: str
    created_at: datetime


class BreakerOut(msgspec.Struct):
    deployment_id: str
    deployment: str
    failures: int
    cooling_down: bool
    opened_at: float
    open_until: float


class UsageRow(msgspec.Struct):
    day: date
    key_id: str
    alias: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class UsageReport(msgspec.Struct):
    since: date
    until: date
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    rows: list[UsageRow]


class UsageEventOut(msgspec.Struct):
    request_id: str
    occurred_at: datetime
    key_id: str | None
    alias: str | None
    deployment: str | None
    endpoint: str
    decision: str
    status: int
    error_code: str | None
    attempts: int
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    tokens_estimated: bool
    cost_usd: float
    latency_ms: float
    overhead_ms: float
    attempt_log: list[dict[str, Any]] = []
    origin: str = "api"  # api | playground | navigator
