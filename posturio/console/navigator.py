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

from posturio.console.frame import ConsoleController, Form, flash, page, refused
from posturio.console.playground import SESSION_KEY, playground_key, session_key
from posturio.gateway.asgi import Receive
from posturio.gateway.pipeline import Call, Send
from posturio.navigator import settings, sources
from posturio.navigator.answers import serve_answer
from posturio.navigator.api import feedback_items
from posturio.navigator.grounding import relevant, weak_evidence
from posturio.navigator.models import Chunk, Document
from posturio.navigator.reader_api import FeedbackIn, FeedbackOut, SearchIn, find, record_feedback
from posturio.navigator.search import MARK_END, MARK_START, SearchHit
from posturio.platform.db import tenant_session
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.models import Role
from posturio.platform.repository import get_scoped, scoped


def highlighted(snippet: str) -> Markup:
    """The snippet escaped, its matched terms in <mark>."""
    html = str(escape(snippet)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    return Markup(html)  # noqa: S704 - escaped above; only our own tags added


BACK = "/console/navigator/"
RESULTS = 10


class SettingsForm(msgspec.Struct):
    answer_model: str = ""  # empty: the operator's default


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
        groups = await sources.member_groups(db, principal.tenant_id, principal.user_id)
        live = await sources.readable(db, principal.tenant_id, groups)
        hits: list[SearchHit] = []
        no_good_match = False
        if q.strip():
            wanted = SearchIn(
                q.strip(),
                k=RESULTS,
                source_ids=[s.id for s in live if str(s.id) == source] or None,
                kinds=[kind] if kind else None,
            )
            hits = await find(request, db, principal.tenant_id, groups, wanted)
            # Evidence too weak to answer from is too weak to list: say so instead of
            # showing passages that only happen to be the least far from nonsense.
            floor = app.state.settings.navigator_min_similarity
            no_good_match = weak_evidence(q, relevant(hits, floor, len(hits)))
            if no_good_match:
                hits = []
        admin = principal.at_least(Role.admin)
        answers = None
        if admin:
            answers = await settings.current(
                db, principal.tenant_id, app.state.settings, app.state.gateway
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
            no_good_match=no_good_match,
            show_scores=admin,  # fusion scores mean something to whoever tunes search
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
        choice = settings.SettingsIn(data.answer_model or None)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                await settings.save(db, principal, choice, request.app.state.gateway)
        except PosturioError as exc:
            return refused(request, exc, BACK, "Not saved: ")
        flash(request, f"Answers are now written by {choice.answer_model or 'the default'}.")
        return Redirect(BACK, status_code=303)

    @get("/chunks/{chunk_id:int}")
    async def passage(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, chunk_id: FromPath[int]
    ) -> Template:
        """Where a citation leads: the cited passage in its document, if the member may
        read it now (approved source, their groups); otherwise as if it did not exist."""
        assert principal.user_id is not None
        groups = await sources.member_groups(db, principal.tenant_id, principal.user_id)
        readable = {s.id: s for s in await sources.readable(db, principal.tenant_id, groups)}
        cited = (
            await db.scalars(
                scoped(Chunk, principal.tenant_id).where(
                    Chunk.id == chunk_id, Chunk.source_id.in_(readable)
                )
            )
        ).first()
        if cited is None:
            raise NotFound("no such passage among the sources you may read")
        document = await get_scoped(
            db, Document, principal.tenant_id, cited.document_id, "document"
        )
        chunks = (
            await db.scalars(
                scoped(Chunk, principal.tenant_id)
                .where(Chunk.document_id == cited.document_id, Chunk.model == cited.model)
                .order_by(Chunk.ordinal)
            )
        ).all()
        return await page(
            request,
            db,
            principal,
            "console/navigator_passage.html",
            active="Navigator",
            document=document,
            source_name=readable[cited.source_id].name,
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
