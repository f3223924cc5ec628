"""Per-key limits in Redis: requests/minute (token bucket), tokens/minute (fixed window)
and a monthly spend budget, checked and reserved in one atomic Lua call; reconciled
with the real figures after the call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from posturio.gateway.errors import GatewayError
from posturio.gateway.metrics import limits_unavailable

log = structlog.get_logger("posturio.limits")
MICRO = Decimal(1_000_000)

# KEYS: rpm bucket, tpm window, budget counter. ARGV: now_ms, rpm, tpm, est_tokens,
# budget_micro, reserve_micro. 0 means "no limit". Checks all first, then applies all, so
# a refusal consumes nothing. Returns {allowed, limit name, retry_after_ms}.
ADMIT = """
local now = tonumber(ARGV[1])
local rpm, tpm, est = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local budget, reserve = tonumber(ARGV[5]), tonumber(ARGV[6])
local tokens = 0
if rpm > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 'ts')
  tokens = tonumber(b[1]) or rpm
  local ts = tonumber(b[2]) or now
  tokens = math.min(rpm, tokens + math.max(0, now - ts) * rpm / 60000)
  if tokens < 1 then return {0, 'rpm', math.ceil((1 - tokens) * 60000 / rpm)} end
end
if tpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + est > tpm then return {0, 'tpm', 60000 - (now % 60000)} end
end
if budget > 0 then
  local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
  if spent + reserve > budget then return {0, 'budget', 0} end
end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 't', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], 120000)
end
if tpm > 0 then
  redis.call('INCRBY', KEYS[2], est)
  redis.call('EXPIRE', KEYS[2], 120)
end
if budget > 0 then
  redis.call('INCRBY', KEYS[3], reserve)
  redis.call('EXPIRE', KEYS[3], 3456000)
end
return {1, '', 0}
"""


@dataclass(slots=True)
class Reservation:
    key_id: str
    tpm_key: str | None
    budget_key: str | None
    tokens: int
    micro_usd: int


def _keys(key_id: str, now_ms: int) -> tuple[str, str, str]:
    # One hash tag per API key: all three land in one slot of a Redis cluster.
    tag = f"posturio:{{k:{key_id}}}"
    month = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m")
    return f"{tag}:rpm", f"{tag}:tpm:{now_ms // 60000}", f"{tag}:spend:{month}"


def _seconds_to_month_end(now: datetime) -> int:
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return int((nxt - now).total_seconds()) + 1


class Limiter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT)

    async def admit(
        self,
        key_id: str,
        *,
        rpm: int | None,
        tpm: int | None,
        budget_usd: Decimal | None,
        est_tokens: int,
        reserve_usd: Decimal,
        fail_open: bool,
    ) -> Reservation | None:
        if not (rpm or tpm or budget_usd):
            return None
        now_ms = int(time.time() * 1000)
        rpm_key, tpm_key, budget_key = _keys(key_id, now_ms)
        reserve_micro = int(reserve_usd * MICRO)
        try:
            allowed, which, retry_ms = await self._admit(
                keys=[rpm_key, tpm_key, budget_key],
                args=[
                    now_ms,
                    rpm or 0,
                    tpm or 0,
                    est_tokens,
                    int((budget_usd or 0) * MICRO),
                    reserve_micro,
                ],
            )
        except RedisError as exc:
            if fail_open:
                limits_unavailable.labels("fail_open").inc()
                log.warning("limits_unavailable_fail_open", key_id=key_id, error=type(exc).__name__)
                return None
            limits_unavailable.labels("fail_closed").inc()
            log.error("limits_unavailable_fail_closed", key_id=key_id, error=type(exc).__name__)
            raise GatewayError(
                503,
                "rate limiting is unavailable and this tenant fails closed",
                code="limits_unavailable",
                retry_after=5,
            ) from None
        if not allowed:
            which = which.decode() if isinstance(which, bytes) else which
            if which == "budget":
                wait = _seconds_to_month_end(datetime.now(UTC))
                raise GatewayError(
                    429,
                    f"this key's monthly budget of ${budget_usd} is spent",
                    code="budget_exceeded",
                    retry_after=wait,
                )
            names = {
                "rpm": f"requests per minute limit ({rpm})",
                "tpm": f"tokens per minute limit ({tpm})",
            }
            raise GatewayError(
                429,
                f"over this key's {names[which]}",
                code="rate_limit_exceeded",
                retry_after=max(1, -(-int(retry_ms) // 1000)),
            )
        return Reservation(
            key_id,
            tpm_key if tpm else None,
            budget_key if budget_usd else None,
            est_tokens,
            reserve_micro,
        )

    async def reconcile(self, reservation: Reservation | None, tokens: int, cost: Decimal) -> None:
        """Replace the reservation with what the call really used."""
        if reservation is None:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if reservation.tpm_key:
                    pipe.incrby(reservation.tpm_key, tokens - reservation.tokens)
                if reservation.budget_key:
                    pipe.incrby(reservation.budget_key, int(cost * MICRO) - reservation.micro_usd)
                await pipe.execute()
        except RedisError as exc:
            log.warning("limits_reconcile_failed", key_id=reservation.key_id, error=str(exc))
