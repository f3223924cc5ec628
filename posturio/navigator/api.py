"""Navigator's admin API: propose and list sources, approve / pause / resume / revoke
(audited, with a reason), upload files, sync on demand, documents and progress, and a
full-text search over what is live."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from posturio.navigator import index, sources
from posturio.navigator.models import Document, Source
from posturio.navigator.pipeline import embedder
from posturio.navigator.search import Filters, hybrid_search
from posturio.navigator.tasks import purge_source, sync_source
from posturio.platform.dependencies import Caller, Db, provide_api_principal, provide_tenant_db
from posturio.platform.errors import Conflict, PosturioError
from posturio.platform.repository import scoped
from posturio.workers.outbox import defer


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


class SearchIn(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    k: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    source_ids: list[uuid.UUID] | None = None
    kinds: list[Annotated[str, msgspec.Meta(max_length=10)]] | None = None
    since: datetime | None = None
    mode: Literal["hybrid", "vector", "text"] = "hybrid"


class SearchHitOut(msgspec.Struct):
    source: str
    uri: str
    title: str | None
    heading_path: str
    page: int | None
    snippet: str  # matched terms between [[ and ]]
    content: str
    score: float
    vector_rank: int | None
    text_rank: int | None


class HitOut(msgspec.Struct):
    source: str
    uri: str
    heading_path: str
    page: int | None
    content: str
    rank: float


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
        # Above the app-wide body limit; the operator's file limit is checked below, from
        # the declared length before anything is read.
        request_max_body_size=1024 * 1024 * 1024,
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        source_id: FromPath[str],
        filename: FromPath[str],
    ) -> DocumentOut:
        settings = request.app.state.settings
        limit = settings.navigator_max_file_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise PosturioError(
                f"the file is {declared:,} bytes, over the limit of {limit:,}",
                code="file_too_large",
                status_code=413,
            )
        content = await request.body()
        upload = await sources.add_upload(
            db,
            principal,
            settings,
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

    @post("/search", status_code=200, summary="Hybrid search (vectors + full text, fused)")
    async def hybrid(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, data: JSONBody[SearchIn]
    ) -> list[SearchHitOut]:
        model = request.app.state.settings.navigator_model
        encoder = await asyncio.to_thread(embedder, model)  # loaded once per process
        hits = await hybrid_search(
            db,
            principal.tenant_id,
            data.query,
            encoder,
            k=data.k,
            filters=Filters(
                tuple(data.source_ids) if data.source_ids else None,
                tuple(data.kinds) if data.kinds else None,
                data.since,
            ),
            mode=data.mode,
        )
        return [
            SearchHitOut(
                h.source,
                h.uri,
                h.title,
                h.heading_path,
                h.page,
                h.snippet,
                h.content,
                h.score,
                h.vector_rank,
                h.text_rank,
            )
            for h in hits
        ]

    @get("/search", summary="Full-text search over approved sources")
    async def search(
        self,
        db: Db,
        principal: Caller,
        q: Annotated[str, QueryParameter(min_length=1, max_length=500)],
        limit: Annotated[int, QueryParameter(ge=1, le=50)] = 10,
    ) -> list[HitOut]:
        hits = await index.text_search(db, principal.tenant_id, q, limit)
        return [HitOut(h.source, h.uri, h.heading_path, h.page, h.content, h.rank) for h in hits]
