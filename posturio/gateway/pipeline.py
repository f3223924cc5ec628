"""The gateway's request path: authenticate, validate, resolve the alias, inspect the
prompt under the tenant's policy (block, redact, reroute, flag), admit under the key's
limits, call the deployments in order (retries, fallbacks, breakers), inspect the answer,
and meter — the usage record, decision records and limit reconciliation happen after the
response."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec
import structlog

from posturio.config import Settings
from posturio.gateway.admission import THOUSAND, checks_for
from posturio.gateway.decode import parse
from posturio.gateway.errors import GatewayError, invalid
from posturio.gateway.inspection.segments import Segment, response_segments
from posturio.gateway.limits import Limiter, Reservation
from posturio.gateway.metrics import upstream_attempts
from posturio.gateway.policy.evaluate import (
    CompiledPolicy,
    Context,
    Labels,
    Verdict,
    masked_segments,
    redact,
)
from posturio.gateway.policy.evaluate import snapshot as redacted_snapshot
from posturio.gateway.policy.schema import SEVERITY
from posturio.gateway.policy.stream import Guard, StreamGuard
from posturio.gateway.providers.base import (
    ChatResult,
    ChatStream,
    EmbeddingsResult,
    Provider,
    Target,
    UpstreamError,
    Usage,
    sse,
)
from posturio.gateway.routing import Breakers, ResolvedRoute, RouteCache, plan
from posturio.gateway.schemas import ChatShape, EmbeddingsShape
from posturio.gateway.tiers import Tier
from posturio.gateway.tokens import estimate_prompt, estimate_text
from posturio.gateway.usage import (
    DecisionRecord,
    DeferredClassification,
    UsageRecord,
    UsageRecorder,
)
from posturio.platform.errors import PosturioError
from posturio.platform.keyauth import CachedKey, KeyAuthenticator
from posturio.platform.models import Scope
from posturio.platform.tenant_cache import TenantCache

log = structlog.get_logger("posturio.gateway")
R = TypeVar("R")
DEFAULT_MAX_OUTPUT = 1024  # for budget reservations when the caller sets no max_tokens


@dataclass(slots=True)
class Call:
    """What one request did, for its headers and its usage record."""

    request_id: str
    endpoint: str
    dialect: str = "chat"  # chat | messages | responses: the shape of answers and errors
    # Client headers a native upstream must see (anthropic-version, anthropic-beta).
    forward_headers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    key: CachedKey | None = None
    alias: str | None = None
    stream: bool = False
    decision: str = "allow"
    target: Target | None = None
    attempts: int = 0
    upstream_s: float = 0.0
    status: int = 200
    error_code: str | None = None
    usage: Usage = field(default_factory=Usage)
    reservation: Reservation | None = None
    overhead_ms: float | None = None
    prompt_estimate: int = 0
    origin: str = "api"
    client_ip: str | None = None
    policy: CompiledPolicy | None = None
    findings: str | None = None
    output_decision: str | None = None
    hits: list[dict[str, Any]] | None = None  # every finding, for the playground's panel
    attempt_log: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[DecisionRecord] | None = None
    classify: DeferredClassification | None = None  # the classifier, after the request
    finished: bool = False  # metered (a broken stream is seen by the relay and by serve)
    metered: bool = True  # listings and token counts are not generations: no usage record

    def overhead(self) -> float:
        if self.overhead_ms is None:
            elapsed = time.perf_counter() - self.started
            self.overhead_ms = max(0.0, (elapsed - self.upstream_s) * 1000)
        return self.overhead_ms

    def headers(self) -> dict[str, str]:
        headers = {
            "x-posturio-decision": self.decision,
            "x-posturio-route": self.target.label if self.target else "-",
            "x-posturio-attempts": str(self.attempts),
            "x-posturio-overhead-ms": f"{self.overhead():.3f}",
        }
        if self.policy is not None:
            headers["x-posturio-policy"] = self.policy.label
            headers["x-posturio-findings"] = self.findings or "none"
        if self.output_decision is not None:
            headers["x-posturio-output-decision"] = self.output_decision
        return headers

    def context(self, direction: str) -> Context:
        assert self.key is not None
        return Context(
            self.key.id, self.key.tags, self.alias or "", self.origin, direction, self.dialect
        )

    def note(self, verdict: Verdict, direction: str) -> None:
        if self.hits is None:
            self.hits = []
        self.hits += [{**h.as_dict(), "direction": direction} for h in verdict.hits]

    def record(self, verdict: Verdict, segments: list[Segment], direction: str) -> None:
        """Keep what the policy did for the review queue (before any redaction, so the
        snapshot can mask every finding, whatever its action)."""
        assert self.policy is not None
        if self.decisions is None:
            self.decisions = []
        self.decisions.append(
            DecisionRecord(
                direction=direction,
                action=verdict.action,
                rule_id=verdict.rule.id if verdict.rule else None,
                shadow=verdict.shadowed,
                policy_id=self.policy.id,
                policy_version=self.policy.version,
                findings=[h.as_dict() for h in verdict.hits],
                snapshot=redacted_snapshot(segments, verdict),
            )
        )

    def cost(self) -> Decimal:
        if self.target is None:
            return Decimal(0)
        return (
            Decimal(self.usage.prompt_tokens) * self.target.input_price_per_1k
            + Decimal(self.usage.completion_tokens) * self.target.output_price_per_1k
        ) / THOUSAND


Send = Callable[[dict[str, Any]], Awaitable[None]]
# A chat model served by a component rather than a route (Navigator's `navigator`): it
# gets the authenticated call and the parsed request, and uses the gateway's steps.
VirtualModel = Callable[["Gateway", Call, dict[str, Any], ChatShape, Send], Awaitable[None]]


class Gateway:
    def __init__(
        self,
        settings: Settings,
        authenticator: KeyAuthenticator,
        routes: RouteCache,
        limiter: Limiter,
        recorder: UsageRecorder,
        breakers: Breakers,
        providers: dict[str, Provider],
        policies: TenantCache[CompiledPolicy],
        tiers: dict[str, Tier],
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.routes = routes
        self.limiter = limiter
        self.recorder = recorder
        self.breakers = breakers
        self.providers = providers
        self.policies = policies
        self.tiers = tiers
        self.virtual_models: dict[str, VirtualModel] = {}

    # ------------------------------------------------------------ admission

    async def authenticate(self, call: Call, token: str | None) -> CachedKey:
        try:
            key = await self.authenticator.authenticate(token)
        except PosturioError as exc:
            raise GatewayError(
                401, exc.message, code=exc.code if exc.code != "unauthorized" else "invalid_api_key"
            ) from None
        if Scope.gateway.value not in key.scopes:
            raise GatewayError(
                403,
                "this API key may not call the gateway (no gateway scope)",
                code="permission_denied",
            )
        call.key = key
        return key

    def allow(self, call: Call, alias: str) -> None:
        """The key and its plan may use the model `alias` (403 otherwise)."""
        assert call.key is not None
        call.alias = alias
        tier_models = self.tier(call).models
        if (call.key.allowed_models is not None and alias not in call.key.allowed_models) or (
            tier_models is not None and alias not in tier_models
        ):
            raise GatewayError(
                403,
                f"this API key may not use the model '{alias}'",
                code="model_not_allowed",
                param="model",
            )

    async def resolve(self, call: Call, alias: str, kind: str) -> ResolvedRoute:
        assert call.key is not None
        self.allow(call, alias)
        route = (await self.routes.get(call.key.tenant_id)).get(alias)
        if route is None or not route.targets:
            raise GatewayError(
                404, f"the model '{alias}' does not exist", code="model_not_found", param="model"
            )
        if route.kind != kind:
            raise invalid(
                f"the model '{alias}' is a {route.kind} model", "model", code="wrong_model_kind"
            )
        return route

    def tier(self, call: Call) -> Tier:
        assert call.key is not None
        return self.tiers.get(call.key.plan) or self.tiers["standard"]

    async def govern(
        self,
        call: Call,
        route: ResolvedRoute,
        segments: list[Segment],
        *,
        messages: int,
        max_out: int | None,
        reserve_out: int,
    ) -> ResolvedRoute:
        """What every prompt goes through before an upstream call, in this order: the
        plan's size limits, the tenant's policy (which may block, redact in place or
        reroute), then every rate, token and budget limit. Returns the route to serve."""
        self.check_size(call, messages, call.prompt_estimate, max_out)
        route = await self.inspect_input(call, route, segments)
        await self.admit(call, route, call.prompt_estimate, reserve_out)
        return route

    def check_size(
        self, call: Call, messages: int, prompt_tokens: int, max_out: int | None
    ) -> None:
        """The plan's request-size limits, each named in its refusal."""
        tier = self.tier(call)
        if tier.max_messages is not None and messages > tier.max_messages:
            raise invalid(
                f"{messages} messages is over this plan's limit of {tier.max_messages}",
                "messages",
                code="too_many_messages",
            )
        if tier.max_prompt_tokens is not None and prompt_tokens > tier.max_prompt_tokens:
            raise GatewayError(
                413,
                f"the prompt is about {prompt_tokens} tokens, over this plan's limit of "
                f"{tier.max_prompt_tokens}",
                code="prompt_too_large",
            )
        if (
            tier.max_output_tokens is not None
            and max_out is not None
            and max_out > tier.max_output_tokens
        ):
            raise invalid(
                f"max_tokens {max_out} is over this plan's limit of {tier.max_output_tokens}",
                "max_tokens",
                code="max_tokens_too_large",
            )

    async def admit(
        self, call: Call, route: ResolvedRoute, prompt_tokens: int, max_out: int
    ) -> None:
        """Every limit that applies to the request, consumed in one atomic Redis call."""
        key = call.key
        assert key is not None
        checks = checks_for(
            key,
            self.tier(call),
            route,
            client_ip=call.client_ip,
            prompt_tokens=prompt_tokens,
            max_out=max_out,
            now_ms=int(time.time() * 1000),
        )
        call.reservation = await self.limiter.admit(
            str(key.id), checks, fail_open=key.limits_fail_open
        )

    # ------------------------------------------------------------ policy

    async def inspect_input(
        self, call: Call, route: ResolvedRoute, segments: list[Segment]
    ) -> ResolvedRoute:
        """Apply the tenant's policy to the prompt; returns the route to serve it (another
        one when the policy reroutes). Raises policy_blocked before any upstream call."""
        assert call.key is not None
        policy = call.policy = await self.policies.get(call.key.tenant_id)
        verdict = await policy.evaluate_off_loop(segments, call.context("input"))
        deferred = policy.defers_classification(call.context("input"))
        if deferred is not None:  # masked before any redaction rewrites the segments
            texts = [[w, t] for w, t in masked_segments(segments, verdict) if t.strip()]
            if texts:
                call.classify = DeferredClassification(
                    deferred.id, policy.id, policy.version, texts
                )
        if not verdict.hits:
            return route
        call.findings = verdict.findings_header()
        call.decision = verdict.action
        call.note(verdict, "input")
        if verdict.recorded:
            call.record(verdict, segments, "input")
        if verdict.action == "block":
            raise GatewayError(400, verdict.block_message() or "blocked", code="policy_blocked")
        redact(segments, verdict, Labels())
        target = verdict.reroute_to
        if target is None:
            return route
        rerouted = (await self.routes.get(call.key.tenant_id)).get(target)
        if rerouted is None or not rerouted.targets or rerouted.kind != route.kind:
            raise GatewayError(
                503,
                f"policy rule '{verdict.rule.id if verdict.rule else '?'}' reroutes to the "
                f"model '{target}', which cannot serve this {route.kind} request",
                code="reroute_unavailable",
            )
        call.alias = target
        return rerouted

    async def inspect_context(self, call: Call, segments: list[Segment]) -> None:
        """Material a component retrieved into the prompt (Navigator's passages from
        approved documents), under the tenant's policy with one difference: it is not the
        caller's to fix, so it never blocks. A value the policy would block, reroute on or
        redact is replaced in place (it never reaches the model as written), a block or
        reroute becomes a flag for review, and the call's decision is the more severe of
        the question's and the context's. Recorded as direction `context`."""
        assert call.key is not None
        policy = call.policy = call.policy or await self.policies.get(call.key.tenant_id)
        verdict = await policy.evaluate_off_loop(segments, call.context("input"))
        if not verdict.hits:
            return
        hidden = []
        for hit in verdict.hits:
            if hit.rule is not None and hit.action in ("block", "reroute", "redact"):
                hidden.append(replace(hit, action="redact"))
                hit.action = "redact" if hit.action == "redact" else "flag"
        acted = [h for h in verdict.hits if h.rule is not None and h.action != "allow"]
        strongest = max(acted, key=lambda h: SEVERITY[h.action], default=None)
        verdict.action = strongest.action if strongest else "allow"
        verdict.rule = strongest.rule if strongest else None
        call.note(verdict, "context")
        if verdict.recorded:
            call.record(verdict, segments, "context")
        if SEVERITY[verdict.action] > SEVERITY[call.decision]:
            call.decision = verdict.action
        counts = Counter(h["category"] for h in call.hits or ())
        call.findings = ",".join(f"{c}={n}" for c, n in sorted(counts.items())) or "none"
        redact(segments, Verdict("redact", hits=hidden), Labels())

    def inspect_output(
        self, call: Call, body: dict[str, Any], segments: list[Segment] | None = None
    ) -> None:
        """Flag or redact what the answer contains, in place, before the caller sees it
        (`segments`: where its text lives; a Chat answer's choices by default)."""
        if call.policy is None or not call.policy.output_rules(call.context("output")):
            return
        segments = response_segments(body) if segments is None else segments
        verdict = call.policy.evaluate(segments, call.context("output"))
        self._output_verdict(call, verdict, segments)
        redact(segments, verdict, Labels())

    def stream_guard(self, call: Call) -> StreamGuard | None:
        if call.policy is None or not call.policy.output_rules(call.context("output")):
            return None
        return StreamGuard(call.policy, call.context("output"))

    @staticmethod
    def _output_verdict(call: Call, verdict: Verdict, segments: list[Segment]) -> None:
        if verdict.hits:
            call.output_decision = verdict.action
            call.note(verdict, "output")
            if verdict.recorded:
                call.record(verdict, segments, "output")

    @staticmethod
    def chat_request(body: bytes) -> tuple[dict[str, Any], ChatShape]:
        return parse(body, ChatShape)

    @staticmethod
    def embeddings_request(body: bytes) -> tuple[dict[str, Any], EmbeddingsShape]:
        payload, shape = parse(body, EmbeddingsShape)
        if isinstance(shape.input, list):
            if not shape.input:
                raise invalid("input must not be empty", "input")
            kinds = {type(v) for v in shape.input}
            if not (
                kinds <= {str}
                or kinds <= {int}
                or (kinds <= {list} and all(isinstance(t, int) for v in shape.input for t in v))
            ):
                raise invalid("input must be a string, a list of strings, or token ids", "input")
        return payload, shape

    # ------------------------------------------------------------ upstream

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self.settings.max_retry_after_s else None
        cap = min(self.settings.retry_cap_s, self.settings.retry_base_s * 2**attempt)
        return random.uniform(0, cap)

    async def try_deployments(
        self, call: Call, route: ResolvedRoute, fn: Callable[[Provider, Target], Awaitable[R]]
    ) -> R:
        assert call.key is not None
        tenant = call.key.tenant_id
        last: UpstreamError | None = None
        for target in plan(route, self.breakers):
            provider = self.providers[target.provider]
            for attempt in range(target.max_retries + 1):
                call.attempts += 1
                started = time.perf_counter()
                try:
                    result = await fn(provider, target)
                except UpstreamError as exc:
                    spent = time.perf_counter() - started
                    call.upstream_s += spent
                    upstream_attempts.labels(target.provider, _outcome(exc)).inc()
                    call.attempt_log.append(
                        {
                            "deployment": target.label,
                            "outcome": _outcome(exc),
                            "ms": round(spent * 1000, 2),
                        }
                    )
                    last = exc
                    log.info(
                        "upstream_attempt_failed",
                        deployment=target.label,
                        attempt=call.attempts,
                        status=exc.status,
                        error=exc.message,
                    )
                    if exc.client_fault:
                        call.target = target
                        raise GatewayError(
                            exc.status or 400,
                            f"upstream rejected the request: {exc.message}",
                            code="upstream_rejected",
                        ) from None
                    self.breakers.failure(tenant, target)
                    if not exc.retryable or attempt == target.max_retries:
                        break
                    delay = self._backoff(attempt, exc.retry_after)
                    if delay is None:
                        break  # told to wait longer than we would: next deployment
                    waited = time.perf_counter()
                    await asyncio.sleep(delay)
                    call.upstream_s += time.perf_counter() - waited
                    continue
                spent = time.perf_counter() - started
                call.upstream_s += spent
                upstream_attempts.labels(target.provider, "ok").inc()
                call.attempt_log.append(
                    {"deployment": target.label, "outcome": "ok", "ms": round(spent * 1000, 2)}
                )
                self.breakers.success(tenant, target)
                call.target = target
                return result
        if last is not None and last.timeout:
            raise GatewayError(
                504,
                f"the upstream timed out after {call.attempts} attempt(s)",
                code="upstream_timeout",
            )
        detail = last.message if last else "no deployment available"
        raise GatewayError(
            502,
            f"all deployments failed after {call.attempts} attempt(s): {detail}",
            code="upstream_error",
        )

    async def complete(
        self, call: Call, route: ResolvedRoute, payload: dict[str, Any]
    ) -> ChatResult:
        result = await self.try_deployments(call, route, lambda p, t: p.chat(t, payload))
        call.usage = result.usage
        self.inspect_output(call, result.body)
        return result

    async def open_stream(
        self, call: Call, route: ResolvedRoute, payload: dict[str, Any], include_usage: bool
    ) -> ChatStream:
        stream = await self.try_deployments(
            call, route, lambda p, t: p.chat_stream(t, payload, include_usage)
        )
        call.usage = stream.usage
        call.overhead()  # fixed when the first byte is ready: what the caller waited on us
        return stream

    async def embed(
        self, call: Call, route: ResolvedRoute, payload: dict[str, Any]
    ) -> EmbeddingsResult:
        result = await self.try_deployments(call, route, lambda p, t: p.embeddings(t, payload))
        call.usage = result.usage
        return result

    async def relay(
        self, call: Call, stream: ChatStream, guard: Guard | None = None
    ) -> AsyncIterator[bytes]:
        """Pass the stream through chunk by chunk (through the output guard when the policy
        inspects answers). A failure after the first byte cannot fall back any more: it
        ends the stream with an error event, never a clean end."""
        try:
            if guard is None:
                yield stream.first
                async for chunk in stream.rest:
                    yield chunk
            else:
                if out := guard.feed(stream.first):
                    yield out
                async for chunk in stream.rest:
                    if out := guard.feed(chunk):
                        yield out
        except UpstreamError as exc:
            call.status, call.error_code = 502, "stream_interrupted"
            if guard is not None and (held := guard.flush()):
                yield held
            log.warning(
                "stream_interrupted",
                deployment=call.target.label if call.target else None,
                error=exc.message,
            )
            yield sse(
                msgspec.json.encode(
                    {
                        "error": {
                            "message": f"the upstream stream broke off: {exc.message} "
                            f"(request id {call.request_id})",
                            "type": "api_error",
                            "param": None,
                            "code": "stream_interrupted",
                        }
                    }
                )
            )
        except (asyncio.CancelledError, GeneratorExit):
            call.status, call.error_code = 499, "client_disconnected"
            raise
        finally:
            await _close(stream.rest)
            if guard is not None:
                self._output_verdict(call, *guard.verdict())
            await self.finish(call)

    # ------------------------------------------------------------ metering

    async def finish(self, call: Call) -> None:
        """After the response: the usage record (buffered) and the limits' true-up."""
        if call.key is None or not call.metered or call.finished:
            return
        call.finished = True
        if call.usage.estimated and not call.usage.prompt_tokens:
            call.usage.prompt_tokens = call.prompt_estimate
        cost = call.cost()
        self.recorder.record(
            UsageRecord(
                tenant_id=call.key.tenant_id,
                request_id=call.request_id,
                occurred_at=datetime.now(UTC),
                endpoint=call.endpoint,
                status=call.status,
                key_id=call.key.id,
                alias=call.alias,
                deployment=call.target.label if call.target else None,
                decision=call.decision,
                error_code=call.error_code,
                attempts=call.attempts,
                stream=call.stream,
                prompt_tokens=call.usage.prompt_tokens,
                completion_tokens=call.usage.completion_tokens,
                tokens_estimated=call.usage.estimated,
                cost_usd=cost,
                latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
                overhead_ms=round(call.overhead(), 3),
                origin=call.origin,
                attempt_log=call.attempt_log or None,
                finding_types=[h["category"] for h in call.hits] if call.hits else None,
                decisions=call.decisions,
                classify=call.classify,
            )
        )
        await self.limiter.reconcile(
            call.reservation, call.usage.prompt_tokens + call.usage.completion_tokens, cost
        )


def estimate_chat(payload: dict[str, Any]) -> int:
    return estimate_prompt(payload.get("messages") or [])


def estimate_inputs(value: Any) -> int:
    if isinstance(value, str):
        return estimate_text(value)
    if isinstance(value, list):
        return sum(estimate_inputs(v) if isinstance(v, str | list) else 1 for v in value)
    return 0


def _outcome(exc: UpstreamError) -> str:
    if exc.timeout:
        return "timeout"
    return f"http_{exc.status}" if exc.status else "connection"


async def _close(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except (UpstreamError, RuntimeError):
            pass
