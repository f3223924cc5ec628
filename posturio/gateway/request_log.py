"""The request log: filtered, keyset-paginated reads of usage events (fast at millions of
rows: every filter is on an indexed column, finding types on a GIN index), and one
request's detail with its policy decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from sqlalchemy import and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import PolicyDecision, UsageEvent
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
    finding: Text | None = None  # a finding category, e.g. "email"
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


async def search(
    session: AsyncSession,
    principal: Principal,
    f: RequestFilter,
    *,
    before: str | None = None,
    limit: int = 50,
) -> tuple[list[UsageEvent], str | None]:
    """Newest first; `before` is the cursor of the last row of the previous page."""
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
        stmt = stmt.where(UsageEvent.finding_types.contains([f.finding]))
    if before:
        at, ident = _parse_cursor(before)
        stmt = stmt.where(
            or_(
                UsageEvent.occurred_at < at,
                and_(UsageEvent.occurred_at == at, UsageEvent.id < ident),
            )
        )
    rows = list(
        (
            await session.scalars(
                stmt.order_by(UsageEvent.occurred_at.desc(), UsageEvent.id.desc()).limit(limit + 1)
            )
        ).all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_cursor(rows[-1]) if more and rows else None)


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
