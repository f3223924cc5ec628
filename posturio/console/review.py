"""Review queue: requests with a flagged or blocked finding awaiting a reviewer. Confirm,
mark false positive, assign, or escalate into an investigation; j/k move, c confirms, f
marks false positive (and nothing else), e escalates. Allowlisting values is a separate,
confirmed step for admins: a page shows which fingerprints and which rules they silence."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from posturio.console.forms import form, many, text
from posturio.console.frame import ConsoleController, flash, page
from posturio.gateway import investigations, review
from posturio.gateway.policy import store
from posturio.gateway.policy.api import policy_changed
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import Forbidden, PosturioError
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

    @get("/{decision_id:str}/allowlist")
    async def allowlist_plan(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, decision_id: FromPath[str]
    ) -> Template:
        return await self._plan_page(request, db, principal, decision_id)

    @staticmethod
    async def _plan_page(
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        decision_id: str,
        error: str | None = None,
    ) -> Template:
        """Exactly what allowlisting would change; nothing is ticked until the admin does."""
        plan = await review.allowlist_plan(db, principal, decision_id)
        return await page(
            request,
            db,
            principal,
            "console/review_allowlist.html",
            active="Review queue",
            plan=plan,
            error=error,
            status_code=400 if error else 200,
        )

    @post("/{decision_id:str}/allowlist", status_code=303)
    async def allowlist(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, decision_id: FromPath[str]
    ) -> Redirect | Template:
        data = await form(request)
        chosen = many(data, "fingerprint")
        if not chosen:
            return await self._plan_page(
                request, db, principal, decision_id, "Tick at least one value to allowlist."
            )
        seen = text(data, "policy_version")
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                _, version = await review.false_positive(
                    db,
                    principal,
                    decision_id,
                    allowlist=chosen,
                    policy_version=int(seen) if seen.isdigit() else None,
                )
        except PosturioError as exc:
            if isinstance(exc, Forbidden):
                raise
            return await self._plan_page(request, db, principal, decision_id, exc.message)
        assert version is not None
        policy_changed(request, db, principal.tenant_id)
        flash(
            request,
            f"Marked as a false positive; {len(chosen)} value(s) allowlisted in policy "
            f"version {version.version}.",
        )
        return Redirect(f"/console/policies?undo={version.version}#allowlist", status_code=303)

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
            await review.false_positive(db, principal, decision_id)
            message = "Marked as a false positive (the policy is unchanged)."
        elif action == "assign":
            who = text(data, "user_id")
            await review.assign(db, principal, decision_id, uuid.UUID(who) if who else None)
            message = "Assigned." if who else "Unassigned."
        elif action == "escalate":
            row = await store.decision(db, principal, decision_id)
            case = await investigations.create(
                db,
                principal,
                investigations.InvestigationIn(
                    f"Escalated: {row.action} by {row.rule_id or 'policy'} ({row.request_id[:8]})",
                    [row.request_id],
                ),
            )
            row.status = "escalated"
            flash(request, "Escalated into a new investigation.")
            return Redirect(f"/console/investigations/{case.id}", status_code=303)
        else:
            message = "Unknown action."
        flash(request, message)
        return Redirect("/console/review", status_code=303)
