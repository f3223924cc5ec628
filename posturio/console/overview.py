"""Overview: requests by decision, latency and gateway overhead, cost by key and by model
and finding types over time (by the hour up to two days, by the day beyond), with totals
and the top models and keys. Reviewers and up see the tenant; a member sees their own
keys' usage.

Every series is aggregated in SQL: counts, tokens and cost from the daily rollups (by the
day) or the request rows of the range (by the hour: the tenant-and-time index bounds the
scan), latency percentiles and errors from the request rows of the range. The page draws
them with uPlot from a JSON block (static script: the CSP forbids inline script)."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from redis.asyncio import Redis
from sqlalchemy import DateTime, Integer, Select, and_, cast, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from posturio.console.frame import ConsoleController, page
from posturio.gateway.models import UsageDaily, UsageEvent, UsageFindingsDaily
from posturio.platform.dependencies import Caller, Db
from posturio.platform.models import ApiKey, Role
from posturio.platform.repository import scoped

RANGES = (1, 7, 30)  # the picker: 24 h, 7 d, 30 d (any 1-366 by URL)
HOURLY_UP_TO = 2  # days: a range this short is shown by the hour
TOP = 6  # keys, models and finding types drawn one by one; the rest is "other"
TABLE_ROWS = 10
NO_KEY = uuid.UUID(int=0)  # the rollup's key for requests without one
# The decisions in stacking order (bottom first); "refused" is a limit's 429.
DECISIONS = ("allow", "flag", "redact", "reroute", "block", "refused")
TIMING_TTL_S = 7 * 86400  # a finished day's latency and errors, kept this long in Redis
ACTIONS = {"flag": "flagged", "redact": "redacted", "reroute": "rerouted", "block": "blocked"}


async def own_key_ids(db: Db, principal: Caller) -> list[uuid.UUID] | None:
    """None for reviewers and up (the whole tenant); a member's own keys otherwise."""
    if principal.at_least(Role.reviewer):
        return None
    rows = await db.scalars(
        scoped(ApiKey, principal.tenant_id)
        .where(ApiKey.created_by == principal.user_id)
        .with_only_columns(ApiKey.id)
    )
    return list(rows.all())


@dataclass(frozen=True, slots=True)
class Window:
    """The range's buckets (naive UTC, oldest first)."""

    hourly: bool
    buckets: list[datetime]

    @classmethod
    def of(cls, days: int, now: datetime) -> Window:
        hourly = days <= HOURLY_UP_TO
        step = timedelta(hours=1) if hourly else timedelta(days=1)
        count = days * 24 if hourly else days
        last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None)
        if not hourly:
            last = last.replace(hour=0)
        return cls(hourly, [last - step * (count - 1 - i) for i in range(count)])

    @property
    def start(self) -> datetime:
        return self.buckets[0].replace(tzinfo=UTC)

    def bucket(self, at: Any) -> ColumnElement[Any]:
        """A timestamp column's bucket, in UTC whatever the session's time zone."""
        return func.date_trunc("hour" if self.hourly else "day", func.timezone("UTC", at))


class Usage:
    """The range's queries for one tenant (and a member's keys)."""

    def __init__(self, principal: Caller, keys: list[uuid.UUID] | None, window: Window) -> None:
        self.tenant_id = principal.tenant_id
        self.keys = keys
        self.window = window

    def events(self, *columns: Any) -> Select[Any]:
        e = UsageEvent
        stmt = (
            scoped(e, self.tenant_id)
            .where(e.occurred_at >= self.window.start)
            .with_only_columns(*columns)
        )
        return stmt if self.keys is None else stmt.where(e.key_id.in_(self.keys))

    def facts(self) -> Any:
        """Rows with the rollup's columns: the daily rollups by the day, each request (one
        row, one request) by the hour. Every count and sum below reads these."""
        if self.window.hourly:
            e = UsageEvent
            return self.events(
                self.window.bucket(e.occurred_at).label("bucket"),
                func.coalesce(e.key_id, NO_KEY).label("key_id"),
                func.coalesce(e.alias, "").label("alias"),
                literal(1).label("requests"),
                *(cast(e.decision == d, Integer).label(c) for d, c in ACTIONS.items()),
                (e.prompt_tokens + e.completion_tokens).label("tokens"),
                e.cost_usd.label("cost"),
            ).subquery("facts")
        d = UsageDaily
        stmt = (
            scoped(d, self.tenant_id)
            .where(d.day >= self.window.buckets[0].date())
            .with_only_columns(
                cast(d.day, DateTime).label("bucket"),
                d.key_id,
                d.alias,
                d.requests,
                *(getattr(d, c) for c in ACTIONS.values()),
                (d.prompt_tokens + d.completion_tokens).label("tokens"),
                d.cost_usd.label("cost"),
            )
        )
        return (stmt if self.keys is None else stmt.where(d.key_id.in_(self.keys))).subquery(
            "facts"
        )


