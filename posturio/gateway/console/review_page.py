"""Review queue: blocked and flagged requests awaiting a reviewer. Confirm, mark false
positive (an admin may allowlist the values as a new policy version), assign, or escalate
into an investigation. j/k move, c confirms, f marks false positive, e escalates."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from posturio.gateway import investigations as cases
from posturio.gateway import review
from posturio.gateway.console.forms import form, text
from posturio.gateway.policy import store
from posturio.gateway.policy.api import policy_changed
from posturio.platform.console import ConsoleController, flash, page
from posturio.platform.dependencies import Caller, Db
from posturio.platform.models import Membership, Role, User
from posturio.platform.repository import scoped


async def reviewers(db: Db, principal: Caller) -> dict[uuid.UUID, str]:
    rows = await db.execute(
        scoped(Membership, principal.tenant_id)
        .with_only_columns(Membership.user_id, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.role != Role.member.value)
    )
    return {r.user_id: r.email for r in rows}


class ReviewPage(ConsoleController):
    path = "/console/review"

    @get("/")
    async def queue(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        mine: FromQuery[bool] = False,
    ) -> Template:
        items = await review.queue(db, principal, mine=mine)
        return await page(
            request,
            db,
            principal,
            "console/review.html",
            active="Review queue",
            items=items,
            mine=mine,
            people=await reviewers(db, principal),
            can_allowlist=principal.at_least(Role.admin),
        )

    @post("/{decision_id:str}", status_code=303)
    async def act(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, decision_id: FromPath[str]
    ) -> Redirect:
        data = await form(request)
        action = text(data, "action")
        if action == "confirm":
            await review.confirm(db, principal, decision_id)
            message = "Confirmed."
        elif action == "false_positive":
            allow = text(data, "allowlist") == "on"
            _, version = await review.false_positive(db, principal, decision_id, allowlist=allow)
            message = "Marked as a false positive." + (
                f" Allowlisted in policy version {version.version}." if version else ""
            )
            if version is not None:
                policy_changed(request, db, principal.tenant_id)
        elif action == "assign":
            who = text(data, "user_id")
            await review.assign(db, principal, decision_id, uuid.UUID(who) if who else None)
            message = "Assigned." if who else "Unassigned."
        elif action == "escalate":
            row = await store.decision(db, principal, decision_id)
            case = await cases.create(
                db,
                principal,
                cases.InvestigationIn(
                    f"Escalated: {row.action} by {row.rule_id or 'policy'} ({row.request_id[:8]})",
                    [row.request_id],
                ),
            )
            row.status = "escalated"
            await db.commit()
            flash(request, "Escalated into a new investigation.")
            return Redirect(f"/console/investigations/{case.id}", status_code=303)
        else:
            message = "Unknown action."
        await db.commit()
        flash(request, message)
        return Redirect("/console/review", status_code=303)
