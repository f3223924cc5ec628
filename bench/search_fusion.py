"""How to fuse Navigator's two legs, measured: on the indexes bench.search_quality builds
(the same --keep folder, both corpora), each question's candidates (the union of the
vector and full-text candidate lists, as the product fuses them) are fetched once with
their similarity, relative BM25 score, ranks in each leg, and the share of the
question's terms found in the page title and heading path; then fused offline by several
rules, the product's among them, and scored page-level like bench.search_quality
(recall@5, recall@10, MRR@10, few-shared-words recall@5, answer@5). A reference BM25
(`rank_bm25`'s Okapi over the same chunks, heading path and text; a dev dependency)
shows how the product's full-text leg compares with textbook BM25 on the same chunks,
twice: on words split on non-word characters, english stop words dropped ("words", the
issue's reference), and on the product's own tokens ("english stems").

Run:  .venv/bin/python -m bench.search_fusion --keep .posturio/bench-search-quality
      [--corpus python|git|all]
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.search_quality import (
    CORPORA,
    METRICS,
    Outcome,
    _cell,
    answered,
    index,
    load_questions,
    rank_of,
    services,
    summary,
)

CANDIDATES = 50


@dataclass(frozen=True)
class Candidate:
    uri: str
    content: str
    similarity: float
    lexical: float  # BM25 relative to the question's best match, 0 when not matched
    heading: float  # share of the question's terms in the title and heading path
    coverage: float  # BM25 over the sum of the question's terms' idf (absolute, not relative)
    vector_rank: int | None
    text_rank: int | None


_HEADING_SHARE = """
    SELECT c.id, coalesce((
        SELECT count(*) FROM unnest(CAST(string_to_array(CAST(w AS text), ' & ') AS tsquery[])) t
        WHERE to_tsvector('english', coalesce(d.title, '') || ' ' || c.heading_path) @@ t
    ), 0)::float8 / greatest(cardinality(string_to_array(CAST(w AS text), ' & ')), 1) AS share
    FROM navigator_chunks c JOIN navigator_documents d ON d.id = c.document_id,
         websearch_to_tsquery('english', :query) w
    WHERE c.tenant_id = :tenant AND c.id = ANY(:ids)
"""


# The question's terms' idf summed over the tenant's chunks (as posturio_chunk_bm25
# computes idf since migration 0020: Robertson's, floored at 0.01), to make BM25
# absolute: the best match of a weak question stays weak.
_IDF_SUM = """
    WITH q AS (SELECT CAST(string_to_array(CAST(w AS text), ' & ') AS tsquery[]) AS terms
               FROM websearch_to_tsquery('english', :query) w
               WHERE numnode(w) > 0),
    n AS (SELECT count(*)::float8 AS n FROM navigator_chunks WHERE tenant_id = :tenant)
    SELECT coalesce(sum(greatest(ln((n.n - df.df + 0.5) / (df.df + 0.5)), 0.01)), 0)
    FROM q, n, unnest(q.terms) term,
         LATERAL (SELECT count(*)::float8 AS df FROM navigator_chunks
                  WHERE tenant_id = :tenant AND tsv @@ term) df
    WHERE df.df > 0
"""


async def candidates(
    tenant_id: uuid.UUID, questions: list[dict[str, Any]]
) -> list[list[Candidate]]:
    """Per question, its fused candidate pool with each chunk's features."""
    from sqlalchemy import text

    from posturio.config import load_settings
    from posturio.navigator import search
    from posturio.navigator.indexing import embedder
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session

    settings = load_settings()
    model = embedder(settings.navigator_model)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    out: list[list[Candidate]] = []
    try:
        for q in questions:
            vector = model.encode([q["question"]])[0]
            async with tenant_session(sessionmaker, tenant_id) as session:
                pool = await search.hybrid_search(
                    session,
                    tenant_id,
                    q["question"],
                    model,
                    k=2 * CANDIDATES,
                    candidates=CANDIDATES,
                    vector=vector,
                )
                lexical_hits = await search.hybrid_search(
                    session,
                    tenant_id,
                    q["question"],
                    model,
                    k=CANDIDATES,
                    candidates=CANDIDATES,
                    mode="text",
                )
                shares: dict[int, float] = dict(
                    (
                        await session.execute(
                            text(_HEADING_SHARE),
                            {
                                "query": q["question"],
                                "tenant": tenant_id,
                                "ids": [h.chunk_id for h in pool],
                            },
                        )
                    ).all()
                )
                raw = dict(
                    (
                        await session.execute(
                            text(search._sql("text", "SELECT id, bm25 FROM by_text")),
                            {
                                **search._params(
                                    tenant_id,
                                    search.Filters(),
                                    query=q["question"],
                                    candidates=CANDIDATES,
                                ),
                            },
                        )
                    ).all()
                )
                idf_sum = (
                    await session.execute(
                        text(_IDF_SUM),
                        {"query": search.fulltext_query(q["question"]), "tenant": tenant_id},
                    )
                ).scalar_one() or 1.0
            # In text mode the score is the BM25 relative to the best match.
            lexical = {h.chunk_id: h.score for h in lexical_hits}
            out.append(
                [
                    Candidate(
                        h.uri,
                        h.content,
                        h.similarity or 0.0,
                        lexical.get(h.chunk_id, 0.0),
                        shares.get(h.chunk_id, 0.0),
                        raw.get(h.chunk_id, 0.0) / idf_sum,
                        h.vector_rank,
                        h.text_rank,
                    )
                    for h in pool
                ]
            )
    finally:
        await engine.dispose()
    return out


