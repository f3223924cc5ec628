"""Bodies of the gateway's admin API (routes, credentials, usage) and of /v1 validation."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from posturio.gateway.errors import invalid
from posturio.platform.inputs import MAX_JSON_DEPTH, json_depth_exceeds

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")]
Provider = Literal["openai", "azure", "anthropic", "echo", "local"]
# The providers that take a stored API key.
CredentialProvider = Literal["openai", "azure", "anthropic"]
Price = Annotated[float, msgspec.Meta(ge=0, le=1000)]  # USD per 1K tokens


# ---------------------------------------------------------------- /v1 request shapes
# The standard fields are checked as OpenAI checks them (types and ranges, by msgspec while
# converting: no Python loop); every other field passes through untouched.

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
Model = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonEmptyList = Annotated[list[Any], msgspec.Meta(min_length=1)]


class Message(msgspec.Struct):
    role: Role
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        # msgspec reports this as a validation error at the message's path.
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a message with role 'tool' needs `tool_call_id`")


class TextFormat(msgspec.Struct, tag="text", tag_field="type"):
    pass


class JsonObjectFormat(msgspec.Struct, tag="json_object", tag_field="type"):
    pass


class JsonSchemaSpec(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class JsonSchemaFormat(msgspec.Struct, tag="json_schema", tag_field="type"):
    json_schema: JsonSchemaSpec


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


class ChatShape(msgspec.Struct):
    model: Model
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool = False
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] = 1
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    stop: str | Annotated[list[str], msgspec.Meta(max_length=4)] | None = None
    response_format: ResponseFormat | None = None
    logit_bias: dict[str, Annotated[float, msgspec.Meta(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    seed: int | None = None
    user: str | None = None
    parallel_tool_calls: bool | None = None
    tool_choice: str | dict[str, Any] | None = None


class EmbeddingsShape(msgspec.Struct):
    model: Model
    # A string, strings, or token ids (list[int] / list[list[int]]): the kinds are checked
    # in the pipeline, emptiness here.
    input: (
        Annotated[str, msgspec.Meta(min_length=1)]
        | Annotated[list[Any], msgspec.Meta(min_length=1)]
    )
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None
    user: str | None = None


def check_json_depth(body: bytes) -> None:
    """A /v1 body nested deeper than any request needs is a 400 before msgspec decodes it
    (its decoder recurses: ~1,000 levels raise RecursionError, a 500)."""
    if json_depth_exceeds(body):
        raise invalid(
            f"the request body is nested deeper than {MAX_JSON_DEPTH} levels", code="invalid_json"
        )


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
    provider: CredentialProvider
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
