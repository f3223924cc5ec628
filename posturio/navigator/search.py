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
    vector_rank: int | None
    text_rank: int | None


_LIVE = """
    FROM navigator_chunks c
    JOIN navigator_sources s ON s.id = c.source_id
    JOIN navigator_documents d ON d.id = c.document_id
    WHERE c.tenant_id = :tenant AND s.status = 'approved'
      AND c.model = coalesce(s.embedding_model, c.model)
      AND (CAST(:sources AS uuid[]) IS NULL OR c.source_id = ANY(CAST(:sources AS uuid[])))
      AND (CAST(:kinds AS text[]) IS NULL
           OR lower(substring(d.uri from '\\.([A-Za-z0-9]+)$')) = ANY(CAST(:kinds AS text[])))
      AND (CAST(:since AS timestamptz) IS NULL OR d.updated_at >= CAST(:since AS timestamptz))
"""

_VECTOR = f"""
WITH nearest AS MATERIALIZED (
    SELECT c.id, c.embedding <=> CAST(:vector AS vector) AS distance
    {_LIVE}
    ORDER BY distance
    LIMIT :candidates
)
SELECT id FROM nearest ORDER BY distance
"""  # noqa: S608 - constant fragments; values are bound parameters

_TEXT = f"""
SELECT c.id
{_LIVE}
  AND c.tsv @@ websearch_to_tsquery('english', :query)
ORDER BY ts_rank_cd(c.tsv, websearch_to_tsquery('english', :query)) DESC
LIMIT :candidates
"""

_DETAILS = f"""
SELECT c.id, s.name AS source, d.uri, d.title, c.heading_path, c.page, c.content,
       ts_headline('english', c.content, websearch_to_tsquery('english', :query),
                   'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=35, MinWords=15,
                    MaxFragments=2')
       AS snippet
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
            "vector": str(list(map(float, vector))),
            "candidates": candidates,
        },
    )
    return [r.id for r in rows]


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
            text(_DETAILS), {"tenant": tenant_id, "ids": top, "query": query}
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
            vector_rank=vector_rank.get(i),
            text_rank=text_rank.get(i),
        )
        for i in top
        if i in rows
    ]