Rule = Callable[[Candidate], float]


def by_score(weight: float, heading: float = 0.0) -> Rule:
    """The product's form: similarity + weight x relative BM25 (+ heading x share)."""
    return lambda c: c.similarity + weight * c.lexical + heading * c.heading


def by_coverage(weight: float, heading: float = 0.0) -> Rule:
    """Similarity + weight x BM25 over its most a question could score (the idf sum)."""
    return lambda c: c.similarity + weight * min(c.coverage, 1.0) + heading * c.heading


def by_gated(weight: float) -> Rule:
    """Full text only reorders what the vectors found too."""
    return lambda c: c.similarity + (weight * c.lexical if c.vector_rank else 0.0)


def by_square(weight: float) -> Rule:
    """Only near-best full-text matches count."""
    return lambda c: c.similarity + weight * c.lexical**2


def by_rrf(weight: float, k: int = 60) -> Rule:
    return lambda c: (
        (1 / (k + c.vector_rank) if c.vector_rank else 0)
        + (weight / (k + c.text_rank) if c.text_rank else 0)
    )


def by_rrf_heading(weight: float, heading: float, k: int = 60) -> Rule:
    """Reciprocal rank fusion plus heading x the share of the question's terms in the
    title and heading path (one RRF step at the top is about 0.0003)."""
    rrf = by_rrf(weight, k)
    return lambda c: rrf(c) + heading * c.heading


def by_protected(head: int, inner: Rule) -> Rule:
    """The vector leg's first `head` chunks keep their places; `inner` orders the rest."""
    return lambda c: (
        ((100.0 - c.vector_rank) if c.vector_rank and c.vector_rank <= head else 0.0) + inner(c)
    )


def outcome(
    pool: list[Candidate], rule: Rule | None, relevant: set[str], answer: str | None
) -> Outcome:
    order = sorted(pool, key=rule, reverse=True) if rule else [c for c in pool if c.lexical]
    if rule is None:
        order.sort(key=lambda c: c.lexical, reverse=True)
    uris = [c.uri for c in order]
    return Outcome(
        rank_of(uris, relevant),
        list(dict.fromkeys(uris)),
        answered([c.content for c in order], answer),
    )


_STOP = frozenset(
    "a an and are as at be but by for from how i if in into is it its me my no not of on or "
    "so such that the their then there these they this to was what when where which while "
    "who why will with do does can you your we our".split()
)


def _tokens(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w not in _STOP]


# A tsvector's lexemes in text order, each as often as it occurs: the product's tokens.
_STEMS = "ARRAY(SELECT u.lexeme FROM unnest({v}) u, unnest(u.positions) p ORDER BY p)"


async def reference_bm25(
    tenant_id: uuid.UUID, questions: list[dict[str, Any]]
) -> dict[str, list[Outcome]]:
    """rank_bm25's Okapi BM25 over the same chunks (heading path and text), on two
    tokenisations: words as written, and the product's own tokens (its tsvector's english
    stems, stop words dropped, identifiers split), which tells the leg's scoring apart
    from its tokenisation."""
    from rank_bm25 import BM25Okapi
    from sqlalchemy import text

    from posturio.config import load_settings
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session

    engine = create_engine(load_settings())
    try:
        async with tenant_session(create_sessionmaker(engine), tenant_id) as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT d.uri, c.heading_path || ' ' || c.content AS body, c.content, "
                        f"{_STEMS.format(v='c.tsv')} AS stems "
                        "FROM navigator_chunks c JOIN navigator_documents d "
                        "ON d.id = c.document_id WHERE c.tenant_id = :t"
                    ),
                    {"t": tenant_id},
                )
            ).all()
            asked = [
                (
                    await session.execute(
                        text("SELECT " + _STEMS.format(v="to_tsvector('english', :q)")),
                        {"q": q["question"]},
                    )
                ).scalar_one()
                for q in questions
            ]
    finally:
        await engine.dispose()
    words = BM25Okapi([_tokens(r.body) for r in rows])
    stems = BM25Okapi([list(r.stems) for r in rows])
    return {
        "words": [_top(rows, words.get_scores(_tokens(q["question"])), q) for q in questions],
        "english stems": [
            _top(rows, stems.get_scores(list(a)), q) for q, a in zip(questions, asked, strict=True)
        ],
    }


