"""Hybrid retrieval: HNSW over the embeddings and PostgreSQL full text ranked by a BM25
score, fused (see VECTOR_HEAD), over the chunks of sources that are approved now.

A tenant's filter on a shared HNSW index would starve a small tenant's results (the index
walk finds the big tenant's neighbours, the filter drops them); pgvector's iterative
index scan keeps walking until enough rows pass the filter. Relaxed order is re-sorted by
distance in the outer query."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.navigator.embedding import Embedder

# Fusion, chosen by bench.search_fusion on two corpora (Python docs, git-doc): the vector
# leg's first VECTOR_HEAD chunks keep their places (the dense ranking is the stronger
# one at the top: every score fusion tried cost MRR there), and the rest is ordered by
# reciprocal rank fusion, 1 / (RRF_K + vector rank) + TEXT_WEIGHT / (RRF_K + text rank),
# where the lexical leg lifts what both legs found and adds what only it found (recall).
# With the BM25 leg of migration 0020, recall@5 / recall@10 / MRR@10 / few-shared-words
# recall@5 (git: and answer@5): Python vectors alone 0.919 / 0.964 / 0.850 / 0.795, head 2
# + RRF k 60 weight 0.3 (the previous constants) 0.919 / 0.964 / 0.851 / 0.795, head 2 +
# RRF k 30 weight 0.5 0.928 / 0.973 / 0.851 / 0.818; git vectors alone 0.839 / 0.875 /
# 0.621 / 0.710 / 0.786, k 60 weight 0.3 0.821 / 0.893 / 0.626 / 0.710 / 0.821, k 30
# weight 0.5 0.839 / 0.893 / 0.628 / 0.710 / 0.839: of about 90 rules the only one never
# below vectors alone on either set (chosen on these questions: ties remain on git).
# Heading-share bonuses, absolute BM25 (over the question's idf sum), gating and
# squaring were measured too and gained nothing.
VECTOR_HEAD = 2
RRF_K = 30
TEXT_WEIGHT = 0.5
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

# The user's words as full-text terms (websearch syntax: "quoted phrases", -negation,
# or), english stop words dropped: each word or phrase is one term of the BM25 score (an
# identifier such as pg_dump or max_connections is the phrase pg <-> dump, matched whole).
# A query with a negation or an `or` is one term as written. `any_term` ORs the terms, to
# mark every word found in the snippet.
_QUERIES = """
, q AS MATERIALIZED (
    SELECT CASE WHEN numnode(w) = 0 THEN CAST(ARRAY[] AS tsquery[])
                WHEN strpos(CAST(w AS text), '!') > 0 OR strpos(CAST(w AS text), '|') > 0
                THEN ARRAY[w]
                ELSE CAST(string_to_array(CAST(w AS text), ' & ') AS tsquery[]) END AS terms,
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

# Full-text candidates through the GIN index (posturio_chunk_bm25, migration 0013: under
# row-level security `@@` cannot use an index), every match ranked by its BM25 score.
_MATCH_ARGS = """
    ARRAY(SELECT id FROM live),
    CAST(ARRAY(SELECT embedding_model FROM live WHERE embedding_model IS NOT NULL) AS text[]),
    ARRAY(SELECT id FROM live WHERE embedding_model IS NULL),
    CASE WHEN CAST(:kinds AS text[]) IS NOT NULL OR CAST(:since AS timestamptz) IS NOT NULL
         THEN ARRAY(SELECT id FROM docs) END,
    CAST(:candidates AS integer)
"""
_LEXICAL = f"""
, by_text AS (
    SELECT m.id, m.score AS bm25, row_number() OVER (ORDER BY m.score DESC, m.id) AS r
    FROM q, posturio_chunk_bm25(q.terms, {_MATCH_ARGS}) m
)
"""  # noqa: S608

_NO_VECTOR = """
, by_vector AS (SELECT NULL::bigint AS id, NULL::float8 AS distance, NULL::bigint AS r
                WHERE false)
"""
_NO_TEXT = """
, by_text AS (SELECT NULL::bigint AS id, NULL::float8 AS bm25, NULL::bigint AS r WHERE false)
"""
# The lexical leg's ranked ids and scores, run as a statement of its own (_TEXT_LEG) and
# given back to the fused statement: run first, the full-text leg overlaps the query's
# embedding (computed in a thread meanwhile) instead of following it. Empty in vector mode.
_GIVEN_TEXT = """
, by_text AS (
    SELECT t.id, t.bm25, t.r
    FROM unnest(CAST(:text_ids AS bigint[]), CAST(:text_scores AS float8[]))
         WITH ORDINALITY AS t(id, bm25, r)
)
"""

# Both candidate lists fused (see VECTOR_HEAD; a chunk found by full text alone gets its
# similarity computed here, for the relevance floor), then the top hits' details and
# snippets (the snippet marks every query word found). In text mode the score is the
# BM25 relative to the best match. The pool is materialised: inlined, the planner re-ran
# the full-text leg once per row of the join below.
_FUSED = f"""
, pool AS MATERIALIZED (
    SELECT coalesce(v.id, t.id) AS id, v.r AS vector_rank, t.r AS text_rank, v.distance,
           t.bm25 / max(t.bm25) OVER () AS lexical
    FROM by_vector v FULL JOIN by_text t ON t.id = v.id
), fused AS (
    SELECT b.id, b.vector_rank, b.text_rank, s.distance, s.head,
           CASE WHEN CAST(:text_only AS boolean) THEN b.lexical
                ELSE coalesce(1.0 / (:rrf_k + b.vector_rank), 0)
                     + coalesce(CAST(:text_weight AS float8) / (:rrf_k + b.text_rank), 0)
           END AS score
    FROM pool b JOIN navigator_chunks c ON c.id = b.id
    CROSS JOIN LATERAL (
        SELECT coalesce(b.distance, c.embedding <=> CAST(:vector AS vector)) AS distance,
               coalesce(b.vector_rank <= :head, false) AS head
    ) s
    WHERE c.tenant_id = :tenant
      AND (CAST(:floor AS float8) IS NULL OR CAST(:vector AS vector) IS NULL
           OR 1 - s.distance >= CAST(:floor AS float8))
    ORDER BY s.head DESC, CASE WHEN s.head THEN b.vector_rank END, score DESC,
             b.vector_rank NULLS LAST, b.text_rank
    LIMIT :k
)
SELECT f.id, f.score, f.vector_rank, f.text_rank,
       s.name AS source, d.uri, d.title, c.heading_path, c.page, c.content,
       ts_headline('english', c.content, q.any_term,
                   'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=35, MinWords=15,
                    MaxFragments=2')
       AS snippet,
       1 - f.distance AS similarity
FROM fused f
CROSS JOIN q
JOIN navigator_chunks c ON c.id = f.id
JOIN navigator_sources s ON s.id = c.source_id
JOIN navigator_documents d ON d.id = c.document_id
WHERE c.tenant_id = :tenant
ORDER BY f.head DESC, CASE WHEN f.head THEN f.vector_rank END, f.score DESC,
         f.vector_rank NULLS LAST, f.text_rank
"""  # noqa: S608


# An option as a developer pastes it ("--force-with-lease", "rebase --onto", "-n"): its
# leading "-" would be websearch syntax for "not", so it is quoted, which makes it the
# phrase of its words ('force-with-leas' <-> 'forc' <2> 'leas'), matched whole. A dash
# before a longer word ("python -snake") stays a negation.
_OPTION = re.compile(r'(?<![\w"-])(--[A-Za-z][\w.-]*(?:=[^\s"]*)?|-[A-Za-z](?![\w-]))')


def fulltext_query(query: str) -> str:
    """The question as websearch_to_tsquery reads it, options quoted (see _OPTION)."""
    return _OPTION.sub(r'"\1"', query)


def _sql(mode: str, tail: str) -> str:
    vector = _NEAREST if mode in ("hybrid", "vector") else _NO_VECTOR
    lexical = _LEXICAL if mode in ("hybrid", "text") else _NO_TEXT
    return _LIVE + _QUERIES + vector + lexical + tail


# Two statements per search (plus the index settings): the full-text leg, then the
# vector leg fused with it and the top hits' details. A third round trip costs well under
# a millisecond; the overlap with the embedding saves its whole time.
_TEXT_LEG = _sql("text", "SELECT id, bm25 FROM by_text ORDER BY r")
_SEARCH = {
    mode: _LIVE + _QUERIES + (_NO_VECTOR if mode == "text" else _NEAREST) + _GIVEN_TEXT + _FUSED
    for mode in ("hybrid", "vector", "text")
}
_VECTOR_IDS = _sql("vector", "SELECT id FROM by_vector ORDER BY r")

# The settings last for this transaction only; one round trip. JIT off: the planner's
# cost estimate for the BM25 leg's inner queries passes jit_above_cost, and compiling
# them took longer than running them (the text leg at 100k chunks: p50 73 ms with JIT,
# 27 ms without, same queries interleaved).
_SETTINGS = text(
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', :ef_search, true), set_config('jit', 'off', true)"
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
        "query": fulltext_query(query),
        "vector": _literal(vector) if vector is not None else None,
        "candidates": candidates,
    }


async def _search_settings(session: AsyncSession, candidates: int) -> None:
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
    await _search_settings(session, candidates)
    rows = await session.execute(
        text(_VECTOR_IDS), _params(tenant_id, filters, vector=vector, candidates=candidates)
    )
    return [r.id for r in rows]


async def _text_leg(
    session: AsyncSession, tenant_id: uuid.UUID, query: str, filters: Filters, candidates: int
) -> Sequence[Row[Any]]:
    rows = await session.execute(
        text(_TEXT_LEG), _params(tenant_id, filters, query=query, candidates=candidates)
    )
    return rows.all()


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
    # Hits less similar in meaning than this are left out (a nonsense query finds
    # nothing rather than chunks at similarity 0); text mode has no similarity to judge.
    min_similarity: float | None = None,
) -> list[SearchHit]:
    if mode not in _SEARCH:
        raise ValueError(f"unknown search mode {mode!r}")
    filters = filters or Filters()
    if mode == "text":
        vector = None
    embedding = None
    if vector is None and mode != "text":
        embedding = asyncio.ensure_future(asyncio.to_thread(embedder.encode, [query]))
    try:
        await _search_settings(session, candidates)
        lexical = (
            []
            if mode == "vector"
            else await _text_leg(session, tenant_id, query, filters, candidates)
        )
        if embedding is not None:
            vector = (await embedding)[0]
    finally:
        if embedding is not None and not embedding.done():
            embedding.cancel()  # a statement failed: nobody waits for the vector
    rows = await session.execute(
        text(_SEARCH[mode]),
        {
            **_params(tenant_id, filters, query=query, vector=vector, candidates=candidates),
            "text_ids": [row.id for row in lexical],
            "text_scores": [row.bm25 for row in lexical],
            "k": k,
            "floor": min_similarity,
            "text_only": mode == "text",
            "text_weight": TEXT_WEIGHT,
            "head": VECTOR_HEAD,
            "rrf_k": RRF_K,
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
