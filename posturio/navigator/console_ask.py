"""Console page where members search and ask Navigator: hybrid search over the sources
they may read (server-rendered, highlighted), grounded answers streamed through the
gateway as their playground key, helpful / not helpful on answers and citations — and,
for admins, the feedback everyone gave."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, asgi, get, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from markupsafe import Markup, escape
from sqlalchemy import text

from posturio.gateway.asgi import Receive
from posturio.gateway.pipeline import Call, Send
from posturio.gateway.playground import SESSION_KEY, playground_key, session_key
from posturio.navigator import settings, sources
from posturio.navigator.answers import member_groups, serve_answer
from posturio.navigator.api import feedback_items
from posturio.navigator.reader_api import FeedbackIn, FeedbackOut, SearchIn, record_feedback, search
from posturio.navigator.search import MARK_END, MARK_START
from posturio.platform.console import ConsoleController, Form, flash, page
from posturio.platform.db import tenant_session
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import Forbidden, NotFound, PosturioError
from posturio.platform.models import Role


def highlighted(snippet: str) -> Markup:
    """The snippet escaped, its matched terms in <mark>."""
    html = str(escape(snippet)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    return Markup(html)  # noqa: S704 - escaped above; only our own tags added


BACK = "/console/navigator/"


class SettingsForm(msgspec.Struct):
    answer_model: str = ""  # empty: the operator's default


def _may_read(source_groups: list[str] | None, groups: tuple[str, ...] | None) -> bool:
    return groups is None or not source_groups or bool(set(source_groups) & set(groups))


class AskPage(ConsoleController):
    path = "/console/navigator"

    @get("/")
    async def ask(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        q: Annotated[str, QueryParameter(max_length=2000)] = "",
        source: Annotated[str, QueryParameter(max_length=40)] = "",
        kind: Annotated[str, QueryParameter(max_length=10)] = "",
    ) -> Template:
        assert principal.user_id is not None
        app = request.app
        # Answers go through the gateway as the member's playground key.
        async with tenant_session(app.state.sessionmaker, principal.tenant_id) as session:
            key = await playground_key(session, principal)
        request.set_session({**request.session, SESSION_KEY: key.prefix})
        groups = await member_groups(db, principal.tenant_id, principal.user_id)
        live = [
            s
            for s in await sources.listing(db, principal)
            if s.status == "approved" and _may_read(s.groups, groups)
        ]
        hits = []
        if q.strip():
            chosen = [s.id for s in live if str(s.id) == source]
            query = SearchIn(
                query=q.strip(),
                k=10,
                source_ids=chosen or None,
                kinds=[kind] if kind else None,
            )
            hits = await search(request, db, principal.tenant_id, groups, query)
        admin = principal.at_least(Role.admin)
        answers = None
        if admin:
            gateway = app.state.gateway
            answers = settings.describe(
                await settings.own_choice(db, principal.tenant_id),
                app.state.settings.navigator_answer_model,
                await gateway.routes.get(principal.tenant_id),
                set(gateway.virtual_models),
            )
        return await page(
            request,
            db,
            principal,
            "console/navigator.html",
            active="Navigator",
            q=q,
            source=source,
            kind=kind,
            sources=live,
            hits=[(h, highlighted(h.snippet)) for h in hits],
            feedback=await feedback_items(db, principal.tenant_id, None, 50) if admin else None,
            answers=answers,
        )

    @post("/settings", status_code=303)
    async def save_settings(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        data: Annotated[SettingsForm, Form],
    ) -> Redirect:
        gateway = request.app.state.gateway
        choice = settings.SettingsIn(data.answer_model or None)
        try:
            table = await gateway.routes.get(principal.tenant_id)
            await settings.save(db, principal, choice, table, set(gateway.virtual_models))
        except PosturioError as exc:
            if isinstance(exc, Forbidden):
                raise
            await db.rollback()
            flash(request, f"Not saved: {exc.message}")
            return Redirect(BACK, status_code=303)
        flash(request, f"Answers are now written by {choice.answer_model or 'the default'}.")
        return Redirect(BACK, status_code=303)

    @get("/chunks/{chunk_id:int}")
    async def passage(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, chunk_id: FromPath[int]
    ) -> Template:
        """Where a citation leads: the cited passage in its document, if the member may
        read it now (approved source, their groups); otherwise as if it did not exist."""
        assert principal.user_id is not None
        cited = (
            await db.execute(
                text(
                    "SELECT c.document_id, c.model, d.uri, d.title, s.name, s.groups "
                    "FROM navigator_chunks c "
                    "JOIN navigator_sources s ON s.id = c.source_id AND s.status = 'approved' "
                    "JOIN navigator_documents d ON d.id = c.document_id "
                    "WHERE c.tenant_id = :t AND c.id = :id"
                ),
                {"t": principal.tenant_id, "id": chunk_id},
            )
        ).first()
        groups = await member_groups(db, principal.tenant_id, principal.user_id)
        if cited is None or not _may_read(cited.groups, groups):
            raise NotFound("no such passage among the sources you may read")
        chunks = (
            await db.execute(
                text(
                    "SELECT id, heading_path, page, content FROM navigator_chunks "
                    "WHERE tenant_id = :t AND document_id = :d AND model = :m ORDER BY ordinal"
                ),
                {"t": principal.tenant_id, "d": cited.document_id, "m": cited.model},
            )
        ).all()
        return await page(
            request,
            db,
            principal,
            "console/navigator_passage.html",
            active="Navigator",
            document=cited,
            chunks=chunks,
            cited_id=chunk_id,
        )

    @post("/answers/{answer_id:str}/feedback", status_code=200)
    async def feedback(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        answer_id: FromPath[str],
        data: JSONBody[FeedbackIn],
    ) -> FeedbackOut:
        return await record_feedback(request, db, principal, answer_id, data)


@asgi("/console/navigator/answer", include_in_schema=False, copy_scope=False)
async def console_answer(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The page's answers: Navigator's answer API, as the member's playground key."""

    async def authenticate(call: Call) -> None:
        await session_key(scope, receive, call)

    await serve_answer(scope, receive, send, authenticate)
