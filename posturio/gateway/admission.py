"""Admission's limits as data: `checks_for` says which limits a request meets and how
much of each it would consume. Pure (the clock is an argument), so every limit is
tested without Redis; `Limiter.admit` then consumes them all or none in one call."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from posturio.gateway.limits import DAY_MS, MICRO, Check, bucket, key_tag, month_end_ms, window
from posturio.gateway.routing import ResolvedRoute
from posturio.gateway.tiers import Tier
from posturio.platform.keyauth import CachedKey

THOUSAND = Decimal(1000)  # prices are per 1,000 tokens


def checks_for(
    key: CachedKey,
    tier: Tier,
    route: ResolvedRoute,
    *,
    client_ip: str | None,
    prompt_tokens: int,
    max_out: int,
    now_ms: int,
) -> list[Check]:
    """Every limit on this request: the key's own (rpm, tpm, monthly budget) and its
    plan's (per key, per address, per organisation, per day). Token and spend amounts
    are estimates, trued up after the response (`reconciled`)."""
    tag = key_tag(str(key.id))
    estimate = prompt_tokens + max_out
    checks = _rates(key, tier, tag, client_ip)
    if key.tpm_limit:
        minute, left = window(now_ms, 60_000)
        checks.append(
            Check(
                f"{tag}:tpm:{minute}",
                "c",
                key.tpm_limit,
                estimate,
                120_000,
                f"over this key's tokens per minute limit ({key.tpm_limit})",
                resets_ms=left,
                reconciled="tokens",
            )
        )
    day, day_left = window(now_ms, DAY_MS)
    if tier.requests_per_day:
        checks.append(
            Check(
                f"{tag}:rpd:{day}",
                "c",
                tier.requests_per_day,
                1,
                2 * DAY_MS,
                f"this key's daily limit of {tier.requests_per_day} requests is used up",
                code="daily_limit_exceeded",
                resets_ms=day_left,
            )
        )
    if tier.tokens_per_day:
        checks.append(
            Check(
                f"{tag}:tpd:{day}",
                "c",
                tier.tokens_per_day,
                estimate,
                2 * DAY_MS,
                f"this key's daily limit of {tier.tokens_per_day} tokens is used up",
                code="daily_limit_exceeded",
                resets_ms=day_left,
                reconciled="tokens",
            )
        )
    if key.monthly_budget_usd:
        # The most this request could cost on any of the route's deployments.
        reserve = (
            Decimal(prompt_tokens) * route.max_input_price
            + Decimal(max_out) * route.max_output_price
        ) / THOUSAND
        month = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m")
        checks.append(
            Check(
                f"{tag}:spend:{month}",
                "c",
                int(key.monthly_budget_usd * MICRO),
                int(reserve * MICRO),
                40 * DAY_MS,
                f"this key's monthly budget of ${key.monthly_budget_usd} is spent",
                code="budget_exceeded",
                resets_ms=month_end_ms(now_ms),
                reconciled="spend",
            )
        )
    return checks


def _rates(key: CachedKey, tier: Tier, tag: str, client_ip: str | None) -> list[Check]:
    """The request-rate buckets: the key's rpm, then the plan's per key, per address and
    per organisation."""
    rates: list[tuple[str, float | None, str]] = [
        (f"{tag}:rpm", key.rpm_limit, "over this key's requests per minute limit ({rate:g})"),
        (
            f"{tag}:throttle",
            tier.key_per_minute,
            "over this plan's rate of {rate:g} requests per minute per key",
        ),
        (
            f"posturio:ip:{client_ip}",
            tier.ip_per_minute if client_ip else None,
            "over the rate of {rate:g} requests per minute from one address",
        ),
        (
            f"posturio:tenant:{key.tenant_id}",
            tier.tenant_per_minute,
            "over this plan's rate of {rate:g} requests per minute per organisation",
        ),
    ]
    return [
        bucket(name, rate, None, refusal.format(rate=rate)) for name, rate, refusal in rates if rate
    ]
