"""Hybrid retrieval: HNSW over the embeddings and PostgreSQL full text, fused by
reciprocal rank fusion, over the chunks of sources that are approved now.

A tenant's filter on a shared HNSW index would starve a small tenant's results (the index
walk finds the big tenant's neighbours, the filter drops them); pgvector's iterative
index scan keeps walking until enough rows pass the filter. Relaxed order is re-sorted by
distance in the outer query."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.navigator.embedding import Embedder

RRF_K = 60  # the usual constant: ranks beyond a few dozen barely count
MARK_START, MARK_END = "[[", "]]"  # highlight markers: plain text, escaped by whoever renders


@dataclass(frozen=True, slots=True)
class Filters:
    source_ids: tuple[uuid.UUID, ...] | None = None
    kinds: tuple[str, ...] | None = None  # document types by extension, e.g. ("md", "pdf")
    since: datetime | None = None  # documents updated since
    # The caller's groups: a source limited to groups answers only members of one of
    # them. None means every source (admins, who approve them).
    groups: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    chunk_id: int
    source: str
    uri: str
    title: str | None
    heading_path: str
    page: int | None
    content: str
    snippet: str
    score: float
    similarity: float | None  # cosine similarity to the query (None in text mode)
    vector_rank: int | None
    text_rank: int | None


# The live sources (approved now) and their documents narrowed by the filters, computed
# first as arrays so each index scan sees plain conditions on the chunks table: a join in
# the ordered query would make Postgres sort an exact scan instead of walking HNSW.
_LIVE = """
    WITH live AS MATERIALIZED (
        SELECT id, embedding_model FROM navigator_sources
        WHERE tenant_id = :tenant AND status = 'approved'
          AND (CAST(:sources AS uuid[]) IS NULL OR id = ANY(CAST(:sources AS uuid[])))
          AND (CAST(:groups AS text[]) IS NULL OR groups IS NULL OR cardinality(groups) = 0
               OR CAST(groups AS text[]) && CAST(:groups AS text[]))
    ), docs AS MATERIALIZED (
        SELECT d.id FROM navigator_documents d
        WHERE (CAST(:kinds AS text[]) IS NOT NULL OR CAST(:since AS timestamptz) IS NOT NULL)
          AND d.tenant_id = :tenant AND d.source_id IN (SELECT id FROM live)
          AND (CAST(:kinds AS text[]) IS NULL
               OR lower(substring(d.uri from '\\.([A-Za-z0-9]+)$')) = ANY(CAST(:kinds AS text[])))
          AND (CAST(:since AS timestamptz) IS NULL OR d.updated_at >= CAST(:since AS timestamptz))
    )
"""

_CHUNK_FILTER = """
    c.tenant_id = :tenant
    AND c.source_id = ANY(ARRAY(SELECT id FROM live))
    AND (c.model = ANY(ARRAY(SELECT embedding_model FROM live WHERE embedding_model IS NOT NULL))
         OR c.source_id = ANY(ARRAY(SELECT id FROM live WHERE embedding_model IS NULL)))
    AND ((CAST(:kinds AS text[]) IS NULL AND CAST(:since AS timestamptz) IS NULL)
         OR c.document_id = ANY(ARRAY(SELECT id FROM docs)))
"""

_VECTOR = f"""
{_LIVE}, nearest AS MATERIALIZED (
    SELECT c.id, c.embedding <=> CAST(:vector AS vector) AS distance
    FROM navigator_chunks c
    WHERE {_CHUNK_FILTER}
    ORDER BY distance
    LIMIT :candidates
)
SELECT id FROM nearest ORDER BY distance
"""  # noqa: S608 - constant fragments; values are bound parameters

_TEXT = f"""
{_LIVE}
SELECT c.id
FROM navigator_chunks c
WHERE {_CHUNK_FILTER}
  AND c.tsv @@ websearch_to_tsquery('english', :query)
