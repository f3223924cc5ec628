"""The gateway's limits (requests and tokens per minute and per day of a key, throttles
per address and tenant, the monthly spend budget) on the platform's atomic Redis checks:
a refusal is a 429 in OpenAI's envelope, Redis away a pass or a 503 as the tenant chose.
Token and spend counters are reconciled with the real figures after the call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from posturio.gateway.errors import GatewayError
from posturio.platform.ratelimit import Check, RateLimits, unavailable

# Re-exported: the request path builds its checks from this module.
from posturio.platform.ratelimit import bucket as bucket

log = structlog.get_logger("posturio.limits")
MICRO = Decimal(1_000_000)
DAY_MS = 86_400_000


def window(now_ms: int, period_ms: int) -> tuple[int, int]:
    """(window number, ms until it ends)."""
    return now_ms // period_ms, period_ms - now_ms % period_ms


def month_end_ms(now_ms: int) -> int:
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return int((nxt - now) / timedelta(milliseconds=1))


def key_tag(key_id: str) -> str:
    # One hash tag per API key: its limits land in one slot of a Redis cluster.
    return f"posturio:{{k:{key_id}}}"


@dataclass(slots=True)
class Reservation:
    owner: str
    counters: list[tuple[str, str, int]]  # (redis key, "tokens" | "spend", reserved)


class Limiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._limits = RateLimits(redis)

    async def admit(
        self, owner: str, checks: list[Check], *, fail_open: bool
    ) -> Reservation | None:
        """Consume every check or none; raises 429 naming the limit that was hit."""
        try:
            refusal = await self._limits.take(checks)
        except RedisError as exc:
            unavailable(owner, exc, fail_open=fail_open)
            if fail_open:
                return None
            raise GatewayError(
                503,
                "rate limiting is unavailable and this tenant fails closed",
                code="limits_unavailable",
                retry_after=5,
            ) from None
        if refusal is not None:
            hit = refusal.check
            raise GatewayError(429, hit.refusal, code=hit.code, retry_after=refusal.retry_after_s)
        counters = [(c.key, c.reconciled, c.amount) for c in checks if c.reconciled]
        return Reservation(owner, counters) if counters else None

    async def today(self, key_id: str) -> dict[str, int]:
        """What a key used today against the daily quotas (zeros if Redis is away)."""
        day, _ = window(int(time.time() * 1000), DAY_MS)
        tag = key_tag(key_id)
        try:
            requests, tokens = await self._redis.mget(f"{tag}:rpd:{day}", f"{tag}:tpd:{day}")
        except RedisError:
            return {"requests": 0, "tokens": 0}
        return {"requests": int(requests or 0), "tokens": int(tokens or 0)}

    async def reconcile(self, reservation: Reservation | None, tokens: int, cost: Decimal) -> None:
        """Replace the reservations with what the call really used."""
        if reservation is None:
            return
        real = {"tokens": tokens, "spend": int(cost * MICRO)}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, what, reserved in reservation.counters:
                    pipe.incrby(key, real[what] - reserved)
                await pipe.execute()
        except RedisError as exc:
            log.warning("limits_reconcile_failed", owner=reservation.owner, error=str(exc))
