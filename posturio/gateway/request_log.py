"""The request log: filtered, keyset-paginated reads of usage events (fast at millions of
rows: every filter is on an indexed column, finding types on a GIN index), and one
request's detail with its policy decisions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.gateway.inspection.engine import BUILTIN_RULES
from posturio.gateway.models import PolicyDecision, UsageEvent
from posturio.gateway.policy import store
from posturio.platform.db import tenant_session
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.models import ApiKey, Role
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped

Text = Annotated[str, msgspec.Meta(max_length=200)]
DECISIONS = ("allow", "flag", "redact", "reroute", "block")


class RequestFilter(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a saved view keeps; every field is optional."""

    decision: Text | None = None
    model: Text | None = None
    key: Text | None = None  # a key's prefix
    status: Text | None = None  # "ok", "error" or an HTTP status
    finding: Text | None = None  # a category ("email") or a detector ("pii"), any case
    request_id: Text | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, params: dict[str, Any]) -> RequestFilter:
        given = {
            k: v for k, v in params.items() if k in cls.__struct_fields__ and v not in ("", None)
        }
        try:
            f = msgspec.convert(given, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise PosturioError(f"invalid filter: {exc}", code="invalid_filter") from None
        if f.decision and f.decision not in DECISIONS:
            raise PosturioError(
                f"decision must be one of {', '.join(DECISIONS)}", code="invalid_filter"
            )
        if f.status and f.status not in ("ok", "error") and not f.status.isdigit():
            raise PosturioError("status must be ok, error or an HTTP status", code="invalid_filter")
        return f

    def query(self) -> dict[str, str]:
        """For links: the filter as query parameters."""
        return {k: str(v) for k, v in msgspec.to_builtins(self).items()}


def _cursor(event: UsageEvent) -> str:
    return f"{event.occurred_at.isoformat()}|{event.id}"


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, _, ident = cursor.partition("|")
        return datetime.fromisoformat(at), int(ident)
    except ValueError:
        raise PosturioError("invalid page cursor", code="invalid_filter") from None


# Which categories each detector reports (a tenant's own detectors are added per query).
_DETECTOR_CATEGORIES: dict[str, set[str]] = {"size": {"size"}}
for _rule in BUILTIN_RULES:
    _DETECTOR_CATEGORIES.setdefault(_rule.detector, set()).add(_rule.category)


async def finding_categories(session: AsyncSession, tenant_id: uuid.UUID, term: str) -> list[str]:
    """The stored categories a finding filter means: the category named in any case, or
    every category of the detector named ("PII" finds email, phone, …). The log keeps
    categories only, so a detector is matched through what it reports."""
    wanted = term.strip().lower()
    _, doc = await store.in_force(session, tenant_id)
    by_detector = {k: set(v) for k, v in _DETECTOR_CATEGORIES.items()}
    by_detector.setdefault("custom", set()).update(d.category for d in doc.detectors)
    known = set().union(*by_detector.values())
    found = {c for c in known if c.lower() == wanted} | by_detector.get(wanted, set())
    return sorted(found or {wanted})


@dataclass(frozen=True, slots=True)
class LogPage:
    rows: list[UsageEvent]
    older: str | None  # cursor for the next page back in time (`before`)
    newer: str | None  # cursor for the page forward in time (`after`)


async def search(
    session: AsyncSession,
    principal: Principal,
    f: RequestFilter,
    *,
    before: str | None = None,
    limit: int = 50,
) -> tuple[list[UsageEvent], str | None]:
    """Newest first; `before` is the cursor of the last row of the previous page."""
    found = await browse(session, principal, f, before=before, limit=limit)
    return found.rows, found.older


async def browse(
    session: AsyncSession,
    principal: Principal,
    f: RequestFilter,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> LogPage:
    """One page, newest first, either side of a cursor: `before` the last row of the page
    shown (older), or `after` its first row (newer)."""
    principal.require(Role.reviewer)
    t = principal.tenant_id
    stmt = scoped(UsageEvent, t)
    if f.decision:
        stmt = stmt.where(UsageEvent.decision == f.decision)
    if f.model:
        stmt = stmt.where(UsageEvent.alias == f.model)
    if f.key:
        key_id = await session.scalar(
            scoped(ApiKey, t).where(ApiKey.prefix == f.key).with_only_columns(ApiKey.id)
        )
        stmt = stmt.where(UsageEvent.key_id == (key_id or uuid.UUID(int=0)))
    if f.status == "ok":
        stmt = stmt.where(UsageEvent.status < 400)
    elif f.status == "error":
        stmt = stmt.where(UsageEvent.status >= 400)
    elif f.status:
        stmt = stmt.where(UsageEvent.status == int(f.status))
    if f.request_id:
        stmt = stmt.where(UsageEvent.request_id == f.request_id)
    if f.since:
        stmt = stmt.where(UsageEvent.occurred_at >= f.since)
    if f.until:
        stmt = stmt.where(UsageEvent.occurred_at < f.until)
    if f.finding:
        categories = await finding_categories(session, t, f.finding)
        stmt = stmt.where(UsageEvent.finding_types.overlap(categories))
    newest_first = (UsageEvent.occurred_at.desc(), UsageEvent.id.desc())
    if after:
        at, ident = _parse_cursor(after)
        stmt = stmt.where(
            or_(
                UsageEvent.occurred_at > at,
                and_(UsageEvent.occurred_at == at, UsageEvent.id > ident),
            )
        )
        # The rows just above the cursor: read upwards, shown newest first.
        up = (UsageEvent.occurred_at.asc(), UsageEvent.id.asc())
        rows = list((await session.scalars(stmt.order_by(*up).limit(limit + 1))).all())
        more = len(rows) > limit
        rows = rows[:limit][::-1]
        return LogPage(
            rows,
            older=_cursor(rows[-1]) if rows else None,
            newer=_cursor(rows[0]) if more and rows else None,
        )
    if before:
        at, ident = _parse_cursor(before)
        stmt = stmt.where(
            or_(
                UsageEvent.occurred_at < at,
                and_(UsageEvent.occurred_at == at, UsageEvent.id < ident),
            )
        )
    rows = list((await session.scalars(stmt.order_by(*newest_first).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return LogPage(
        rows,
        older=_cursor(rows[-1]) if more and rows else None,
        # A page reached by going back has newer rows above it (those just shown).
        newer=_cursor(rows[0]) if before and rows else None,
    )


async def detail(
    session: AsyncSession, principal: Principal, request_id: str
) -> tuple[UsageEvent, list[PolicyDecision]]:
    principal.require(Role.reviewer)
    event = (
        await session.scalars(
            scoped(UsageEvent, principal.tenant_id).where(UsageEvent.request_id == request_id)
        )
    ).first()
    if event is None:
        raise NotFound("request not found")
    decisions = (
        await session.scalars(
            scoped(PolicyDecision, principal.tenant_id)
            .where(PolicyDecision.request_id == request_id)
            .order_by(PolicyDecision.direction)
        )
    ).all()
    return event, list(decisions)


async def existing(
    session: AsyncSession, principal: Principal, request_ids: list[str]
) -> list[str]:
    """The given request ids that belong to the tenant (another tenant's look unknown)."""
    if not request_ids:
        return []
    found = await session.scalars(
        scoped(UsageEvent, principal.tenant_id)
        .where(UsageEvent.request_id.in_(request_ids))
        .with_only_columns(UsageEvent.request_id)
    )
    return list(found.all())


@dataclass(frozen=True, slots=True)
class KeyLabel:
    name: str
    prefix: str


async def key_labels(
    session: AsyncSession, tenant_id: uuid.UUID, rows: list[UsageEvent]
) -> dict[uuid.UUID, KeyLabel]:
    """The name and prefix of each key on the page (one query)."""
    ids = {e.key_id for e in rows if e.key_id}
    if not ids:
        return {}
    found = await session.execute(
        scoped(ApiKey, tenant_id)
        .where(ApiKey.id.in_(ids))
        .with_only_columns(ApiKey.id, ApiKey.name, ApiKey.prefix)
    )
    return {r.id: KeyLabel(r.name, r.prefix) for r in found}


def shown_decision(event: UsageEvent) -> str:
    """What happened to the request as people read it: a 429 never reached the policy's
    verdict (a limit refused it), so it is not an "allow"."""
    return "refused" if event.status == 429 else event.decision


EXPORT_COLUMNS = [
    *("time", "request_id", "key_name", "key_prefix", "decision", "status", "error_code"),
    *("model", "route", "endpoint", "origin", "findings", "prompt_tokens"),
    *("completion_tokens", "cost_usd", "latency_ms", "overhead_ms"),
]


def export_row(event: UsageEvent, keys: dict[uuid.UUID, KeyLabel]) -> dict[str, Any]:
    key = keys.get(event.key_id) if event.key_id else None
    return {
        "time": event.occurred_at.isoformat(),
        "request_id": event.request_id,
        "key_name": key.name if key else None,
        "key_prefix": key.prefix if key else None,
        "decision": shown_decision(event),
        "status": event.status,
        "error_code": event.error_code,
        "model": event.alias,
        "route": event.deployment,
        "endpoint": event.endpoint,
        "origin": event.origin,
        "findings": sorted(event.finding_types or []),
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "cost_usd": str(event.cost_usd),
        "latency_ms": event.latency_ms,
        "overhead_ms": event.overhead_ms,
    }


async def export_batches(
    sessions: async_sessionmaker[AsyncSession],
    principal: Principal,
    f: RequestFilter,
    batch: int,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The filtered log, newest first, a page at a time, each page in a short transaction
    of its own (the response streams long after the request's session has closed)."""
    cursor = None
    while True:
        async with tenant_session(sessions, principal.tenant_id) as session:
            found = await browse(session, principal, f, before=cursor, limit=batch)
            keys = await key_labels(session, principal.tenant_id, found.rows)
        yield [export_row(e, keys) for e in found.rows]
        if found.older is None:
            return
        cursor = found.older
