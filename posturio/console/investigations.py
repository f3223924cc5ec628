"""Investigations: list and open cases; one case's linked requests, timeline, notes,
status and assignee, and saved views of the request log to reopen later."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from posturio.console.forms import form, text
from posturio.console.frame import ConsoleController, flash, page
from posturio.console.people import names
from posturio.console.review import reviewers
from posturio.gateway import investigations
from posturio.gateway.models import PolicyDecision, UsageEvent
from posturio.gateway.request_log import RequestFilter
from posturio.platform.dependencies import Caller, Db
from posturio.platform.repository import scoped

STATUSES = ("open", "in_review", "closed")


class InvestigationsPage(ConsoleController):
    path = "/console/investigations"

    @get("/")
    async def listing(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        status: FromQuery[str | None] = None,
    ) -> Template:
        return await page(
            request,
            db,
            principal,
            "console/investigations.html",
            active="Investigations",
            items=await investigations.listing(db, principal, status or None),
            status=status,
            statuses=STATUSES,
            people=await reviewers(db, principal),
        )

    @post("/", status_code=303)
    async def create(self, request: Request[Any, Any, Any], db: Db, principal: Caller) -> Redirect:
        data = await form(request)
        case = await investigations.create(
            db,
            principal,
            investigations.InvestigationIn(text(data, "title") or "Untitled investigation"),
        )
        return Redirect(f"/console/investigations/{case.id}", status_code=303)

    @get("/{case_id:str}")
    async def detail(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, case_id: FromPath[str]
    ) -> Template:
        case = await investigations.get(db, principal, case_id)
        ids = [link.request_id for link in case.links]
        events = (
            (
                await db.scalars(
                    scoped(UsageEvent, principal.tenant_id).where(UsageEvent.request_id.in_(ids))
                )
            ).all()
            if ids
            else []
        )
        decisions = (
            (
                await db.scalars(
                    scoped(PolicyDecision, principal.tenant_id).where(
                        PolicyDecision.request_id.in_(ids)
                    )
                )
            ).all()
            if ids
            else []
        )
        by_request = {d.request_id: d for d in decisions}
        views = [(v, urlencode({"view": str(v.id)})) for v in case.views]
        return await page(
            request,
            db,
            principal,
            "console/investigation.html",
            active="Investigations",
            case=case.investigation,
            events=sorted(events, key=lambda e: e.occurred_at),
            decisions=by_request,
            timeline=case.notes,
            views=views,
            statuses=STATUSES,
            people=await reviewers(db, principal),
            names=await names(
                db,
                principal.tenant_id,
                [case.investigation.created_by, *(n.author for n in case.notes)],
            ),
            filter_fields=list(RequestFilter.__struct_fields__),
        )

    @post("/{case_id:str}", status_code=303)
    async def act(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, case_id: FromPath[str]
    ) -> Redirect:
        data = await form(request)
        action = text(data, "action")
        if action == "note":
            await investigations.add_note(db, principal, case_id, text(data, "body"))
            message = "Note added."
        elif action == "update":
            who = text(data, "assignee_id")
            await investigations.update(
                db,
                principal,
                case_id,
                investigations.UpdateIn(
                    status=text(data, "status") or None,  # type: ignore[arg-type]
                    assignee_id=uuid.UUID(who) if who else None,
                    unassign=not who,
                ),
            )
            message = "Investigation updated."
        elif action == "view":
            filters = RequestFilter.parse({k: v for k, v in data.items() if k != "name"})
            await investigations.save_view(
                db, principal, case_id, investigations.ViewIn(text(data, "name") or "view", filters)
            )
            message = "View saved."
        elif action == "link":
            ids = [
                i.strip() for i in text(data, "request_ids").replace(",", " ").split() if i.strip()
            ]
            added = await investigations.link(db, principal, case_id, ids)
            message = f"{len(added)} request(s) linked."
        else:
            message = "Unknown action."
        flash(request, message)
        return Redirect(f"/console/investigations/{case_id}", status_code=303)
