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
TEXT_CAP_FACTOR = 8  # full-text matches ranked per tier, per candidate wanted
# Weight in the fusion of a full-text rank: a chunk with every word of the query is strong
# evidence; one with only some of them (OR semantics) is weak, and at full weight it pushed
# the vectors' better answers down. bench.search_quality (83 questions, Python docs), RRF
# weight of partial matches -> hybrid recall@5 / MRR@10: 1.0 -> 0.880 / 0.728,
# 0.5 -> 0.928 / 0.751, 0.3 -> 0.928 / 0.793, 0.15 -> 0.928 / 0.826, 0 -> 0.904 / 0.817
# (vector only 0.904 / 0.824, text only 0.602 / 0.535). Chosen on those same questions:
# on a fresh index of the same pages hybrid lands one question below vector-only.
TEXT_WEIGHT_ALL, TEXT_WEIGHT_SOME = 1.0, 0.15
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

# The two full-text queries from the user's words (websearch syntax: "quoted phrases",
# -negation, or). `all_terms` ANDs them, as websearch_to_tsquery does; `any_term` ORs
# them (phrases stay phrases), so a question in natural language ("how do I read a file
# line by line") still matches the chunks that share some of its words. Both drop the
# english stop words. With a negation the query is kept as written (an OR beside a NOT
# would match nearly everything).
_QUERIES = """
, q AS MATERIALIZED (
    SELECT w AS all_terms,
           CASE WHEN numnode(w) = 0 OR strpos(CAST(w AS text), '!') > 0 THEN w
                ELSE CAST(replace(CAST(w AS text), ' & ', ' | ') AS tsquery) END AS any_term
    FROM websearch_to_tsquery('english', :query) w
)
"""

# Nearest chunks by the HNSW index (an iterative scan, see the module docstring).
_NEAREST = f"""
, nearest AS MATERIALIZED (
    SELECT c.id, c.embedding <=> CAST(:vector AS vector) AS distance
    FROM navigator_chunks c
    WHERE {_CHUNK_FILTER}
    ORDER BY distance
    LIMIT :candidates
), by_vector AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS r FROM nearest
)
"""  # noqa: S608 - constant fragments; values are bound parameters

# Full-text candidates through the GIN index (posturio_chunk_matches, migration 0008:
# under row-level security `@@` cannot use an index). Chunks that match every term come
# first, then those matching some; each tier is capped before ranking (ts_rank costs a
# heap visit per row, and a common word matches thousands), then ranked by ts_rank over
# the OR query, which counts how many of the terms a chunk has and how often.
_MATCH_ARGS = """
    ARRAY(SELECT id FROM live),
    ARRAY(SELECT embedding_model FROM live WHERE embedding_model IS NOT NULL),
    ARRAY(SELECT id FROM live WHERE embedding_model IS NULL),
    CASE WHEN CAST(:kinds AS text[]) IS NOT NULL OR CAST(:since AS timestamptz) IS NOT NULL
         THEN ARRAY(SELECT id FROM docs) END,
    :cap
"""
_LEXICAL = f"""
, matched AS MATERIALIZED (
    SELECT m.id, 0 AS tier, m.rank
    FROM q, posturio_chunk_matches(q.all_terms, q.any_term, {_MATCH_ARGS}) m
    UNION ALL
    SELECT m.id, 1 AS tier, m.rank
    FROM q, posturio_chunk_matches(q.any_term, q.any_term, {_MATCH_ARGS}) m
    WHERE CAST(q.any_term AS text) <> CAST(q.all_terms AS text)
), by_text AS (
    SELECT id, min(tier) AS tier,
           row_number() OVER (ORDER BY min(tier), max(rank) DESC, id) AS r
    FROM matched GROUP BY id ORDER BY r LIMIT :candidates
)
"""  # noqa: S608

_NO_VECTOR = """
, by_vector AS (SELECT NULL::bigint AS id, NULL::float8 AS distance, NULL::bigint AS r
                WHERE false)
"""
_NO_TEXT = """
, by_text AS (SELECT NULL::bigint AS id, NULL::int AS tier, NULL::bigint AS r WHERE false)
"""

