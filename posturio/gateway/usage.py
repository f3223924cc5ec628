"""Usage metering off the hot path.

Requests append records to a bounded in-process buffer; a task writes them to a durable
Redis stream, one entry per batch (one XADD for hundreds of requests); a worker drains
the stream into Postgres (COPY, then one INSERT … ON CONFLICT that also updates the
daily rollups) and acknowledges only after commit.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import defaultdict, deque
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import PolicyDecision, UsageDaily
from posturio.platform.repository import scoped

log = structlog.get_logger("posturio.usage")
STREAM = "posturio:usage"
GROUP = "usage-drain"
STREAM_MAXLEN = 1_000_000  # batches; a safety bound on Redis memory, far beyond an outage

usage_dropped = Counter(
    "posturio_usage_events_dropped_total",
    "Usage records dropped because the in-process buffer was full",
)


class DecisionRecord(msgspec.Struct, omit_defaults=True):
    """What the policy did to a request or its response; rides with the usage record and
    lands in policy_decisions (the review queue). Findings hold previews, never values."""

    direction: str
    action: str
    rule_id: str | None
    shadow: bool
    policy_id: uuid.UUID | None
    policy_version: int
    findings: list[dict[str, Any]]
    snapshot: str


class DeferredClassification(msgspec.Struct):
    """The injection classifier, owed after the request (its policy flags injection and
    blocks or reroutes on none): the flagging rule and the prompt with every detected
    value masked (policy.evaluate.masked_segments), as [where, text] pairs. The drain
    enqueues tasks.classify_injection once the request's row is committed."""

    rule_id: str
    policy_id: uuid.UUID | None
    policy_version: int
    segments: list[list[str]]


class UsageRecord(msgspec.Struct, omit_defaults=True):
    tenant_id: uuid.UUID
    request_id: str
    occurred_at: datetime
    endpoint: str
    status: int
    key_id: uuid.UUID | None = None
    alias: str | None = None
    deployment: str | None = None
    origin: str = "api"
    decision: str = "allow"
    error_code: str | None = None
    attempts: int = 0
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_estimated: bool = True
    cost_usd: Decimal = Decimal(0)
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    attempt_log: list[dict[str, Any]] | None = None  # per attempt: deployment, outcome, ms
    finding_types: list[str] | None = None  # a category per finding (repeats count)
    decisions: list[DecisionRecord] | None = None
    classify: DeferredClassification | None = None


COLUMNS = [f for f in UsageRecord.__struct_fields__ if f not in ("decisions", "classify")]
_encode_batch = msgspec.json.Encoder().encode
_decode_batch = msgspec.json.Decoder(list[UsageRecord]).decode


class UsageRecorder:
    """Bounded buffer -> Redis stream, one entry per batch."""

    def __init__(self, redis: Redis, *, max_buffer: int = 50_000, batch: int = 500) -> None:
        self._redis = redis
        self._buffer: deque[UsageRecord] = deque()
        self._max = max_buffer
        self._batch = batch
        self._wake = asyncio.Event()

    def record(self, record: UsageRecord) -> None:
        if len(self._buffer) >= self._max:
            self._buffer.popleft()
            usage_dropped.inc()
        self._buffer.append(record)
        if len(self._buffer) >= self._batch:
            self._wake.set()

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.1)
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
            await self._redis.xadd(
                STREAM, {"b": _encode_batch(batch)}, maxlen=STREAM_MAXLEN, approximate=True
            )
            for _ in batch:  # only now: a failed XADD keeps the records for the next try
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


def parse_entries(
    entries: list[tuple[bytes, dict[bytes, bytes]]],
) -> tuple[dict[uuid.UUID, list[UsageRecord]], list[bytes]]:
    """Group decodable records by tenant; return them and the ids of unreadable entries."""
    by_tenant: dict[uuid.UUID, list[UsageRecord]] = defaultdict(list)
    poison: list[bytes] = []
    for entry_id, fields in entries:
        try:
            records = _decode_batch(fields[b"b"])
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("usage_entry_unreadable", entry=entry_id.decode(), error=str(exc))
            poison.append(entry_id)
            continue
        for record in records:
            by_tenant[record.tenant_id].append(record)
    return by_tenant, poison


_STAGE = """CREATE TEMP TABLE IF NOT EXISTS usage_stage (
    tenant_id uuid, request_id varchar(64), occurred_at timestamptz, endpoint varchar(40),
    status int, key_id uuid, alias varchar(200), deployment varchar(300), origin varchar(20),
    decision varchar(20), error_code varchar(60), attempts int, stream boolean,
    prompt_tokens int, completion_tokens int, tokens_estimated boolean, cost_usd numeric(16,8),
    latency_ms float8, overhead_ms float8, attempt_log jsonb, finding_types varchar(40)[]
) ON COMMIT DELETE ROWS"""

