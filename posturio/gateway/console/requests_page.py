"""Requests: the searchable log and one request's detail (route attempts and timings,
findings with masked previews and evidence, policy rule and version, usage)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from posturio.gateway import investigations as cases
from posturio.gateway import request_log
from posturio.gateway.console.forms import form, many, text
from posturio.gateway.request_log import RequestFilter
from posturio.platform.console import ConsoleController, flash, page
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import PosturioError


class RequestsPage(ConsoleController):
    path = "/console/requests"

    @get("/")
    async def log(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        before: FromQuery[str | None] = None,
        view: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> Template:
        saved = None
        if view:
            saved = await cases.view(db, principal, view)
            f = RequestFilter.parse(saved.filters)
        else:
            f = RequestFilter.parse(dict(request.query_params))
        rows, next_before = await request_log.search(db, principal, f, before=before, limit=limit)
        query = f.query()
        next_url = f"?{urlencode({**query, 'before': next_before})}" if next_before else None
        open_cases = await cases.listing(db, principal, "open")
        return await page(
            request,
            db,
            principal,
            "console/requests.html",
            active="Requests",
            rows=rows,
            f=query,
            next_url=next_url,
            saved=saved,
            cases=open_cases,
            decisions=request_log.DECISIONS,
        )

    @get("/{request_id:str}")
    async def detail(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, request_id: FromPath[str]
    ) -> Template:
        event, decisions = await request_log.detail(db, principal, request_id)
        return await page(
            request,
            db,
            principal,
            "console/request_detail.html",
            active="Requests",
            event=event,
            decisions=decisions,
            cases=await cases.listing(db, principal, "open"),
        )

    @post("/investigate", status_code=303)
    async def investigate(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Redirect:
        """Put the ticked requests into an investigation (a new one, or an open one)."""
        data = await form(request)
        ids = many(data, "request_id")
        if not ids:
            raise PosturioError("tick at least one request")
        case_id = text(data, "case_id")
        if case_id:
            await cases.link(db, principal, case_id, ids)
        else:
            title = text(data, "title") or f"Requests {ids[0][:8]}…"
            case_id = str((await cases.create(db, principal, cases.InvestigationIn(title, ids))).id)
        await db.commit()
        flash(request, f"{len(ids)} request(s) added to the investigation")
        return Redirect(f"/console/investigations/{case_id}", status_code=303)
