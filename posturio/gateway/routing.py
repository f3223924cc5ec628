"""Runtime routing: each tenant's alias table (cached, invalidated on change), the order
in which deployments are tried, and a circuit breaker per deployment."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import msgspec
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.providers.base import Target
from posturio.platform.tenant_cache import TenantCache

log = structlog.get_logger("posturio.routing")
BREAKER_KEY = "posturio:breakers:{tenant}"

ECHO_ALIAS = "echo"
LOCAL_EMBEDDINGS_ALIAS = "text-embedding-local"


@dataclass(frozen=True, slots=True)
class ResolvedRoute:
    alias: str
    kind: str  # chat | embeddings
    targets: tuple[Target, ...]
    builtin: bool = False

    @property
    def max_input_price(self) -> Decimal:
        return max((t.input_price_per_1k for t in self.targets), default=Decimal(0))

    @property
    def max_output_price(self) -> Decimal:
        return max((t.output_price_per_1k for t in self.targets), default=Decimal(0))


def builtin_route(alias: str, kind: str, provider: str, model: str) -> ResolvedRoute:
    """A route served in-process, at no cost (no credentials, no retries)."""
    target = Target(
        id=f"builtin:{alias}",
        name=alias,
        provider=provider,
        model=model,
        base_url=None,
        api_version=None,
        api_key=None,
        timeout_s=120.0,
        max_retries=0,
        weight=1,
        priority=0,
        input_price_per_1k=Decimal(0),
        output_price_per_1k=Decimal(0),
    )
    return ResolvedRoute(alias, kind, (target,), builtin=True)


BUILTINS = {
    ECHO_ALIAS: builtin_route(ECHO_ALIAS, "chat", "echo", "echo"),
    LOCAL_EMBEDDINGS_ALIAS: builtin_route(
        LOCAL_EMBEDDINGS_ALIAS, "embeddings", "local", "all-MiniLM-L6-v2"
    ),
}


@dataclass(slots=True)
class RouteTable:
    routes: dict[str, ResolvedRoute]

    def get(self, alias: str) -> ResolvedRoute | None:
        return self.routes.get(alias) or BUILTINS.get(alias)

    def aliases(self) -> list[ResolvedRoute]:
        merged = {**BUILTINS, **self.routes}
        return [merged[a] for a in sorted(merged)]


RouteLoader = Callable[[AsyncSession, uuid.UUID], Awaitable[RouteTable]]
RouteCache = TenantCache[RouteTable]


@dataclass(slots=True)
class BreakerState:
    failures: int = 0
    open_until: float = 0.0  # monotonic
    opened_at_wall: float = 0.0


class Breakers:
    """Consecutive failures open a deployment's breaker for a cooldown; then one trial
    request (half-open) decides. State is per process, published to Redis for the API."""

    def __init__(self, *, failures: int, cooldown_s: float, redis: Redis | None) -> None:
        self._threshold = failures
        self._cooldown = cooldown_s
        self._state: dict[str, BreakerState] = {}
        self._redis = redis
        self._tasks: set[asyncio.Task[None]] = set()

    def cooling(self, target_id: str) -> bool:
        state = self._state.get(target_id)
        return state is not None and state.open_until > time.monotonic()

    def success(self, tenant_id: uuid.UUID, target: Target) -> None:
        state = self._state.get(target.id)
        if state is not None and state.failures:
            was_open = state.open_until > 0
            self._state.pop(target.id, None)
            if was_open:
                self._publish(tenant_id, target, None)

    def failure(self, tenant_id: uuid.UUID, target: Target) -> None:
        state = self._state.setdefault(target.id, BreakerState())
        state.failures += 1
        if state.failures >= self._threshold:
            state.open_until = time.monotonic() + self._cooldown
            state.opened_at_wall = time.time()
            log.warning(
                "deployment_cooling_down",
                deployment=target.label,
                failures=state.failures,
                cooldown_s=self._cooldown,
            )
            self._publish(tenant_id, target, state)

    def _publish(self, tenant_id: uuid.UUID, target: Target, state: BreakerState | None) -> None:
        if self._redis is None:
            return
        key = BREAKER_KEY.format(tenant=tenant_id)
        redis = self._redis

        async def write() -> None:
            try:
                if state is None:
                    await redis.hdel(key, target.id)
                else:
                    value = {
                        "deployment": target.label,
                        "failures": state.failures,
                        "open_until": state.opened_at_wall + self._cooldown,
                        "opened_at": state.opened_at_wall,
                    }
                    await redis.hset(key, target.id, msgspec.json.encode(value))
                    await redis.expire(key, int(self._cooldown) + 3600)
            except Exception as exc:
                log.warning("breaker_publish_failed", error=str(exc))

        task = asyncio.get_running_loop().create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def plan(route: ResolvedRoute, breakers: Breakers) -> list[Target]:
    """Try order: priority groups in order; within one, a weighted random order; cooled
    deployments last (still tried when nothing else is left)."""
    if len(route.targets) == 1:
        return list(route.targets)
    ordered: list[Target] = []
    for priority in sorted({t.priority for t in route.targets}):
        group = [t for t in route.targets if t.priority == priority and t.weight > 0]
        while group:
            pick = random.choices(group, weights=[t.weight for t in group])[0]
            ordered.append(pick)
            group.remove(pick)
    healthy = [t for t in ordered if not breakers.cooling(t.id)]
    return healthy + [t for t in ordered if breakers.cooling(t.id)]


async def breaker_report(redis: Redis, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    # The client does not decode responses: field names and values are bytes.
    raw = cast(dict[bytes, bytes], await redis.hgetall(BREAKER_KEY.format(tenant=tenant_id)))
    now = time.time()
    report = []
    for target_id, value in raw.items():
        state = msgspec.json.decode(value)
        state["deployment_id"] = target_id.decode()
        state["cooling_down"] = state["open_until"] > now
        report.append(state)
    return report
