"""Navigator search speed at 100k chunks: p50 / p95 of the whole hybrid search (HNSW with
an iterative scan + full text, fused, then the details and snippets of the top hits),
including the query's embedding and excluding it (the same search given a precomputed
query vector). Every search runs in its own tenant transaction, as a request would.
Chunks are synthetic (clustered vectors like real embeddings, text from a Zipf-like
vocabulary); the tenant shares the table with a second one ten times smaller.

Two query sets: "words" (three mid-frequency words, the figure the issue tracks) and
"questions" (natural-language shaped: English stop words around four content words, one
of them common, so the OR semantics of the full-text leg match many chunks).

Seeding uses COPY and builds the indexes after the bulk load (about a minute for 110k
chunks here, against seven with row inserts into the indexed table).

Run: .venv/bin/python -m bench.search [--chunks 100000] [--queries 100] [--rounds 1]
     [--keep .posturio/bench-search]
`--keep DIR` keeps the embedded PostgreSQL (with the seeded chunks) in DIR; a later run
with the same DIR and --chunks reuses it (migrations added since are applied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from bench.services import embedded_services
from posturio.config import Settings
from posturio.navigator.indexing import embedder
from posturio.navigator.search import hybrid_search
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
COLUMNS = (
    "tenant_id source_id document_id ordinal heading_path content content_hash model embedding"
).split()


async def _copy_chunks(
    conn: Any, tenant_id: uuid.UUID, n: int, rng: np.random.Generator, centres: np.ndarray
) -> None:
    from pgvector.asyncpg import register_vector

    source_id, document_id = uuid.uuid4(), uuid.uuid4()
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
    raw = (await conn.get_raw_connection()).driver_connection
    await register_vector(raw)
    words = random.Random(3)
    for start in range(0, n, 10_000):
        count = min(10_000, n - start)
        v = centres[rng.integers(0, len(centres), count)] + rng.normal(scale=0.5, size=(count, 384))
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        records = [
            (
                tenant_id,
                source_id,
                document_id,
                start + i,
                "Synthetic",
                " ".join(words.choices(WORDS, WEIGHTS, k=60)),
                "x",
                "synthetic",
                row,
            )
            for i, row in enumerate(v)
        ]
        await raw.copy_records_to_table("navigator_chunks", records=records, columns=COLUMNS)


async def seed(settings: Settings, chunks: int) -> uuid.UUID:
    """Two tenants (`chunks` and a tenth of it), loaded with COPY into the chunks table
    stripped of its secondary indexes, which are then rebuilt from their own definitions
    (so the ones a later migration adds are rebuilt too). Returns the big tenant's id."""
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        big = await accounts.create_tenant(session, "Big", actor="bench")
        other = await accounts.create_tenant(session, "Other", actor="bench")
    await engine.dispose()
    # Building the indexes over 110k rows outlasts the client's command timeout (derived
    # from the statement timeout) on a busy machine.
    owner = create_engine(
        settings.model_copy(update={"db_statement_timeout_ms": 3_600_000}), as_owner=True
    )
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(200, 384))
    async with owner.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        indexes = (
            await conn.execute(
                text(
                    "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) "
                    "AS definition FROM pg_index i WHERE i.indrelid = 'navigator_chunks'::regclass "
                    "AND NOT i.indisprimary"
                )
            )
        ).all()
        for index in indexes:
            await conn.execute(text(f"DROP INDEX {index.name}"))
        await _copy_chunks(conn, big.id, chunks, rng, centres)
        await _copy_chunks(conn, other.id, chunks // 10, rng, centres)
        for index in indexes:
            await conn.execute(text(index.definition))
    async with owner.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("SET statement_timeout = 0"))
        await conn.execute(text("VACUUM ANALYZE navigator_chunks"))
    await owner.dispose()
    return big.id


def queries(n: int) -> dict[str, list[str]]:
    words = [" ".join(random.Random(i).choices(WORDS[50:2000], k=3)) for i in range(n)]
    questions = []
    for i in range(n):
        r = random.Random(10_000 + i)
        common, *rest = r.choice(WORDS[5:50]), *r.choices(WORDS[50:5000], k=3)
        questions.append(f"how do I {rest[0]} the {common} with {rest[1]} and {rest[2]}?")
    return {"words": words, "questions": questions}


async def measure(
    settings: Settings, tenant_id: uuid.UUID, asked: list[str], rounds: int
) -> tuple[list[float], list[float]]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    model = embedder(settings.navigator_model)
    vectors = model.encode(asked)
    for question in asked[:5]:  # warm the pool, the model and the caches
        async with tenant_session(sessionmaker, tenant_id) as session:
            await hybrid_search(session, tenant_id, question, model, k=10)
    including: list[float] = []
    excluding: list[float] = []

    async def timed(question: str, vector: Any, into: list[float]) -> None:
        async with tenant_session(sessionmaker, tenant_id) as session:
            t0 = time.perf_counter()
            await hybrid_search(session, tenant_id, question, model, k=10, vector=vector)
            into.append((time.perf_counter() - t0) * 1000)

    # Each question is searched both ways, and the first search of a question reads pages
    # the second finds cached: which way goes first alternates, so neither gains.
    for _ in range(rounds):
        for i, (question, vector) in enumerate(zip(asked, vectors, strict=True)):
            both = [(None, including), (vector, excluding)]
            for given, into in both if i % 2 == 0 else both[::-1]:
                await timed(question, given, into)
    await engine.dispose()
    return including, excluding


def _q(xs: list[float]) -> str:
    return f"p50 {statistics.median(xs):6.1f} ms, p95 {statistics.quantiles(xs, n=20)[18]:6.1f} ms"


def run(settings: Settings, root: Path, chunks: int, n_queries: int, rounds: int) -> None:
    marker = root / "seeded.json"
    state = json.loads(marker.read_text()) if marker.exists() else {}
    if state.get("chunks") == chunks:
        tenant_id = uuid.UUID(state["tenant"])
        print(f"reusing {chunks + chunks // 10:,} seeded chunks in {root}", flush=True)
    else:
        started = time.perf_counter()
        tenant_id = asyncio.run(seed(settings, chunks))
        marker.write_text(json.dumps({"chunks": chunks, "tenant": str(tenant_id)}))
        print(
            f"seeded {chunks + chunks // 10:,} chunks in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    print(
        f"\nNavigator search, {chunks:,} chunks in the tenant (+{chunks // 10:,} in another), "
        f"{n_queries} queries x {rounds} round(s) per set"
    )
    for name, asked in queries(n_queries).items():
        including, excluding = asyncio.run(measure(settings, tenant_id, asked, rounds))
        print(f"  {name:9} including the query embedding: {_q(including)}")
        print(f"  {name:9} excluding it (given vector):   {_q(excluding)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep / reuse the data here")
    args = parser.parse_args()
    if args.keep is not None and (args.keep / "seeded.json").exists():
        if json.loads((args.keep / "seeded.json").read_text()).get("chunks") != args.chunks:
            raise SystemExit(f"{args.keep} holds another --chunks: use another folder")
    with embedded_services(args.keep) as settings:
        run(settings, settings.state_dir.parent, args.chunks, args.queries, args.rounds)


if __name__ == "__main__":
    main()