# Reciprocal rank fusion of both rankings (a full-text rank weighted by its tier, see
# TEXT_WEIGHT_SOME), then the top hits' details and snippets (the snippet marks every
# query word found). Ties keep the vector ranking's order.
_FUSED = f"""
, fused AS (
    SELECT coalesce(v.id, t.id) AS id, v.r AS vector_rank, t.r AS text_rank, v.distance,
           coalesce(1.0::float8 / (:rrf_k + v.r), 0)
           + coalesce(CASE t.tier WHEN 0 THEN CAST(:w_all AS float8)
                                  ELSE CAST(:w_any AS float8) END
                    / (:rrf_k + t.r), 0)
           AS score
    FROM by_vector v FULL JOIN by_text t ON t.id = v.id
    ORDER BY score DESC, v.r NULLS LAST, t.r
    LIMIT :k
)
SELECT f.id, f.score, f.vector_rank, f.text_rank,
       s.name AS source, d.uri, d.title, c.heading_path, c.page, c.content,
       ts_headline('english', c.content, q.any_term,
                   'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=35, MinWords=15,
                    MaxFragments=2')
       AS snippet,
       CASE WHEN f.distance IS NOT NULL THEN 1 - f.distance
            WHEN CAST(:vector AS vector) IS NOT NULL
            THEN 1 - (c.embedding <=> CAST(:vector AS vector)) END AS similarity
FROM fused f
CROSS JOIN q
JOIN navigator_chunks c ON c.id = f.id
JOIN navigator_sources s ON s.id = c.source_id
JOIN navigator_documents d ON d.id = c.document_id
WHERE c.tenant_id = :tenant
ORDER BY f.score DESC, f.vector_rank NULLS LAST, f.text_rank
"""  # noqa: S608


def _sql(mode: str, tail: str) -> str:
    vector = _NEAREST if mode in ("hybrid", "vector") else _NO_VECTOR
    lexical = _LEXICAL if mode in ("hybrid", "text") else _NO_TEXT
    return _LIVE + _QUERIES + vector + lexical + tail


# One statement per search (plus the index settings before it): the round trips cost
# more than the queries once the indexes are used.
_SEARCH = {mode: _sql(mode, _FUSED) for mode in ("hybrid", "vector", "text")}
_VECTOR_IDS = _sql("vector", "SELECT id FROM by_vector ORDER BY r")

# Both settings last for this transaction only; one round trip.
_SETTINGS = text(
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', :ef_search, true)"
)


def _params(
    tenant_id: uuid.UUID,
    filters: Filters,
    *,
    query: str = "",
    vector: Any = None,
    candidates: int = 50,
) -> dict[str, Any]:
    return {
        "tenant": tenant_id,
        "sources": list(filters.source_ids) if filters.source_ids else None,
        "kinds": [k.lower().lstrip(".") for k in filters.kinds] if filters.kinds else None,
        "since": filters.since,
        "groups": list(filters.groups) if filters.groups is not None else None,
        "query": query,
        "vector": _literal(vector) if vector is not None else None,
        "candidates": candidates,
        "cap": text_cap(candidates),
        "rrf_k": RRF_K,
        "w_all": TEXT_WEIGHT_ALL,
        "w_any": TEXT_WEIGHT_SOME,
    }


def text_cap(candidates: int) -> int:
    """Full-text matches ranked per tier: enough that the best `candidates` of a focused
    query are all seen, bounded so that a common word costs a few ms, not a scan."""
    return max(200, candidates * TEXT_CAP_FACTOR)


async def _index_settings(session: AsyncSession, candidates: int) -> None:
    # ef_search above the number of rows wanted, or the walk returns fewer good ones.
    ef_search = max(40, min(1000, candidates * 2))
    await session.execute(_SETTINGS, {"ef_search": str(ef_search)})


def _literal(vector: Any) -> str:
    return str(list(map(float, vector)))


async def vector_ids(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    vector: Any,
    filters: Filters,
    candidates: int,
) -> list[int]:
    await _index_settings(session, candidates)
    rows = await session.execute(
        text(_VECTOR_IDS), _params(tenant_id, filters, vector=vector, candidates=candidates)
    )
    return [r.id for r in rows]


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
    vector: Any = None,  # the query's embedding when the caller has it already
) -> list[SearchHit]:
    if mode not in _SEARCH:
        raise ValueError(f"unknown search mode {mode!r}")
    filters = filters or Filters()
    if mode == "text":
        vector = None
    elif vector is None:
        vector = (await asyncio.to_thread(embedder.encode, [query]))[0]
    if vector is not None:
        await _index_settings(session, candidates)
    rows = await session.execute(
        text(_SEARCH[mode]),
        {
            **_params(tenant_id, filters, query=query, vector=vector, candidates=candidates),
            "k": k,
        },
    )
    return [
        SearchHit(
            chunk_id=r.id,
            source=r.source,
            uri=r.uri,
            title=r.title,
            heading_path=r.heading_path,
            page=r.page,
            content=r.content,
            snippet=r.snippet,
            score=round(r.score, 6),
            similarity=round(r.similarity, 4) if r.similarity is not None else None,
            vector_rank=r.vector_rank,
            text_rank=r.text_rank,
        )
        for r in rows
    ]
