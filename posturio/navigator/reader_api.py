"""Navigator for employees: hybrid search over the sources they may read, feedback on
grounded answers and their citations (answers themselves: answers.py), and the server
folders the operator granted to the tenant. Any key of the tenant with the gateway or
admin scope may call it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.navigator import grants
from posturio.navigator.answers import admit_search, masked_comment
from posturio.navigator.indexing import embedder
from posturio.navigator.models import Answer, Feedback
from posturio.navigator.search import Filters, SearchHit, hybrid_search
from posturio.navigator.sources import viewer_groups
from posturio.platform.dependencies import Caller, Db, provide_tenant_db
from posturio.platform.errors import Forbidden, PosturioError
from posturio.platform.keyauth import KeyAuthenticator, token_from_headers
from posturio.platform.models import Role, Scope
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped


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
    similarity: float | None
    vector_rank: int | None
    text_rank: int | None


class FeedbackIn(msgspec.Struct, forbid_unknown_fields=True):
    helpful: bool
    citation: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0  # 0: the answer as a whole
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class FolderOut(msgspec.Struct):
    path: str
    granted_at: datetime


class FeedbackOut(msgspec.Struct):
    answer_id: str
    citation: int
    helpful: bool


async def provide_reader(request: Request[Any, Any, Any]) -> Principal:
    authenticator: KeyAuthenticator = request.app.state.key_authenticator
    key = await authenticator.authenticate(token_from_headers(request.headers))
    if not {Scope.gateway.value, Scope.admin.value} & key.scopes:
        raise Forbidden("this API key has neither the gateway nor the admin scope")
    request.state.key = key
    return Principal(
        tenant_id=key.tenant_id,
        role=Role.admin if Scope.admin.value in key.scopes else Role.member,
        actor=f"key:{key.prefix}",
        key_id=key.id,
        scopes=key.scopes,
    )


async def find(
    request: Request[Any, Any, Any], db: Db, tenant_id: uuid.UUID, groups: Any, data: SearchIn
) -> list[SearchHit]:
    """One search for the API and the console page alike: the member's or key's groups,
    the request's filters, the operator's similarity floor."""
    model = await asyncio.to_thread(embedder, request.app.state.settings.navigator_model)
    return await hybrid_search(
        db,
        tenant_id,
        data.query,
        model,
        k=data.k,
        filters=Filters(
            tuple(data.source_ids) if data.source_ids else None,
            tuple(data.kinds) if data.kinds else None,
            data.since,
            groups=groups,
        ),
        mode=data.mode,
        min_similarity=request.app.state.settings.navigator_min_similarity,
    )


async def search(
    request: Request[Any, Any, Any], db: Db, tenant_id: uuid.UUID, groups: Any, data: SearchIn
) -> list[SearchHitOut]:
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
            h.similarity,
            h.vector_rank,
            h.text_rank,
        )
        for h in await find(request, db, tenant_id, groups, data)
    ]


class NavigatorReaderApi(Controller):
    path = "/api/navigator"
    tags = ["navigator"]
    dependencies = {"principal": Provide(provide_reader), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @post("/search", status_code=200, summary="Hybrid search (vectors + full text, fused)")
    async def hybrid(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, data: JSONBody[SearchIn]
    ) -> list[SearchHitOut]:
        assert principal.key_id is not None
        client = request.client.host if request.client else None
        await admit_search(request.app.state.gateway, request.state.key, client)
        groups = await viewer_groups(db, principal.tenant_id, principal.key_id, principal.scopes)
        return await search(request, db, principal.tenant_id, groups, data)

    @get("/folders", summary="Server folders the operator granted to this tenant")
    async def folders(self, db: Db, principal: Caller) -> list[FolderOut]:
        return [
            FolderOut(g.path, g.created_at) for g in await grants.listing(db, principal.tenant_id)
        ]

    @post(
        "/answers/{answer_id:str}/feedback",
        status_code=200,
        summary="Helpful or not: an answer (citation 0) or one of its citations",
    )
    async def feedback(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        answer_id: FromPath[str],
        data: JSONBody[FeedbackIn],
    ) -> FeedbackOut:
        return await record_feedback(request, db, principal, answer_id, data)


async def record_feedback(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    principal: Principal,
    answer_id: str,
    data: FeedbackIn,
) -> FeedbackOut:
    """One person's vote on an answer or one of its citations; voting again changes it.
    A comment is kept with whatever the tenant's detectors find in it masked."""
    answer = await get_scoped(db, Answer, principal.tenant_id, answer_id, "answer")
    if data.citation and data.citation not in {c.get("n") for c in answer.citations}:
        raise PosturioError(
            f"this answer has no citation [{data.citation}]", code="invalid_citation"
        )
    values = {
        "tenant_id": principal.tenant_id,
        "answer_id": answer.id,
        "citation": data.citation,
        "helpful": data.helpful,
        "comment": await masked_comment(
            request.app.state.gateway, principal.tenant_id, data.comment
        )
        if data.comment
        else None,
        "actor": principal.actor,
        "created_at": datetime.now(UTC),
    }
    await db.execute(
        insert(Feedback)
        .values(**values)
        .on_conflict_do_update(
            constraint="uq_navigator_feedback_vote",
            set_={k: values[k] for k in ("helpful", "comment", "created_at")},
        )
    )
    return FeedbackOut(str(answer.id), data.citation, data.helpful)
