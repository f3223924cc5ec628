"""Plans: what a tenant's keys may do. `standard` is bounded by the operator's global
settings and each key's own limits; `demo` (tenants created by public signup) adds daily
quotas, size limits, allowed models and throttles per key, IP and tenant."""

from __future__ import annotations

from dataclasses import dataclass

from posturio.config import Settings


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    max_body_bytes: int
    max_messages: int | None = None
    max_prompt_tokens: int | None = None
    max_output_tokens: int | None = None  # the largest max_tokens a request may ask for
    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    models: frozenset[str] | None = None
    key_per_minute: float | None = None
    ip_per_minute: float | None = None
    tenant_per_minute: float | None = None
    key_days: int | None = None


def tiers(settings: Settings) -> dict[str, Tier]:
    demo_rate = settings.demo_per_minute
    return {
        "standard": Tier(
            "standard",
            max_body_bytes=settings.max_body_bytes,
            ip_per_minute=settings.throttle_ip_per_minute,
            tenant_per_minute=settings.throttle_tenant_per_minute,
        ),
        "demo": Tier(
            "demo",
            max_body_bytes=min(settings.demo_max_body_bytes, settings.max_body_bytes),
            max_messages=settings.demo_max_messages,
            max_prompt_tokens=settings.demo_max_prompt_tokens,
            max_output_tokens=settings.demo_max_tokens,
            requests_per_day=settings.demo_requests_per_day,
            tokens_per_day=settings.demo_tokens_per_day,
            models=frozenset(settings.demo_models),
            key_per_minute=demo_rate,
            ip_per_minute=demo_rate,
            tenant_per_minute=demo_rate * 4,
            key_days=settings.demo_key_days,
        ),
    }