def _number(value: Any) -> float:
    return float(value) if isinstance(value, Decimal) else (value or 0)


async def _per_bucket(db: Db, facts: Any) -> dict[datetime, dict[str, float]]:
    sums = [func.sum(facts.c[c]).label(c) for c in ("requests", *ACTIONS.values(), "tokens")]
    rows = await db.execute(
        select(facts.c.bucket, *sums, func.sum(facts.c.cost).label("cost")).group_by(facts.c.bucket)
    )
    return {r.bucket: {k: _number(v) for k, v in r._mapping.items() if k != "bucket"} for r in rows}


async def _ranked(db: Db, facts: Any, dimension: str) -> list[tuple[Any, int, float]]:
    """(value, requests, cost) of a dimension, most costly first (then busiest)."""
    requests, cost = func.sum(facts.c.requests), func.sum(facts.c.cost)
    rows = await db.execute(
        select(facts.c[dimension], requests, cost)
        .group_by(facts.c[dimension])
        .order_by(cost.desc(), requests.desc())
        .limit(max(TOP, TABLE_ROWS))
    )
    return [(r[0], int(r[1]), float(r[2] or 0)) for r in rows]


async def _cost_of(
    db: Db, facts: Any, dimension: str, chosen: list[Any]
) -> dict[tuple[datetime, Any], float]:
    """Cost per bucket of each chosen value of a dimension."""
    column = facts.c[dimension]
    rows = await db.execute(
        select(facts.c.bucket, column, func.sum(facts.c.cost))
        .where(column.in_(chosen))
        .group_by(facts.c.bucket, column)
    )
    return {(r[0], r[1]): float(r[2] or 0) for r in rows}


async def _timing_rows(db: Db, usage: Usage, since: datetime) -> dict[datetime, dict[str, Any]]:
    """Errors (not a policy block, not a limit's 429), refusals, and latency and gateway
    overhead percentiles of the requests sent upstream, per bucket from `since` on."""
    e = UsageEvent
    sent = and_(e.decision != "block", e.status != 429)

    def pct(q: float, column: Any) -> Any:
        return func.percentile_cont(q).within_group(column).filter(sent)

    bucket = usage.window.bucket(e.occurred_at).label("bucket")
    rows = await db.execute(
        usage.events(
            bucket,
            func.count().filter(and_(e.status >= 400, sent)).label("errors"),
            func.count().filter(e.status == 429).label("refused"),
            pct(0.5, e.latency_ms).label("latency_p50"),
            pct(0.95, e.latency_ms).label("latency_p95"),
            pct(0.5, e.overhead_ms).label("overhead_p50"),
            pct(0.95, e.overhead_ms).label("overhead_p95"),
        )
        .where(e.occurred_at >= since)
        .group_by(bucket)
    )
    return {r.bucket: {k: v for k, v in r._mapping.items() if k != "bucket"} for r in rows}


def _cache_key(usage: Usage, day: datetime) -> str:
    keys = usage.keys
    scope = "all" if keys is None else hashlib.sha256(str(sorted(keys)).encode()).hexdigest()[:16]
    return f"posturio:overview:{usage.tenant_id}:{scope}:{day:%Y-%m-%d}"


