"""Limits in Redis, checked and consumed in one atomic Lua call: token buckets (requests
per minute, throttles per address / key / tenant) and counters over a window (tokens per
minute, requests and tokens per day, a spend budget). A refusal consumes nothing. The
gateway's limits (gateway/limits.py) and the public pages' throttles both build on it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis

log = structlog.get_logger("posturio.limits")

limits_unavailable = Counter(
    "posturio_limits_unavailable_total",
    "Requests whose rate limits could not be checked because Redis was unreachable",
    ["behaviour"],
)

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


@dataclass(frozen=True, slots=True)
class Refusal:
    """The check that was hit and when to try again (whole seconds, at least one)."""

    check: Check
    retry_after_s: int


def bucket(key: str, per_minute: float, burst: int | None, refusal: str) -> Check:
    """A token bucket of `burst` (default: one minute's worth) refilled at `per_minute`."""
    capacity = max(1, burst if burst is not None else int(per_minute))
    return Check(key, "b", capacity, 1, int(capacity * 60_000 / per_minute), refusal)


class RateLimits:
    def __init__(self, redis: Redis) -> None:
        self._admit = redis.register_script(ADMIT)

    async def take(self, checks: list[Check]) -> Refusal | None:
        """Consume every check or none: the refusal names the one that was hit. Raises
        RedisError when Redis cannot be asked (the caller decides to fail open or closed,
        and says so with `unavailable`)."""
        if not checks:
            return None
        args: list[int | str] = [int(time.time() * 1000)]
        for c in checks:
            args += [c.kind, c.limit, c.amount, c.period_ms]
        result = await self._admit(keys=[c.key for c in checks], args=args)
        if result[0]:
            return None
        hit = checks[int(result[1]) - 1]
        retry_ms = int(result[2]) if int(result[2]) >= 0 else hit.resets_ms
        return Refusal(hit, max(1, -(-retry_ms // 1000)))


def unavailable(owner: str, exc: Exception, *, fail_open: bool) -> None:
    """Count and log limits that could not be checked (Redis unreachable)."""
    behaviour = "fail_open" if fail_open else "fail_closed"
    limits_unavailable.labels(behaviour).inc()
    if fail_open:
        log.warning("limits_unavailable_fail_open", owner=owner, error=type(exc).__name__)
    else:
        log.error("limits_unavailable_fail_closed", owner=owner, error=type(exc).__name__)
