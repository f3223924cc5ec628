"""The request path's decisions on their own, no server: which limits admission checks
(`checks_for`), the try order (`plan`), the breakers, and the fallback loop
(`Gateway.try_deployments`) against deployments that fail as real upstreams do."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from posturio.config import Settings
from posturio.gateway.admission import checks_for
from posturio.gateway.errors import GatewayError
from posturio.gateway.limits import MICRO
from posturio.gateway.pipeline import Call, Gateway
from posturio.gateway.providers.base import Target, UpstreamError
from posturio.gateway.routing import Breakers, ResolvedRoute, plan
from posturio.gateway.tiers import Tier
from posturio.platform.keyauth import CachedKey

NOON = int(datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp() * 1000)


def _key(**limits: object) -> CachedKey:
    fields: dict[str, object] = {
        "rpm_limit": None,
        "tpm_limit": None,
        "monthly_budget_usd": None,
        **limits,
    }
    return CachedKey(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        prefix="pk_test",
        secret_hash=b"",
        scopes=frozenset({"gateway"}),
        expires_at=None,
        revoked_at=None,
        last_used_at=None,
        allowed_models=None,
        limits_fail_open=False,
        loaded_at=time.monotonic(),
        **fields,  # type: ignore[arg-type]
    )


def _target(name: str, *, priority: int = 0, weight: int = 1, retries: int = 0) -> Target:
    return Target(
        id=f"id-{name}",
        name=name,
        provider="fake",
        model="m",
        base_url=None,
        api_version=None,
        api_key=None,
        timeout_s=5.0,
        max_retries=retries,
        weight=weight,
        priority=priority,
        input_price_per_1k=Decimal("0.01"),
        output_price_per_1k=Decimal("0.03"),
    )


def _route(*targets: Target) -> ResolvedRoute:
    return ResolvedRoute("alias", "chat", targets)


# ---------------------------------------------------------------- admission


def test_a_key_without_limits_on_the_standard_plan_has_no_checks():
    checks = checks_for(
        _key(),
        Tier("standard", max_body_bytes=1),
        _route(_target("a")),
        client_ip="10.0.0.1",
        prompt_tokens=100,
        max_out=50,
        now_ms=NOON,
    )
    assert checks == []


def test_every_limit_of_a_key_and_its_plan_is_checked_with_its_own_amount():
    key = _key(rpm_limit=60, tpm_limit=10_000, monthly_budget_usd=Decimal("5"))
    tier = Tier(
        "demo",
        max_body_bytes=1,
        requests_per_day=200,
        tokens_per_day=50_000,
        key_per_minute=10,
        ip_per_minute=20,
        tenant_per_minute=100,
    )
    checks = checks_for(
        key,
        tier,
        _route(_target("a")),
        client_ip="10.0.0.1",
        prompt_tokens=1_000,
        max_out=500,
        now_ms=NOON,
    )
    by_kind = Counter(c.kind for c in checks)
    assert by_kind == {"b": 4, "c": 4}  # rpm, plan per key/ip/tenant; tpm, rpd, tpd, spend
    tokens = [c for c in checks if c.reconciled == "tokens"]
    assert sorted(c.amount for c in tokens) == [1_500, 1_500]  # prompt + the most it may write
    spend = next(c for c in checks if c.reconciled == "spend")
    # The most this request may cost: 1,000 in at $0.01/1k + 500 out at $0.03/1k = $0.025.
    assert spend.amount == int(Decimal("0.025") * MICRO)
    assert spend.limit == 5 * MICRO and spend.code == "budget_exceeded"
    per_day = next(c for c in checks if c.code == "daily_limit_exceeded" and c.amount == 1)
    assert 0 < per_day.resets_ms <= 12 * 3600 * 1000  # the day ends at midnight UTC


def test_the_address_limit_needs_an_address():
    tier = Tier("demo", max_body_bytes=1, ip_per_minute=20)
    with_ip = checks_for(
        _key(),
        tier,
        _route(_target("a")),
        client_ip="10.0.0.1",
        prompt_tokens=1,
        max_out=1,
        now_ms=NOON,
    )
    without = checks_for(
        _key(), tier, _route(_target("a")), client_ip=None, prompt_tokens=1, max_out=1, now_ms=NOON
    )
    assert [c.key for c in with_ip] == ["posturio:ip:10.0.0.1"] and without == []


# ---------------------------------------------------------------- plan and breakers


def test_priority_groups_in_order_and_weights_share_the_first_place():
    random.seed(7)
    primary_a = _target("a", weight=3)
    primary_b = _target("b", weight=1)
    backup = _target("c", priority=1)
    breakers = Breakers(failures=3, cooldown_s=30, redis=None)
    firsts = Counter(
        plan(_route(primary_a, primary_b, backup), breakers)[0].name for _ in range(4000)
    )
    orders = {
        tuple(t.name for t in plan(_route(primary_a, primary_b, backup), breakers))
        for _ in range(50)
    }
    assert orders == {("a", "b", "c"), ("b", "a", "c")}  # the backup is always last
    assert 0.70 < firsts["a"] / 4000 < 0.80  # weight 3 of 4


def test_a_zero_weight_deployment_is_never_tried():
    breakers = Breakers(failures=3, cooldown_s=30, redis=None)
    drained = _target("drained", weight=0)
    assert [t.name for t in plan(_route(_target("a"), drained), breakers)] == ["a"]


def test_a_deployment_cools_after_consecutive_failures_and_is_tried_last(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    breakers = Breakers(failures=2, cooldown_s=30, redis=None)
    a, b = _target("a", priority=0), _target("b", priority=1)
    tenant = uuid.uuid4()
    breakers.failure(tenant, a)
    assert not breakers.cooling(a.id)  # one failure is not a pattern
    breakers.failure(tenant, a)
    assert breakers.cooling(a.id)
    assert [t.name for t in plan(_route(a, b), breakers)] == ["b", "a"]  # still tried, last
    clock[0] += 31  # cooldown over: half-open, back in its place for a trial
    assert [t.name for t in plan(_route(a, b), breakers)] == ["a", "b"]
    breakers.success(tenant, a)
    breakers.failure(tenant, a)
    assert not breakers.cooling(a.id)  # a success reset the count


# ---------------------------------------------------------------- the fallback loop


class ScriptedUpstream:
    """Stands in for the network: each deployment answers from its own script."""

    def __init__(self, scripts: dict[str, list[UpstreamError | str]]) -> None:
        self.scripts = scripts
        self.calls: list[str] = []

    async def __call__(self, provider: object, target: Target) -> str:
        self.calls.append(target.name)
        step = self.scripts[target.name].pop(0)
        if isinstance(step, UpstreamError):
            raise step
        return step


def _gateway(breakers: Breakers | None = None) -> Gateway:
    settings = Settings(retry_base_s=0, retry_cap_s=0, max_retry_after_s=2)
    return Gateway(
        settings,
        authenticator=None,  # type: ignore[arg-type]  # the loop needs none of these
        routes=None,  # type: ignore[arg-type]
        limiter=None,  # type: ignore[arg-type]
        recorder=None,  # type: ignore[arg-type]
        breakers=breakers or Breakers(failures=3, cooldown_s=30, redis=None),
        providers={"fake": object()},  # type: ignore[dict-item]
        policies=None,  # type: ignore[arg-type]
        tiers={},
    )


def _call() -> Call:
    call = Call(request_id="r", endpoint="chat")
    call.key = _key()
    return call


async def test_retries_then_falls_back_to_the_next_deployment():
    upstream = ScriptedUpstream(
        {
            "a": [UpstreamError("busy", status=503), UpstreamError("busy", status=503)],
            "b": ["answer from b"],
        }
    )
    call = _call()
    route = _route(_target("a", retries=1), _target("b", priority=1))
    assert await _gateway().try_deployments(call, route, upstream) == "answer from b"
    assert upstream.calls == ["a", "a", "b"]
    assert [a["outcome"] for a in call.attempt_log] == ["http_503", "http_503", "ok"]
    assert call.attempts == 3 and call.target is not None and call.target.name == "b"


async def test_a_client_fault_is_passed_back_without_fallback():
    upstream = ScriptedUpstream(
        {"a": [UpstreamError("bad field", status=400, client_fault=True)], "b": ["never"]}
    )
    with pytest.raises(GatewayError) as refused:
        await _gateway().try_deployments(
            _call(), _route(_target("a"), _target("b", priority=1)), upstream
        )
    assert refused.value.status == 400 and refused.value.code == "upstream_rejected"
    assert upstream.calls == ["a"]


async def test_a_not_retryable_failure_moves_on_without_retrying():
    upstream = ScriptedUpstream(
        {"a": [UpstreamError("gone", status=404, retryable=False)], "b": ["ok"]}
    )
    route = _route(_target("a", retries=3), _target("b", priority=1))
    assert await _gateway().try_deployments(_call(), route, upstream) == "ok"
    assert upstream.calls == ["a", "b"]


async def test_a_retry_after_longer_than_we_wait_skips_to_the_next_deployment(monkeypatch):
    upstream = ScriptedUpstream(
        {"a": [UpstreamError("slow down", status=429, retry_after=60)], "b": ["ok"]}
    )
    route = _route(_target("a", retries=3), _target("b", priority=1))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    assert await _gateway().try_deployments(_call(), route, upstream) == "ok"
    assert upstream.calls == ["a", "b"]  # no second try of a: 60 s is over the 2 s we allow
    assert slept == []  # and no wait for it either


async def test_timeouts_everywhere_are_a_504_and_other_failures_a_502():
    timeouts = ScriptedUpstream(
        {"a": [UpstreamError("t", timeout=True)], "b": [UpstreamError("t", timeout=True)]}
    )
    with pytest.raises(GatewayError) as timed_out:
        await _gateway().try_deployments(
            _call(), _route(_target("a"), _target("b", priority=1)), timeouts
        )
    assert timed_out.value.status == 504 and timed_out.value.code == "upstream_timeout"
    failing = ScriptedUpstream({"a": [UpstreamError("boom", status=500)]})
    with pytest.raises(GatewayError) as failed:
        await _gateway().try_deployments(_call(), _route(_target("a")), failing)
    assert failed.value.status == 502 and "boom" in failed.value.message


async def test_failures_in_the_loop_open_the_breaker_for_the_next_request():
    breakers = Breakers(failures=2, cooldown_s=30, redis=None)
    gateway = _gateway(breakers)
    a, b = _target("a", retries=1), _target("b", priority=1)
    upstream = ScriptedUpstream(
        {"a": [UpstreamError("x", status=502), UpstreamError("x", status=502)], "b": ["ok", "ok"]}
    )
    await gateway.try_deployments(_call(), _route(a, b), upstream)
    assert breakers.cooling(a.id)
    upstream.calls.clear()
    await gateway.try_deployments(_call(), _route(a, b), upstream)
    assert upstream.calls == ["b"]  # a cools: b first, and it answers