async def _timing(db: Db, redis: Redis | None, usage: Usage) -> dict[datetime, dict[str, Any]]:
    """_timing_rows over the range. By the day, a finished day's figures are computed
    once and kept in Redis: percentiles need every request row, and a month of them is
    the one costly read of the page; only today's rows are read on every view."""
    window = usage.window
    if window.hourly or redis is None:
        return await _timing_rows(db, usage, window.start)
    past, today = window.buckets[:-1], window.buckets[-1]
    keys = [_cache_key(usage, day) for day in past]
    cached = await redis.mget(keys) if keys else []
    found = {day: msgspec.json.decode(v) for day, v in zip(past, cached, strict=True) if v}
    missing = [day for day in past if day not in found]
    since = (missing[0] if missing else today).replace(tzinfo=UTC)
    fresh = await _timing_rows(db, usage, since)
    if missing:
        async with redis.pipeline(transaction=False) as pipe:
            for day in missing:  # a day without requests is kept too (as {})
                pipe.set(_cache_key(usage, day), msgspec.json.encode(fresh.get(day, {})))
                pipe.expire(_cache_key(usage, day), TIMING_TTL_S)
            await pipe.execute()
    return found | fresh


async def _findings(db: Db, usage: Usage) -> dict[tuple[datetime, str], int]:
    """Findings per bucket and category: the daily rollup by the day; by the hour, the
    request rows (a category counted once per request there)."""
    if usage.window.hourly:
        e = UsageEvent
        found = usage.events(
            usage.window.bucket(e.occurred_at).label("bucket"),
            func.unnest(e.finding_types).label("category"),
        ).subquery()
        stmt = select(found.c.bucket, found.c.category, func.count()).group_by(
            found.c.bucket, found.c.category
        )
    else:
        f = UsageFindingsDaily
        stmt = (
            scoped(f, usage.tenant_id)
            .where(f.day >= usage.window.buckets[0].date())
            .with_only_columns(cast(f.day, DateTime), f.category, func.sum(f.findings))
            .group_by(f.day, f.category)
        )
    return {(r[0], r[1]): int(r[2]) for r in await db.execute(stmt)}


def _stacked(
    buckets: list[datetime], chosen: list[tuple[str, Any]], cell: Any, total: Any = None
) -> list[dict[str, Any]]:
    """One series per chosen value (label, key), plus "other" (the total's rest) if any."""
    series = [
        {"label": label, "values": [round(cell(b, key), 6) for b in buckets]}
        for label, key in chosen
    ]
    if total is not None:
        rest = [
            round(max(0.0, total(b) - sum(s["values"][i] for s in series)), 6)
            for i, b in enumerate(buckets)
        ]
        if any(rest):
            series.append({"label": "other", "values": rest})
    return series


async def _key_names(db: Db, principal: Caller, ids: list[Any]) -> dict[Any, str]:
    rows = await db.scalars(scoped(ApiKey, principal.tenant_id).where(ApiKey.id.in_(ids)))
    return {k.id: f"{k.name} ({k.prefix})" for k in rows.all()}


