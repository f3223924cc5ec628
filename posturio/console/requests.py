"""Requests: the searchable log and one request's detail (route attempts and timings,
findings with masked previews and evidence, policy rule and version, usage)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.console.export import EXPORT_BATCH, export_format, export_response
from posturio.console.forms import form, many, text
from posturio.console.frame import ConsoleController, flash, page
from posturio.console.people import names
from posturio.gateway import investigations, request_log
from posturio.gateway.models import SavedView
from posturio.gateway.request_log import RequestFilter
from posturio.platform import audit
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import PosturioError
from posturio.platform.models import Role
from posturio.platform.principal import Principal


async def _filter(
    request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, view: str | None
) -> tuple[RequestFilter, SavedView | None]:
    """The filter in the query string, or the one a saved view keeps."""
    if view:
        saved = await investigations.view(db, principal, view)
        return RequestFilter.parse(saved.filters), saved
    return RequestFilter.parse(dict(request.query_params)), None


PAGE_SIZE = 50


class RequestsPage(ConsoleController):
    path = "/console/requests"

    @get("/")
    async def log(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        before: FromQuery[str | None] = None,
        after: FromQuery[str | None] = None,
        view: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = PAGE_SIZE,
    ) -> Template:
        f, saved = await _filter(request, db, principal, view)
        found = await request_log.browse(db, principal, f, before=before, after=after, limit=limit)
        query = {**f.query(), **({"view": view} if view else {})}
        pages = {**query, **({"limit": str(limit)} if limit != PAGE_SIZE else {})}
        open_cases = await investigations.listing(db, principal, "open")
        return await page(
            request,
            db,
            principal,
            "console/requests.html",
            active="Requests",
            rows=found.rows,
            keys=await request_log.key_labels(db, principal.tenant_id, found.rows),
            shown=request_log.shown_decision,
            f=f.query(),
            next_url=f"?{urlencode({**pages, 'before': found.older})}" if found.older else None,
            prev_url=f"?{urlencode({**pages, 'after': found.newer})}" if found.newer else None,
            export_query=urlencode(query),
            saved=saved,
            cases=open_cases,
            decisions=request_log.DECISIONS,
        )

    @get("/export")
    async def export(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        view: FromQuery[str | None] = None,
        fmt: Annotated[str, QueryParameter(name="format", max_length=10)] = "csv",
    ) -> Stream:
        """The filtered log as a download (newest first, bounded, streamed); audited,
        since it takes the tenant's traffic out of the console."""
        principal.require(Role.reviewer)
        kind = export_format(fmt)
        f, _ = await _filter(request, db, principal, view)
        await audit.by(
            db,
            principal,
            action="requests.export",
            data={"format": kind, "filter": f.query()},
        )
        rows = request_log.export_batches(
            request.app.state.sessionmaker, principal, f, EXPORT_BATCH
        )
        return export_response(rows, fmt=kind, name="requests", columns=request_log.EXPORT_COLUMNS)

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
            shown=request_log.shown_decision,
            decisions=decisions,
            names=await names(db, principal.tenant_id, [d.reviewed_by for d in decisions]),
            cases=await investigations.listing(db, principal, "open"),
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
            await investigations.link(db, principal, case_id, ids)
        else:
            title = text(data, "title") or f"Requests {ids[0][:8]}…"
            case_id = str(
                (
                    await investigations.create(
                        db, principal, investigations.InvestigationIn(title, ids)
                    )
                ).id
            )
        flash(request, f"{len(ids)} request(s) added to the investigation")
        return Redirect(f"/console/investigations/{case_id}", status_code=303)