ORDER BY ts_rank_cd(c.tsv, websearch_to_tsquery('english', :query)) DESC
LIMIT :candidates
"""  # noqa: S608

_DETAILS = f"""
SELECT c.id, s.name AS source, d.uri, d.title, c.heading_path, c.page, c.content,
       ts_headline('english', c.content, websearch_to_tsquery('english', :query),
                   'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=35, MinWords=15,
                    MaxFragments=2')
       AS snippet,
       CASE WHEN CAST(:vector AS vector) IS NULL THEN NULL
            ELSE 1 - (c.embedding <=> CAST(:vector AS vector)) END AS similarity
FROM navigator_chunks c
JOIN navigator_sources s ON s.id = c.source_id
JOIN navigator_documents d ON d.id = c.document_id
WHERE c.tenant_id = :tenant AND c.id = ANY(:ids)
"""  # noqa: S608


def _params(tenant_id: uuid.UUID, filters: Filters) -> dict[str, Any]:
    return {
        "tenant": tenant_id,
        "sources": list(filters.source_ids) if filters.source_ids else None,
        "kinds": [k.lower().lstrip(".") for k in filters.kinds] if filters.kinds else None,
        "since": filters.since,
        "groups": list(filters.groups) if filters.groups is not None else None,
    }


async def vector_ids(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    vector: Any,
    filters: Filters,
    candidates: int,
) -> list[int]:
    # Both settings last for this transaction only.
    await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await session.execute(text(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, candidates * 2))}"))
    rows = await session.execute(
        text(_VECTOR),
        {
            **_params(tenant_id, filters),
            "vector": _literal(vector),
            "candidates": candidates,
        },
    )
    return [r.id for r in rows]


def _literal(vector: Any) -> str:
    return str(list(map(float, vector)))


async def text_ids(
    session: AsyncSession, tenant_id: uuid.UUID, query: str, filters: Filters, candidates: int
) -> list[int]:
    rows = await session.execute(
        text(_TEXT), {**_params(tenant_id, filters), "query": query, "candidates": candidates}
    )
    return [r.id for r in rows]


def fuse(*rankings: list[int]) -> dict[int, float]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return scores


async def hybrid_search(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    query: str,
    embedder: Embedder,
    *,
    k: int = 10,
    filters: Filters | None = None,
    candidates: int = 50,
    mode: str = "hybrid",  # hybrid | vector | text (the last two for the quality bench)
) -> list[SearchHit]:
    filters = filters or Filters()
    by_vector: list[int] = []
    by_text: list[int] = []
    vector = None
    if mode in ("hybrid", "vector"):
        vector = (await asyncio.to_thread(embedder.encode, [query]))[0]
        by_vector = await vector_ids(session, tenant_id, vector, filters, candidates)
    if mode in ("hybrid", "text"):
        by_text = await text_ids(session, tenant_id, query, filters, candidates)
    scores = fuse(by_vector, by_text)
    top = sorted(scores, key=lambda i: -scores[i])[:k]
    if not top:
        return []
    rows = {
        r.id: r
        for r in await session.execute(
            text(_DETAILS),
            {
                "tenant": tenant_id,
                "ids": top,
                "query": query,
                "vector": _literal(vector) if vector is not None else None,
            },
        )
    }
    vector_rank = {i: n for n, i in enumerate(by_vector, start=1)}
    text_rank = {i: n for n, i in enumerate(by_text, start=1)}
    return [
        SearchHit(
            chunk_id=i,
            source=rows[i].source,
            uri=rows[i].uri,
            title=rows[i].title,
            heading_path=rows[i].heading_path,
            page=rows[i].page,
            content=rows[i].content,
            snippet=rows[i].snippet,
            score=round(scores[i], 6),
            similarity=round(rows[i].similarity, 4) if rows[i].similarity is not None else None,
            vector_rank=vector_rank.get(i),
            text_rank=text_rank.get(i),
        )
        for i in top
        if i in rows
    ]
