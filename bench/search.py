"""Navigator search speed at 100k chunks: p50 / p95 of the hybrid query (HNSW with an
iterative scan + full text, fused) including the query's embedding and excluding it.
Chunks are synthetic (clustered vectors like real embeddings, text from a vocabulary);
the tenant shares the table with a second one ten times smaller.

Run: .venv/bin/python -m bench.search [--chunks 100000] [--queries 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid

import numpy as np
from sqlalchemy import insert, text

from bench.services import embedded_services
from posturio.config import Settings
from posturio.navigator.models import Chunk
from posturio.navigator.pipeline import embedder
from posturio.navigator.search import Filters, hybrid_search, text_ids, vector_ids
from posturio.platform import accounts
from posturio.platform.db import create_engine, create_sessionmaker, tenant_session


def vocabulary(size: int = 20_000) -> list[str]:
    """Pseudo-words with a Zipf-like use: a few common, most rare, like real text (a tiny
    vocabulary would make every query match every chunk)."""
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randint(4, 10))) for _ in range(size)]


WORDS = vocabulary()
WEIGHTS = [1 / (rank + 1) for rank in range(len(WORDS))]


async def seed(settings: Settings, tenant_id: uuid.UUID, n: int, rng: np.random.Generator) -> None:
    engine = create_engine(settings, as_owner=True)
    source_id, document_id = uuid.uuid4(), uuid.uuid4()
    centres = rng.normal(size=(200, 384))
    words = random.Random(3)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO navigator_sources (id, tenant_id, name, kind, config, status, "
                "proposed_by, created_at, updated_at, progress) VALUES (:s, :t, :n, 'upload', "
                "'{}', 'approved', 'bench', now(), now(), '{}')"
            ),
            {"s": source_id, "t": tenant_id, "n": f"synthetic-{n}"},
        )
        await conn.execute(
            text(
                "INSERT INTO navigator_documents (id, tenant_id, source_id, uri, status, "
                "updated_at) VALUES (:d, :t, :s, 'synthetic.md', 'indexed', now())"
            ),
            {"d": document_id, "s": source_id, "t": tenant_id},
        )
        for start in range(0, n, 5000):
            count = min(5000, n - start)
            v = centres[rng.integers(0, len(centres), count)] + rng.normal(
                scale=0.5, size=(count, 384)
            )
            v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
            await conn.execute(
                insert(Chunk),
                [
                    {
                        "tenant_id": tenant_id,
                        "source_id": source_id,
                        "document_id": document_id,
                        "ordinal": start + i,
                        "heading_path": "Synthetic",
                        "content": " ".join(words.choices(WORDS, WEIGHTS, k=60)),
                        "content_hash": "x",
                        "model": "synthetic",
                        "embedding": row,
                    }
                    for i, row in enumerate(v)
                ],
            )
        await conn.execute(text("ANALYZE navigator_chunks"))
    await engine.dispose()


async def run(settings: Settings, chunks: int, queries: int) -> None:
    rng = np.random.default_rng(5)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        big = await accounts.create_tenant(session, "Big", actor="bench")
        other = await accounts.create_tenant(session, "Other", actor="bench")
    started = time.perf_counter()
    await seed(settings, big.id, chunks, rng)
    await seed(settings, other.id, chunks // 10, rng)
    print(
        f"seeded {chunks + chunks // 10} chunks in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    model = embedder(settings.navigator_model)
    asked = [" ".join(random.Random(i).choices(WORDS[50:2000], k=3)) for i in range(queries)]
    model.encode(asked[:2])
    including, excluding = [], []
    for question in asked:
        async with tenant_session(sessionmaker, big.id) as session:
            t0 = time.perf_counter()
            await hybrid_search(session, big.id, question, model, k=10)
            including.append((time.perf_counter() - t0) * 1000)
        vector = model.encode([question])[0]
        async with tenant_session(sessionmaker, big.id) as session:
            t0 = time.perf_counter()
            await vector_ids(session, big.id, vector, Filters(), 50)
            await text_ids(session, big.id, question, Filters(), 50)
            excluding.append((time.perf_counter() - t0) * 1000)
    await engine.dispose()

    def q(xs: list[float]) -> str:
        return (
            f"p50 {statistics.median(xs):.1f} ms, p95 {statistics.quantiles(xs, n=20)[18]:.1f} ms"
        )

    print(
        f"\nNavigator search, {chunks:,} chunks in the tenant (+{chunks // 10:,} in another), "
        f"{queries} queries"
    )
    print(f"  hybrid, including the query embedding: {q(including)}")
    print(f"  vector + full-text retrieval only:     {q(excluding)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    with embedded_services() as settings:
        asyncio.run(run(settings, args.chunks, args.queries))


if __name__ == "__main__":
    main()
