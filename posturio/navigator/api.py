"""Navigator's admin API: propose and list sources, approve / pause / resume / revoke
(audited, with a reason), upload files, sync on demand, documents and progress,
and the feedback employees gave on answers (search and answers: reader_api.py,
answers.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.navigator import settings, sources
from posturio.navigator.models import Answer, Document, Feedback, Source
from posturio.navigator.tasks import purge_source, sync_source
from posturio.platform.dependencies import Caller, Db, provide_api_principal, provide_tenant_db
from posturio.platform.errors import Conflict
from posturio.platform.jobs.outbox import defer
from posturio.platform.repository import scoped


class SourceOut(msgspec.Struct):
    id: str
    name: str
    kind: str
    config: dict[str, Any]
    status: str
    groups: list[str] | None
    sync_interval_s: int | None
    proposed_by: str
    created_at: datetime
    updated_at: datetime
    last_sync_at: datetime | None
    embedding_model: str | None
    progress: dict[str, Any]


class DocumentOut(msgspec.Struct):
    uri: str
    title: str | None
    status: str
    error: str | None
    bytes: int
    chunks: int
    updated_at: datetime


class FeedbackItem(msgspec.Struct):
    answer_id: str
    question: str
    mode: str
    citation: int  # 0: the answer as a whole
    cited: dict[str, Any] | None  # the citation's source, when the vote is on one
    helpful: bool
    comment: str | None
    actor: str
    created_at: datetime


async def feedback_items(
    db: AsyncSession, tenant_id: uuid.UUID, helpful: bool | None, limit: int
) -> list[FeedbackItem]:
    stmt = (
        scoped(Feedback, tenant_id)
        .add_columns(Answer)
        .join(Answer, Answer.id == Feedback.answer_id)
        .order_by(Feedback.created_at.desc())
        .limit(limit)
    )
    if helpful is not None:
        stmt = stmt.where(Feedback.helpful == helpful)
    out = []
    for fb, answer in (await db.execute(stmt)).all():
        cited = next((c for c in answer.citations if c.get("n") == fb.citation), None)
        out.append(
            FeedbackItem(
                str(answer.id),
                answer.question,
                answer.mode,
                fb.citation,
                cited,
                fb.helpful,
                fb.comment,
                fb.actor,
                fb.created_at,
            )
        )
    return out


# Litestar's own bound for the upload routes, above the app-wide body limit; the
# operator's file limit (lower) is enforced by upload_limit as the body streams in.
UPLOAD_CEILING = 1024 * 1024 * 1024


def upload_limit(app: ASGIApp, overhead: int = 0) -> ASGIApp:
    """Refuse an upload (413) once its declared length or the bytes received so far pass
    the operator's file limit (plus a form's `overhead`): nothing more is read, and
    nothing parses the body first (the console's CSRF check reads a whole form)."""

    async def bounded(scope: Scope, receive: Receive, send: Send) -> None:
        limit = scope["litestar_app"].state.settings.navigator_max_file_bytes + overhead
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            raise sources.too_large(limit - overhead)
        received = 0

        async def counted() -> ReceiveMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            if received > limit:
                raise sources.too_large(limit - overhead)
            return message

        await app(scope, counted, send)

    return bounded


def source_out(s: Source) -> SourceOut:
    return SourceOut(
        str(s.id),
        s.name,
        s.kind,
        s.config,
        s.status,
        s.groups,
        s.sync_interval_s,
        s.proposed_by,
        s.created_at,
        s.updated_at,
        s.last_sync_at,
        s.embedding_model,
        s.progress or {},
    )


class NavigatorApi(Controller):
    path = "/api/navigator"
    tags = ["navigator"]
    dependencies = {"principal": Provide(provide_api_principal), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @get("/sources", summary="The tenant's sources with their state and progress")
    async def list_sources(self, db: Db, principal: Caller) -> list[SourceOut]:
        return [source_out(s) for s in await sources.listing(db, principal)]

    @post("/sources", summary="Propose a source (an admin approves it)")
    async def propose(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        data: JSONBody[sources.SourceIn],
    ) -> SourceOut:
        return source_out(await sources.propose(db, principal, request.app.state.settings, data))

    @get("/sources/{source_id:str}", summary="One source")
    async def get_source(self, db: Db, principal: Caller, source_id: FromPath[str]) -> SourceOut:
        return source_out(await sources.get(db, principal, source_id))

    @post(
        "/sources/{source_id:str}/transition",
        status_code=200,
        summary="Approve, pause, resume or revoke",
    )
    async def transition(
        self,
        db: Db,
        principal: Caller,
        source_id: FromPath[str],
        data: JSONBody[sources.TransitionIn],
    ) -> SourceOut:
        source = await sources.transition(db, principal, source_id, data)
        if source.status == "approved":
            defer(db, sync_source, str(principal.tenant_id), str(source.id))
        elif source.status == "revoked":
            defer(db, purge_source, str(principal.tenant_id), str(source.id))
        return source_out(source)

    @post("/sources/{source_id:str}/sync", status_code=202, summary="Re-sync now")
    async def sync_now(self, db: Db, principal: Caller, source_id: FromPath[str]) -> SourceOut:
        source = await sources.get(db, principal, source_id)
        if source.status != "approved":
            raise Conflict(f"only an approved source is synced (this one is {source.status})")
        defer(db, sync_source, str(principal.tenant_id), str(source.id))
        return source_out(source)

    @put(
        "/sources/{source_id:str}/files/{filename:str}",
        summary="Upload a file (raw body)",
        middleware=[upload_limit],
        request_max_body_size=UPLOAD_CEILING,
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        source_id: FromPath[str],
        filename: FromPath[str],
    ) -> DocumentOut:
        content = await request.body()  # bounded while it streams in: upload_limit
        upload = await sources.add_upload(
            db,
            principal,
            request.app.state.settings,
            source_id,
            filename,
            content,
            request.headers.get("content-type"),
        )
        source = await sources.get(db, principal, source_id)
        if source.status == "approved":
            defer(db, sync_source, str(principal.tenant_id), str(source.id))
        return DocumentOut(
            upload.filename, None, "pending", None, len(content), 0, upload.created_at
        )

    @get("/sources/{source_id:str}/documents", summary="Documents, failures with their reason")
    async def documents(
        self,
        db: Db,
        principal: Caller,
        source_id: FromPath[str],
        status: FromQuery[str | None] = None,
    ) -> list[DocumentOut]:
        source = await sources.get(db, principal, source_id)
        stmt = scoped(Document, principal.tenant_id).where(Document.source_id == source.id)
        if status:
            stmt = stmt.where(Document.status == status)
        rows = (await db.scalars(stmt.order_by(Document.uri))).all()
        return [
            DocumentOut(d.uri, d.title, d.status, d.error, d.bytes, d.chunks, d.updated_at)
            for d in rows
        ]

    @get("/settings", summary="Which chat model writes grounded answers")
    async def get_settings(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> settings.SettingsOut:
        state = request.app.state
        return await settings.current(db, principal.tenant_id, state.settings, state.gateway)

    @put("/settings", summary="Choose the chat model that writes grounded answers")
    async def put_settings(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        data: JSONBody[settings.SettingsIn],
    ) -> settings.SettingsOut:
        state = request.app.state
        await settings.save(db, principal, data, state.gateway)
        return await settings.current(db, principal.tenant_id, state.settings, state.gateway)

    @get("/feedback", summary="Feedback on grounded answers and citations, newest first")
    async def feedback(
        self,
        db: Db,
        principal: Caller,
        helpful: FromQuery[bool | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[FeedbackItem]:
        return await feedback_items(db, principal.tenant_id, helpful, limit)
