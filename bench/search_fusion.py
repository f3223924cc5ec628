"""How to fuse Navigator's two legs, measured: on the index bench.search_quality builds
(the same --keep folder), each question's vector candidates (with their similarity) and
full-text candidates (with their BM25 score relative to the best) are fetched once, then
fused offline at several text weights (score = similarity + weight * relative BM25, the
product's rule) and, for comparison, by weighted reciprocal rank fusion. A reference
BM25 (`rank_bm25`'s Okapi over the same chunks, words split on non-word characters,
english stop words dropped; `pip install rank_bm25`, a bench-only dependency) shows how
the product's full-text leg compares with textbook BM25 on the same chunks.

Run:  .venv/bin/python -m bench.search_fusion --keep .posturio/bench-search-quality
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.search_quality import QUESTIONS, index, metrics, rank_of, services

CANDIDATES = 50
Candidate = tuple[str, float | None, float | None, int | None, int | None]  # uri, sim, lex, vr, tr


async def candidates(tenant_id: uuid.UUID, questions: list[dict[str, Any]]) -> list[dict]:
    """Per question, chunk id -> (uri, similarity, relative BM25, vector rank, text rank)."""
    from posturio.config import load_settings
    from posturio.navigator import search
    from posturio.navigator.pipeline import embedder
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session

    settings = load_settings()
    model = embedder(settings.navigator_model)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    out: list[dict[int, Candidate]] = []
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
                text = await search.hybrid_search(
                    session,
                    tenant_id,
                    q["question"],
                    model,
                    k=CANDIDATES,
                    candidates=CANDIDATES,
                    mode="text",
                )
            lexical = {h.chunk_id: h.score / search.TEXT_WEIGHT for h in text}
            out.append(
                {
                    h.chunk_id: (
                        h.uri,
                        h.similarity,
                        lexical.get(h.chunk_id),
                        h.vector_rank,
                        h.text_rank,
                    )
                    for h in pool
                }
            )
    finally:
        await engine.dispose()
    return out


def ranked(pool: dict[int, Candidate], key: Callable[[Candidate], float]) -> list[str]:
    return [c[0] for c in sorted(pool.values(), key=key, reverse=True)]


def by_score(weight: float) -> Callable[[Candidate], float]:
    return lambda c: (c[1] or 0.0) + weight * (c[2] or 0.0)


def by_gated(weight: float) -> Callable[[Candidate], float]:
    """Full text only reorders what the vectors found too."""
    return lambda c: (c[1] or 0.0) + (weight * (c[2] or 0.0) if c[3] else 0.0)


def by_square(weight: float) -> Callable[[Candidate], float]:
    """Only near-best full-text matches count."""
    return lambda c: (c[1] or 0.0) + weight * (c[2] or 0.0) ** 2


def by_rrf(weight: float, k: int = 60) -> Callable[[Candidate], float]:
    return lambda c: (1 / (k + c[3]) if c[3] else 0) + (weight / (k + c[4]) if c[4] else 0)


_STOP = frozenset(
    "a an and are as at be but by for from how i if in into is it its me my no not of on or "
    "so such that the their then there these they this to was what when where which while "
    "who why will with do does can you your we our".split()
)


def _tokens(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w not in _STOP]


async def reference_bm25(tenant_id: uuid.UUID, questions: list[dict[str, Any]]) -> list[list[str]]:
    """rank_bm25's Okapi BM25 over the same chunks: per question, the uris of its top 30."""
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
                        "SELECT d.uri, c.heading_path || ' ' || c.content AS body "
                        "FROM navigator_chunks c JOIN navigator_documents d "
                        "ON d.id = c.document_id WHERE c.tenant_id = :t"
                    ),
                    {"t": tenant_id},
                )
            ).all()
    finally:
        await engine.dispose()
    bm25 = BM25Okapi([_tokens(r.body) for r in rows])
    out = []
    for q in questions:
        scores = bm25.get_scores(_tokens(q["question"]))
        top = sorted(range(len(rows)), key=lambda i: scores[i], reverse=True)[:30]
        out.append([rows[i].uri for i in top])
    return out


def line(name: str, ranks: list[int | None]) -> str:
    r5, r10, mrr = metrics(ranks)
    return f"{name:<28}{r5:>10.3f}{r10:>11.3f}{mrr:>9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, required=True, help="bench.search_quality's folder")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text())
    with services(args.keep) as work:
        state = asyncio.run(index(work))
        tenant = uuid.UUID(state["tenant_id"])
        pools = asyncio.run(candidates(tenant, questions))
        reference = asyncio.run(reference_bm25(tenant, questions))
    relevant = [set(q["relevant"]) for q in questions]
    kinds = sorted({q["kind"] for q in questions})
    print(f"\n{len(questions)} questions, {state['chunks']} chunks")
    for kind in ("all", *kinds):
        idx = [i for i, q in enumerate(questions) if kind in ("all", q["kind"])]
        print(f"\n{kind} ({len(idx)})" + " " * 8 + "recall@5  recall@10   MRR@10")

        def ranks(order: Callable[[int], list[str]], idx: list[int] = idx) -> list[int | None]:
            return [rank_of(order(i), relevant[i]) for i in idx]

        print(line("vector", ranks(lambda i: ranked(pools[i], by_score(0.0)))))
        print(
            line(
                "text (product BM25)",
                ranks(
                    lambda i: ranked({k: v for k, v in pools[i].items() if v[2]}, lambda c: c[2])
                ),
            )
        )
        print(line("reference BM25 (rank_bm25)", ranks(lambda i: reference[i])))
        for w in (0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3):
            print(
                line(
                    f"similarity + {w} x BM25", ranks(lambda i, w=w: ranked(pools[i], by_score(w)))
                )
            )
        for w in (0.05, 0.1, 0.2):
            print(line(f"gated {w}", ranks(lambda i, w=w: ranked(pools[i], by_gated(w)))))
            print(line(f"squared {w}", ranks(lambda i, w=w: ranked(pools[i], by_square(w)))))
        for w in (0.15, 0.3, 1.0):
            print(line(f"RRF text weight {w}", ranks(lambda i, w=w: ranked(pools[i], by_rrf(w)))))


if __name__ == "__main__":
    main()
