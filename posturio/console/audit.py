"""Console: the audit log, newest first, filtered by action (a prefix: `policy.` finds
`policy.update`) and actor, paged by sequence number (`before_seq`), with the hash chain's
verification at the top, details as readable fields, and export. Admins only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.console.export import EXPORT_BATCH, export_format, export_response
from posturio.console.frame import ConsoleController, page
from posturio.console.people import names
from posturio.platform import accounts, audit
from posturio.platform.db import tenant_session
from posturio.platform.dependencies import Caller, Db
from posturio.platform.models import AuditEvent, Role
from posturio.platform.principal import Principal

PAGE_SIZE = 50
# Offered as suggestions in the action filter: families (a prefix finds them all) and
# the names people look for most; any prefix of an action works.
KNOWN_ACTIONS = (
    *("auth.", "auth.sign_in", "auth.sign_in_failed", "auth.break_glass", "key.", "key.revoke"),
    *("member.", "member.invite", "member.remove", "member.role", "policy.", "policy.update"),
    *("route.", "decision.", "investigation.", "credential.", "source.", "navigator.", "sso."),
    *("scim.", "tenant.", "requests.export", "audit.export"),
)
EXPORT_COLUMNS = ["seq", "time", "actor", "actor_label", "action", "target_type", "target_id"]
EXPORT_COLUMNS += ["details"]


async def _actor_filter(db: AsyncSession, actor: str) -> str:
    """People type an email; the log records `user:<id>`. Other actors pass unchanged."""
    if "@" not in actor:
        return actor
    user = await accounts.user_by_email(db, actor)
    return f"user:{user.id}" if user else actor


def _people_in(data: dict[str, Any]) -> list[str]:
    """User ids inside an event's details (`user_id`, `assignee_id`, …), to be named."""
    return [str(v) for k, v in data.items() if k.endswith(("user_id", "_by")) and v]


def _value(value: Any, labels: dict[str, str]) -> str:
    if isinstance(value, list):
        return ", ".join(_value(v, labels) for v in value) or "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if value is None or value == "":
        return "—"
    text = str(value)
    return labels.get(text, text)


def details(event: AuditEvent, labels: dict[str, str]) -> list[tuple[str, str]]:
    """An event's details as labelled fields (`reason: left on a laptop`), people named."""
    return [(k.replace("_", " "), _value(v, labels)) for k, v in sorted(event.data.items())]


async def _labels(
    db: AsyncSession, tenant_id: uuid.UUID, events: list[AuditEvent]
) -> dict[str, str]:
    actors: list[str | None] = [e.actor for e in events]
    actors += [p for e in events for p in _people_in(e.data)]
    actors += [e.target_id for e in events if e.target_type == "user"]
    return await names(db, tenant_id, actors)


async def _filters(db: AsyncSession, action: str, actor: str) -> dict[str, Any]:
    return {
        "action_prefix": action or None,
        "actor": await _actor_filter(db, actor) if actor else None,
    }


async def _export_batches(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, filters: dict[str, Any]
) -> AsyncGenerator[list[dict[str, Any]], None]:
    before: int | None = None
    while True:
        async with tenant_session(sessions, principal.tenant_id) as db:
            events = await audit.list_events(
                db, principal.tenant_id, limit=EXPORT_BATCH, before_seq=before, **filters
            )
            labels = await _labels(db, principal.tenant_id, events)
        yield [
            {
                "seq": e.seq,
                "time": e.occurred_at.isoformat(),
                "actor": e.actor,
                "actor_label": labels.get(e.actor, e.actor),
                "action": e.action,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "details": json.dumps(e.data, sort_keys=True, ensure_ascii=False),
            }
            for e in events
        ]
        if len(events) < EXPORT_BATCH:
            return
        before = events[-1].seq


Action = Annotated[str, QueryParameter(max_length=100)]
Actor = Annotated[str, QueryParameter(max_length=320)]


class AuditPage(ConsoleController):
    path = "/console/audit"

    @get("/")
    async def audit_log(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        action: Action = "",
        actor: Actor = "",
        before_seq: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> Template:
        principal.require(Role.admin)
        action, actor = action.strip(), actor.strip()
        # The whole chain is walked on every view: tampering shows on the first page read.
        report = await audit.verify_chain(db, principal.tenant_id)
        events = await audit.list_events(
            db,
            principal.tenant_id,
            limit=PAGE_SIZE,
            before_seq=before_seq,
            **await _filters(db, action, actor),
        )
        query = {k: v for k, v in {"action": action, "actor": actor}.items() if v}
        next_url = None
        if len(events) == PAGE_SIZE and events[-1].seq > 1:
            next_url = f"/console/audit?{urlencode({**query, 'before_seq': events[-1].seq})}"
        labels = await _labels(db, principal.tenant_id, events)
        return await page(
            request,
            db,
            principal,
            "console/audit.html",
            active="Audit log",
            report=report,
            events=[(e, details(e, labels)) for e in events],
            names=labels,
            action=action,
            actor=actor,
            before_seq=before_seq,
            known_actions=KNOWN_ACTIONS,
            next_url=next_url,
            export_query=urlencode(query),
        )

    @get("/export")
    async def export(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        action: Action = "",
        actor: Actor = "",
        fmt: Annotated[str, QueryParameter(name="format", max_length=10)] = "csv",
    ) -> Stream:
        """The filtered log as a download, newest first, bounded and streamed; the export
        is itself an event of the log."""
        principal.require(Role.admin)
        kind = export_format(fmt)
        filters = await _filters(db, action.strip(), actor.strip())
        await audit.by(
            db,
            principal,
            action="audit.export",
            data={"format": kind, "action": action.strip(), "actor": actor.strip()},
        )
        rows = _export_batches(request.app.state.sessionmaker, principal, filters)
        return export_response(rows, fmt=kind, name="audit", columns=EXPORT_COLUMNS)