async def overview_data(
    db: Db, redis: Redis | None, principal: Caller, days: int
) -> dict[str, Any]:
    keys = await own_key_ids(db, principal)
    window = Window.of(days, datetime.now(UTC))
    usage = Usage(principal, keys, window)
    buckets = window.buckets
    facts = usage.facts()
    per_bucket = await _per_bucket(db, facts)
    timing = await _timing(db, redis, usage)

    def at(b: datetime, field: str) -> float:
        return _number(per_bucket.get(b, {}).get(field))

    def timed(b: datetime, field: str) -> Any:
        value = timing.get(b, {}).get(field)
        return None if value is None else round(float(value), 2)

    def decided(b: datetime, decision: str) -> float:
        if decision == "refused":
            return timed(b, "refused") or 0
        if decision == "allow":
            actions = sum(at(b, c) for c in ACTIONS.values())
            return max(0, at(b, "requests") - actions - (timed(b, "refused") or 0))
        return at(b, ACTIONS[decision])

    by_key = await _ranked(db, facts, "key_id")
    by_model = await _ranked(db, facts, "alias")
    names = await _key_names(db, principal, [k for k, *_ in by_key])
    key_label = {k: names.get(k, "no key" if k == NO_KEY else "(deleted key)") for k, *_ in by_key}
    top_keys = [k for k, *_ in by_key[:TOP]]
    top_models = [m for m, *_ in by_model[:TOP]]
    key_cost = await _cost_of(db, facts, "key_id", top_keys)
    model_cost = await _cost_of(db, facts, "alias", top_models)

    charts: list[dict[str, Any]] = [
        {
            "id": "decisions",
            "title": "Requests by decision",
            "unit": "requests",
            "stacked": True,
            "series": _stacked(buckets, [(d, d) for d in DECISIONS], decided),
        },
        {
            "id": "latency",
            "title": "Latency of requests sent upstream (ms)",
            "unit": "ms",
            "stacked": False,
            "series": [
                {"label": label, "values": [timed(b, field) for b in buckets]}
                for label, field in (("p50", "latency_p50"), ("p95", "latency_p95"))
            ],
        },
        {
            "id": "overhead",
            "title": "Gateway overhead (ms)",
            "unit": "ms",
            "stacked": False,
            "series": [
                {"label": label, "values": [timed(b, field) for b in buckets]}
                for label, field in (("p50", "overhead_p50"), ("p95", "overhead_p95"))
            ],
        },
        {
            "id": "cost-by-key",
            "title": "Cost by key (USD)",
            "unit": "usd",
            "stacked": True,
            "series": _stacked(
                buckets,
                [(key_label[k], k) for k in top_keys],
                lambda b, k: key_cost.get((b, k), 0.0),
                lambda b: at(b, "cost"),
            ),
        },
        {
            "id": "cost-by-model",
            "title": "Cost by model (USD)",
            "unit": "usd",
            "stacked": True,
            "series": _stacked(
                buckets,
                [(m or "-", m) for m in top_models],
                lambda b, m: model_cost.get((b, m), 0.0),
                lambda b: at(b, "cost"),
            ),
        },
    ]
    top_findings: list[tuple[str, int]] = []
    if keys is None:  # finding types are counted for the tenant, not per key
        found = await _findings(db, usage)
        per_category: dict[str, int] = defaultdict(int)
        for (_, category), n in found.items():
            per_category[category] += n
        top_findings = sorted(per_category.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = [c for c, _ in top_findings[:TOP]]
        charts.append(
            {
                "id": "findings",
                "title": "Finding types",
                "unit": "findings",
                "stacked": True,
                "series": _stacked(
                    buckets,
                    [(c, c) for c in shown],
                    lambda b, c: found.get((b, c), 0),
                    lambda b: sum(n for (at_, _), n in found.items() if at_ == b),
                ),
            }
        )

    totals = {
        field: sum(at(b, field) for b in buckets)
        for field in ("requests", *ACTIONS.values(), "tokens", "cost")
    }
    totals["errors"] = sum(timed(b, "errors") or 0 for b in buckets)
    totals["refused"] = sum(timed(b, "refused") or 0 for b in buckets)
    return {
        "days": days,
        "ranges": RANGES,
        "hourly": window.hourly,
        "totals": totals,
        "chart_data": {
            "hourly": window.hourly,
            "x": [int(b.replace(tzinfo=UTC).timestamp()) for b in buckets],
            "charts": charts,
        },
        "top_models": [(m or "-", n, c) for m, n, c in by_model[:TABLE_ROWS]],
        "top_keys": [(key_label[k], n, c) for k, n, c in by_key[:TABLE_ROWS]],
        "top_findings": top_findings[:TABLE_ROWS],
        "scope": "your keys" if keys is not None else "the whole tenant",
    }


class OverviewPage(ConsoleController):
    path = "/console"

    @get("/")
    async def overview(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        days: Annotated[int, QueryParameter(ge=1, le=366)] = 7,
    ) -> Template:
        data = await overview_data(db, request.app.state.redis, principal, days)
        return await page(
            request, db, principal, "console/overview.html", active="Overview", **data
        )
