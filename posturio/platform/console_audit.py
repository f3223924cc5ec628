"""Console: the audit log, newest first, filtered by action and actor, paged by sequence
number (`before_seq`), with the hash chain's verification at the top. Admins only."""

from __future__ import annotations

import json
import uuid
from typing import Annotated
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import select

from posturio.platform import accounts, audit
from posturio.platform.console import ConsoleController, page
from posturio.platform.dependencies import Caller, Db
from posturio.platform.models import AuditEvent, Role, User

PAGE_SIZE = 50
# Offered as suggestions in the action filter (any exact action name works).
KNOWN_ACTIONS = (
    "credential.create",
    "credential.delete",
    "decision.review",
    "key.create",
    "key.extend",
    "key.limits",
    "key.revoke",
    "member.add",
    "member.remove",
    "member.role",
    "policy.update",
    "route.create",
    "route.delete",
    "route.update",
    "signup",
    "tenant.create",
    "tenant.update",
)


async def _actor_filter(db: Db, actor: str) -> str:
    """People type an email; the log records `user:<id>`. Other actors pass unchanged."""
    if "@" not in actor:
        return actor
    user = await accounts.user_by_email(db, actor)
    return f"user:{user.id}" if user else actor


async def _actor_names(db: Db, events: list[AuditEvent]) -> dict[str, str]:
    ids = set()
    for e in events:
        kind, _, ref = e.actor.partition(":")
        if kind == "user":
            try:
                ids.add(uuid.UUID(ref))
            except ValueError:
                continue
    if not ids:
        return {}
    rows = await db.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {f"user:{r.id}": r.email for r in rows}


class AuditPage(ConsoleController):
    path = "/console/audit"

    @get("/")
    async def audit_log(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        action: Annotated[str, QueryParameter(max_length=100)] = "",
        actor: Annotated[str, QueryParameter(max_length=320)] = "",
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
            action=action or None,
            actor=await _actor_filter(db, actor) if actor else None,
        )
        next_url = None
        if len(events) == PAGE_SIZE and events[-1].seq > 1:
            query = {k: v for k, v in {"action": action, "actor": actor}.items() if v}
            next_url = f"/console/audit?{urlencode({**query, 'before_seq': events[-1].seq})}"
        return await page(
            request,
            db,
            principal,
            "console/audit.html",
            active="Audit log",
            report=report,
            events=[(e, json.dumps(e.data, sort_keys=True, ensure_ascii=False)) for e in events],
            names=await _actor_names(db, events),
            action=action,
            actor=actor,
            before_seq=before_seq,
            known_actions=KNOWN_ACTIONS,
            next_url=next_url,
        )
