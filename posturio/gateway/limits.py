"""Limits in Redis, checked and consumed in one atomic Lua call: token buckets (requests
per minute of a key, throttles per IP / key / tenant) and counters over a window (tokens
per minute, requests and tokens per day, the monthly spend budget). A refusal consumes
nothing; token and spend counters are reconciled with the real figures after the call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from posturio.gateway.errors import GatewayError
from posturio.gateway.metrics import limits_unavailable

log = structlog.get_logger("posturio.limits")
MICRO = Decimal(1_000_000)
DAY_MS = 86_400_000

# Per check i: KEYS[i], and ARGV[1 + 3(i-1) + 1..3] = kind ("b" bucket, "c" counter),
# limit, amount; then period_ms (bucket: time to refill `limit`; counter: TTL).
# Returns {1} or {0, i, retry_ms (buckets; -1 for counters)}.
ADMIT = """
local now = tonumber(ARGV[1])
local fill = {}
local function arg(i, j) return ARGV[1 + (i - 1) * 4 + j] end
for i = 1, #KEYS do
  local kind, limit, amount, period = arg(i, 1), tonumber(arg(i, 2)), tonumber(arg(i, 3)),
    tonumber(arg(i, 4))
  if kind == 'b' then
    local b = redis.call('HMGET', KEYS[i], 't', 'ts')
    local t = tonumber(b[1]) or limit
    local ts = tonumber(b[2]) or now
    t = math.min(limit, t + math.max(0, now - ts) * limit / period)
    if t < amount then return {0, i, math.ceil((amount - t) * period / limit)} end
    fill[i] = t
  else
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    if used + amount > limit then return {0, i, -1} end
  end
end
for i = 1, #KEYS do
  local kind, amount, period = arg(i, 1), tonumber(arg(i, 3)), tonumber(arg(i, 4))
  if kind == 'b' then
    redis.call('HSET', KEYS[i], 't', fill[i] - amount, 'ts', now)
    redis.call('PEXPIRE', KEYS[i], period * 2)
  else
    redis.call('INCRBY', KEYS[i], amount)
    redis.call('PEXPIRE', KEYS[i], period)
  end
end
return {1}
"""


@dataclass(frozen=True, slots=True)
class Check:
    """One limit: `refusal` is the message when it is hit, `resets_ms` (counters) when
    the window ends, and `reconciled` whether its amount is an estimate to true up."""

    key: str
    kind: str  # "b" | "c"
    limit: int
    amount: int
    period_ms: int
    refusal: str
    code: str = "rate_limit_exceeded"
    resets_ms: int = 0
    reconciled: str | None = None  # "tokens" | "spend"


def bucket(key: str, per_minute: float, burst: int | None, refusal: str) -> Check:
    """A token bucket of `burst` (default: one minute's worth) refilled at `per_minute`."""
    capacity = max(1, burst if burst is not None else int(per_minute))
    return Check(key, "b", capacity, 1, int(capacity * 60_000 / per_minute), refusal)


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
        self._admit = redis.register_script(ADMIT)

    async def admit(
        self, owner: str, checks: list[Check], *, fail_open: bool
    ) -> Reservation | None:
        """Consume every check or none; raises 429 naming the limit that was hit."""
        if not checks:
            return None
        args: list[int | str] = [int(time.time() * 1000)]
        for c in checks:
            args += [c.kind, c.limit, c.amount, c.period_ms]
        try:
            result = await self._admit(keys=[c.key for c in checks], args=args)
        except RedisError as exc:
            if fail_open:
                limits_unavailable.labels("fail_open").inc()
                log.warning("limits_unavailable_fail_open", owner=owner, error=type(exc).__name__)
                return None
            limits_unavailable.labels("fail_closed").inc()
            log.error("limits_unavailable_fail_closed", owner=owner, error=type(exc).__name__)
            raise GatewayError(
                503,
                "rate limiting is unavailable and this tenant fails closed",
                code="limits_unavailable",
                retry_after=5,
            ) from None
        if not result[0]:
            hit = checks[int(result[1]) - 1]
            retry_ms = int(result[2]) if int(result[2]) >= 0 else hit.resets_ms
            raise GatewayError(
                429, hit.refusal, code=hit.code, retry_after=max(1, -(-retry_ms // 1000))
            )
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