def _top(rows: Any, scores: Any, question: dict[str, Any]) -> Outcome:
    top = sorted(range(len(rows)), key=lambda i: scores[i], reverse=True)[:30]
    uris = [rows[i].uri for i in top]
    return Outcome(
        rank_of(uris, set(question["relevant"])),
        list(dict.fromkeys(uris)),
        answered([rows[i].content for i in top], question.get("answer")),
    )


RULES: list[tuple[str, Rule | None]] = [
    ("vector", by_score(0.0)),
    ("text (product BM25)", None),
    *[(f"similarity + {w} x BM25", by_score(w)) for w in (0.02, 0.05, 0.1, 0.15, 0.2)],
    *[
        (f"sim + {w} x BM25 + {h} x heading", by_score(w, h))
        for w in (0.02, 0.05, 0.1)
        for h in (0.02, 0.05, 0.1)
    ],
    *[(f"sim + {w} x coverage", by_coverage(w)) for w in (0.05, 0.1, 0.15, 0.2, 0.3)],
    *[
        (f"sim + {w} x coverage + {h} x heading", by_coverage(w, h))
        for w in (0.1, 0.2)
        for h in (0.02, 0.05)
    ],
    *[(f"gated {w}", by_gated(w)) for w in (0.05, 0.1)],
    *[(f"squared {w}", by_square(w)) for w in (0.05, 0.1, 0.2)],
    *[(f"RRF text weight {w}", by_rrf(w)) for w in (0.3, 0.5, 1.0)],
    *[
        (f"RRF {w} + {h} x heading", by_rrf_heading(w, h))
        for w in (0.3, 0.5, 1.0)
        for h in (0.001, 0.003)
    ],
    *[
        (f"vector top {n}, then {name}", by_protected(n, rule))
        for n in (1, 2, 3)
        for name, rule in (
            ("RRF 0.3", by_rrf(0.3)),
            ("RRF 0.5", by_rrf(0.5)),
            ("RRF 1.0", by_rrf(1.0)),
            ("RRF 0.3 + 0.003 h", by_rrf_heading(0.3, 0.003)),
            ("RRF 0.5 + 0.003 h", by_rrf_heading(0.5, 0.003)),
            ("sim + 0.1 BM25 + 0.05 h", by_score(0.1, 0.05)),
            ("sim + 0.2 BM25", by_score(0.2)),
        )
    ],
    # With the textbook BM25 leg (0020): a stronger text weight, a smaller RRF k.
    *[
        (f"vector top {n}, then RRF {w} k {k}", by_protected(n, by_rrf(w, k)))
        for n in (0, 1, 2)
        for w in (0.5, 0.7, 1.0)
        for k in (10, 30)
    ],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, required=True, help="bench.search_quality's folder")
    parser.add_argument("--corpus", choices=[*CORPORA, "all"], default="all")
    args = parser.parse_args()
    chosen = list(CORPORA.values()) if args.corpus == "all" else [CORPORA[args.corpus]]
    with services(args.keep) as work:
        for corpus in chosen:
            questions = load_questions(corpus)
            state = asyncio.run(index(work, corpus))
            tenant = uuid.UUID(state["tenant_id"])
            # The candidates and the reference, kept beside the index: fusion rules can be
            # tried again without a search (delete the file after changing the legs).
            cache = work / f"fusion-{corpus.name}.pickle"
            cached = pickle.loads(cache.read_bytes()) if cache.exists() else None
            if cached is not None and isinstance(cached[1], dict):
                pools, references = cached
            else:
                pools = asyncio.run(candidates(tenant, questions))
                references = asyncio.run(reference_bm25(tenant, questions))
                cache.write_bytes(pickle.dumps((pools, references)))
            print(f"\n== {corpus.title}: {len(questions)} questions, {state['chunks']} chunks")
            print(f"{'':<36}" + "".join(f"{m:>15}" for m in METRICS))
            rows = [(f"rank_bm25, {name}", outcomes) for name, outcomes in references.items()]
            for name, rule in RULES:
                rows.append(
                    (
                        name,
                        [
                            outcome(p, rule, set(q["relevant"]), q.get("answer"))
                            for p, q in zip(pools, questions, strict=True)
                        ],
                    )
                )
            for name, outcomes in rows:
                print(f"{name:<36}" + "".join(_cell(v, 15) for v in summary(questions, outcomes)))


if __name__ == "__main__":
    main()