_EVENT_COLUMNS = ", ".join(
    f"ARRAY(SELECT DISTINCT unnest({c}))" if c == "finding_types" else c for c in COLUMNS
)
_MERGE = f"""WITH staged AS (
    SELECT request_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, tenant_id, finding_types
    FROM usage_stage
), inserted AS (
    INSERT INTO usage_events ({", ".join(COLUMNS)})
    SELECT {_EVENT_COLUMNS} FROM usage_stage
    ON CONFLICT (request_id) DO NOTHING
    RETURNING tenant_id, occurred_at, key_id, alias, status, decision, prompt_tokens,
              completion_tokens, cost_usd, request_id
), findings AS (
    INSERT INTO usage_findings_daily AS f (tenant_id, day, category, findings)
    SELECT s.tenant_id, s.day, category, count(*)
    FROM inserted i JOIN staged s USING (request_id), unnest(s.finding_types) AS category
    GROUP BY 1, 2, 3
    ON CONFLICT (tenant_id, day, category) DO UPDATE SET findings = f.findings + excluded.findings
)
INSERT INTO usage_daily AS d (tenant_id, day, key_id, alias, requests, errors, prompt_tokens,
                              completion_tokens, cost_usd, blocked, redacted, rerouted, flagged)
SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date,
       coalesce(key_id, '00000000-0000-0000-0000-000000000000'), coalesce(alias, ''),
       count(*), count(*) FILTER (WHERE status >= 400), sum(prompt_tokens),
       sum(completion_tokens), sum(cost_usd),
       count(*) FILTER (WHERE decision = 'block'), count(*) FILTER (WHERE decision = 'redact'),
       count(*) FILTER (WHERE decision = 'reroute'), count(*) FILTER (WHERE decision = 'flag')
FROM inserted GROUP BY 1, 2, 3, 4
ON CONFLICT (tenant_id, day, key_id, alias) DO UPDATE SET
    requests = d.requests + excluded.requests,
    errors = d.errors + excluded.errors,
    blocked = d.blocked + excluded.blocked,
    redacted = d.redacted + excluded.redacted,
    rerouted = d.rerouted + excluded.rerouted,
    flagged = d.flagged + excluded.flagged,
    prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = d.completion_tokens + excluded.completion_tokens,
    cost_usd = d.cost_usd + excluded.cost_usd"""  # noqa: S608 - constant column names


def _column(record: UsageRecord, name: str) -> Any:
    value = getattr(record, name)
    if name == "attempt_log" and value is not None:
        return _encode_batch(value).decode()  # jsonb travels as text through COPY
    return value


async def store(session: AsyncSession, records: list[UsageRecord]) -> int:
    """Insert one tenant's records (idempotent by request id), roll them up and store their
    policy decisions, in the session's transaction. COPY into a temporary table keeps it
    cheap at thousands a second."""
    connection = await session.connection()
    raw: Any = (await connection.get_raw_connection()).driver_connection
    await raw.execute(_STAGE)
    await raw.copy_records_to_table(
        "usage_stage",
        columns=COLUMNS,
        records=[tuple(_column(r, c) for c in COLUMNS) for r in records],
    )
    status = await raw.execute(_MERGE)
    decisions = [
        {
            "id": uuid.uuid4(),
            "tenant_id": r.tenant_id,
            "request_id": r.request_id,
            "occurred_at": r.occurred_at,
            "key_id": r.key_id,
            "alias": r.alias,
            "origin": r.origin,
            **msgspec.structs.asdict(d),
        }
        for r in records
        for d in r.decisions or ()
    ]
    if decisions:
        await session.execute(
            pg_insert(PolicyDecision).on_conflict_do_nothing(
                index_elements=["request_id", "direction"]
            ),
            decisions,
        )
    return int(status.rsplit(" ", 1)[-1])


class KeyUsage(msgspec.Struct):
    """What one key used over a period, from the daily rollups."""

    requests: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)


async def usage_by_key(
    session: AsyncSession, tenant_id: uuid.UUID, key_ids: list[uuid.UUID], since: date
) -> dict[uuid.UUID, KeyUsage]:
    """Requests, tokens and cost of each given key since a day (UTC), in one query over
    the daily rollups (a handful of rows per key and day whatever the traffic). A key
    without usage is absent."""
    if not key_ids:
        return {}
    d = UsageDaily
    rows = await session.execute(
        scoped(d, tenant_id)
        .where(d.day >= since, d.key_id.in_(key_ids))
        .with_only_columns(
            d.key_id,
            func.sum(d.requests),
            func.sum(d.prompt_tokens + d.completion_tokens),
            func.sum(d.cost_usd),
        )
        .group_by(d.key_id)
    )
    return {r[0]: KeyUsage(int(r[1]), int(r[2]), r[3]) for r in rows}
