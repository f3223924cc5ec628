"""Usage metering off the hot path: requests append events to a bounded in-process
buffer; a task pipelines them into a durable Redis stream; a worker drains the stream
into Postgres in batches (with daily rollups) and acknowledges only after commit."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import defaultdict, deque
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import UsageDaily, UsageEvent

log = structlog.get_logger("posturio.usage")
STREAM = "posturio:usage"
GROUP = "usage-drain"
STREAM_MAXLEN = 5_000_000  # a safety bound on Redis memory; far beyond a worker outage

usage_dropped = Counter(
    "posturio_usage_events_dropped_total",
    "Usage events dropped because the in-process buffer was full",
)


class UsageRecorder:
    """Bounded buffer -> Redis stream, in pipelined batches."""

    def __init__(self, redis: Redis, *, max_buffer: int = 50_000, batch: int = 500) -> None:
        self._redis = redis
        self._buffer: deque[bytes] = deque()
        self._max = max_buffer
        self._batch = batch
        self._wake = asyncio.Event()

    def record(self, event: dict[str, Any]) -> None:
        if len(self._buffer) >= self._max:
            self._buffer.popleft()
            usage_dropped.inc()
        self._buffer.append(msgspec.json.encode(event))
        if len(self._buffer) >= self._batch:
            self._wake.set()

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.05)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
                backoff = 0.05
            except RedisError as exc:
                log.warning("usage_flush_failed", buffered=len(self._buffer), error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def flush(self) -> None:
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(self._batch, len(self._buffer)))]
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in batch:
                    pipe.xadd(STREAM, {"e": item}, maxlen=STREAM_MAXLEN, approximate=True)
                await pipe.execute()
            for _ in batch:  # only now: a failed XADD keeps the events for the next try
                self._buffer.popleft()

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def ensure_group(redis: Redis) -> None:
    try:
        await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _row(raw: bytes) -> dict[str, Any]:
    e = msgspec.json.decode(raw)
    return {
        "tenant_id": uuid.UUID(e["tenant_id"]),
        "request_id": e["request_id"],
        "occurred_at": datetime.fromisoformat(e["occurred_at"]),
        "key_id": uuid.UUID(e["key_id"]) if e.get("key_id") else None,
        "alias": e.get("alias"),
        "deployment": e.get("deployment"),
        "endpoint": e["endpoint"],
        "origin": e.get("origin", "api"),
        "decision": e.get("decision", "allow"),
        "status": int(e["status"]),
        "error_code": e.get("error_code"),
        "attempts": int(e.get("attempts", 0)),
        "stream": bool(e.get("stream", False)),
        "prompt_tokens": int(e.get("prompt_tokens", 0)),
        "completion_tokens": int(e.get("completion_tokens", 0)),
        "tokens_estimated": bool(e.get("tokens_estimated", True)),
        "cost_usd": Decimal(str(e.get("cost_usd", "0"))),
        "latency_ms": float(e.get("latency_ms", 0)),
        "overhead_ms": float(e.get("overhead_ms", 0)),
    }


def parse_entries(
    entries: list[tuple[bytes, dict[bytes, bytes]]],
) -> tuple[dict[uuid.UUID, list[dict[str, Any]]], list[bytes]]:
    """Group decodable events by tenant; return them and the ids of poison entries."""
    by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    poison: list[bytes] = []
    for entry_id, fields in entries:
        try:
            row = _row(fields[b"e"])
        except (KeyError, ValueError, TypeError, msgspec.DecodeError) as exc:
            log.error("usage_event_unreadable", entry=entry_id.decode(), error=str(exc))
            poison.append(entry_id)
            continue
        by_tenant[row["tenant_id"]].append(row)
    return by_tenant, poison


async def store(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert one tenant's events (idempotent by request id) and add them to the rollups."""
    inserted = (
        await session.execute(
            insert(UsageEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(
                UsageEvent.occurred_at,
                UsageEvent.key_id,
                UsageEvent.alias,
                UsageEvent.status,
                UsageEvent.prompt_tokens,
                UsageEvent.completion_tokens,
                UsageEvent.cost_usd,
            )
        )
    ).all()
    tenant_id = rows[0]["tenant_id"]
    rollup: dict[tuple[Any, ...], list[Any]] = {}
    for r in inserted:
        key = (r.occurred_at.date(), r.key_id or uuid.UUID(int=0), r.alias or "")
        agg = rollup.setdefault(key, [0, 0, 0, 0, Decimal(0)])
        agg[0] += 1
        agg[1] += 1 if r.status >= 400 else 0
        agg[2] += r.prompt_tokens
        agg[3] += r.completion_tokens
        agg[4] += r.cost_usd
    if rollup:
        values = [
            {
                "tenant_id": tenant_id,
                "day": d,
                "key_id": k,
                "alias": a,
                "requests": v[0],
                "errors": v[1],
                "prompt_tokens": v[2],
                "completion_tokens": v[3],
                "cost_usd": v[4],
            }
            for (d, k, a), v in rollup.items()
        ]
        stmt = insert(UsageDaily).values(values)
        excluded = stmt.excluded
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "day", "key_id", "alias"],
                set_={
                    "requests": UsageDaily.requests + excluded.requests,
                    "errors": UsageDaily.errors + excluded.errors,
                    "prompt_tokens": UsageDaily.prompt_tokens + excluded.prompt_tokens,
                    "completion_tokens": UsageDaily.completion_tokens + excluded.completion_tokens,
                    "cost_usd": UsageDaily.cost_usd + excluded.cost_usd,
                },
            )
        )
    return len(inserted)
