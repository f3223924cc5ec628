"""Hybrid search over live sources, and the filtered HNSW query keeping its recall for a
small tenant that shares the index with a large one (pgvector iterative scans)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import insert, text

from posturio.navigator.embedding import Embedder
from posturio.navigator.models import Chunk
from posturio.navigator.search import Filters, hybrid_search, vector_ids
from posturio.platform.db import tenant_session


async def indexed(
    http: httpx.AsyncClient, name: str, folder: Path, **fields: Any
) -> dict[str, Any]:
    """A directory source over `folder` (granted to the tenant first: the `grant`
    fixture), with any other `fields`, approved and synced."""
    source = (
        await http.post(
            "/api/navigator/sources",
            json={"name": name, "kind": "directory", "config": {"path": str(folder)}, **fields},
        )
    ).json()
    await http.post(f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"})
    deadline = time.monotonic() + 120
    while True:
        current = (await http.get(f"/api/navigator/sources/{source['id']}")).json()
        if current["progress"].get("state") == "idle":
            return current
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.5)


@pytest.mark.timeout(300)
async def test_hybrid_search_finds_answers_in_other_words(
    server, worker, make_tenant, navigator_root, grant
):
    folder = navigator_root / f"hr-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "leave.md").write_text(
        "# Leave\n\n## Annual leave\n\nEvery employee is entitled to thirty days of paid "
        "annual leave per calendar year, booked in the HR portal.\n"
    )
    (folder / "laptops.md").write_text(
        "# Equipment\n\n## Laptops\n\nIT hands out a laptop on your first day; report a broken "
        "one to the service desk.\n"
    )
    (folder / "parking.txt").write_text(
        "Parking permits for the garage are issued by facilities.\n"
    )
    # An identifier, and a page with both of its words apart and more often.
    (folder / "database.md").write_text(
        "# Database\n\nRaise max_connections in postgresql.conf before adding app servers.\n"
    )
    (folder / "meetings.md").write_text(
        "# Meetings\n\nThe max number of people in a meeting room is ten. Video connections "
        "need a headset; the max for video connections is fifty.\n"
    )
    t = await make_tenant()
    http = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=60)
    source = await indexed(http, "HR", grant(t.id, folder))

    async def search(**body: Any) -> list[dict[str, Any]]:
        r = await http.post("/api/navigator/search", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    # Shares no word with the answer: only the vectors can find it.
    hits = await search(query="how much vacation time do I get?")
    assert hits[0]["uri"] == "leave.md" and hits[0]["vector_rank"] == 1
    assert await search(query="how much vacation time do I get?", mode="text") == []
    # Exact terms: both rankings agree, and the snippet marks the words.
    hits = await search(query="parking permits")
    assert hits[0]["uri"] == "parking.txt" and hits[0]["text_rank"] == 1
    assert "[[Parking]]" in hits[0]["snippet"] and "[[permits]]" in hits[0]["snippet"]
    # A question in natural language: full text matches the chunks with some of its words
    # (OR semantics), not only those with all of them.
    hits = await search(query="where can I get a permit for parking my car?", mode="text")
    assert [h["uri"] for h in hits] == ["parking.txt"]
    assert "[[permits]]" in hits[0]["snippet"]
    # The full-text leg keeps an identifier whole: only the page that names it matches.
    hits = await search(query="max_connections", mode="text")
    assert [h["uri"] for h in hits] == ["database.md"]
    # Every match is ranked (BM25): the rarer word decides between partial matches.
    hits = await search(query="garage headset", mode="text")
    assert {h["uri"] for h in hits} == {"parking.txt", "meetings.md"}
    # Nothing close in meaning: no hits rather than chunks at similarity ~0.
    assert await search(query="zqxv wlorft prandle") == []
    assert await search(query="zqxv wlorft prandle", mode="vector") == []
    assert {h["uri"] for h in await search(query="laptop", kinds=["txt"])} <= {"parking.txt"}
    assert await search(query="laptop", source_ids=[str(uuid.uuid4())]) == []
    assert (await http.post("/api/navigator/search", json={"query": ""})).status_code == 400
    assert (
        await http.post("/api/navigator/search", json={"query": "x", "k": 500})
    ).status_code == 400

    await http.post(
        f"/api/navigator/sources/{source['id']}/transition",
        json={"action": "revoke", "reason": "test"},
    )
    assert await search(query="how much vacation time do I get?") == []
    other = await make_tenant()
    async with httpx.AsyncClient(
        base_url=server, headers=other.admin_headers, timeout=60
    ) as foreign:
        r = await foreign.post("/api/navigator/search", json={"query": "parking permits"})
        assert r.json() == []
    await http.aclose()


async def _seed(
    owner_engine, tenant_id: uuid.UUID, vectors: np.ndarray, contents: list[str] | None = None
) -> None:
    """An approved source of one document whose chunks have these embeddings (and these
    texts, else "chunk <i>"), as the indexer stores them."""
    source_id, document_id = uuid.uuid4(), uuid.uuid4()
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO navigator_sources (id, tenant_id, name, kind, config, status, "
                "proposed_by, created_at, updated_at, progress) VALUES (:s, :t, 'synthetic', "
                "'upload', '{}', 'approved', 'test', now(), now(), '{}')"
            ),
            {"s": source_id, "t": tenant_id},
        )
        await conn.execute(
            text(
                "INSERT INTO navigator_documents (id, tenant_id, source_id, uri, status, "
                "updated_at) VALUES (:d, :t, :s, 'synthetic.txt', 'indexed', now())"
            ),
            {"d": document_id, "s": source_id, "t": tenant_id},
        )
        await conn.execute(
            insert(Chunk),
            [
                {
                    "tenant_id": tenant_id,
                    "source_id": source_id,
                    "document_id": document_id,
                    "ordinal": i,
                    "heading_path": "",
                    "content": contents[i] if contents else f"chunk {i}",
                    "content_hash": "x",
                    "model": "synthetic",
                    "embedding": v,
                }
                for i, v in enumerate(vectors)
            ],
        )


@pytest.mark.timeout(600)
async def test_filtered_hnsw_recall_for_a_small_tenant(make_tenant, owner_engine, sessionmaker):
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 384))

    def vectors(n: int) -> np.ndarray:
        # Clustered like real embeddings (topics), normalised like the model's output.
        v = centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.6, size=(n, 384))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    big, small = await make_tenant(), await make_tenant()
    small_vectors = vectors(100)
    await _seed(owner_engine, big.id, vectors(9_900))
    await _seed(owner_engine, small.id, small_vectors)
    recalls = []
    for query in vectors(20):
        exact = set(np.argsort(-(small_vectors @ query))[:10].tolist())
        async with tenant_session(sessionmaker, small.id) as session:
            # Make the planner walk the HNSW index (for a tenant this small it would rather
            # sort the tenant's rows exactly, which proves nothing about the index).
            await session.execute(text("SET LOCAL enable_sort = off"))
            ids = await vector_ids(session, small.id, query, Filters(), candidates=50)
            ordinals = [
                r.ordinal
                for r in await session.execute(
                    text("SELECT id, ordinal FROM navigator_chunks WHERE id = ANY(:ids)"),
                    {"ids": ids[:10]},
                )
            ]
        recalls.append(len(exact & set(ordinals)) / 10)
    assert len(ids) == 50  # the filter did not starve the result
    assert sum(recalls) / len(recalls) >= 0.95, recalls


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _at_similarity(query: np.ndarray, similarity: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine similarity to the unit `query` is `similarity`."""
    other = rng.normal(size=query.shape)
    other = _unit(other - (other @ query) * query)
    return _unit(similarity * query + np.sqrt(1 - similarity**2) * other)


async def _search(sessionmaker, tenant_id: uuid.UUID, query: str, **kw: Any) -> list:
    async with tenant_session(sessionmaker, tenant_id) as session:
        return await hybrid_search(session, tenant_id, query, kw.pop("embedder", None), **kw)


@pytest.mark.timeout(120)
async def test_lexical_leg_matches_identifiers_and_options_whole(
    make_tenant, owner_engine, sessionmaker
):
    texts = [
        "Run pg_dump with several jobs to dump a large database faster.",
        "The dump of a pg cluster is slow; more jobs do not help.",
        "git stash pop applies the stashed changes and drops the stash.",
        "Use --index to restore the index as well as the working tree.",
        "Pushing with --force-with-lease refuses to overwrite work you have not seen.",
        "A forced push overwrites the remote branch; lease your car elsewhere.",
    ]
    t = await make_tenant()
    rng = np.random.default_rng(3)
    await _seed(owner_engine, t.id, np.stack([_unit(rng.normal(size=384)) for _ in texts]), texts)

    async def text_hits(query: str) -> list[str]:
        return [h.content for h in await _search(sessionmaker, t.id, query, mode="text")]

    # An identifier is matched whole: its words apart elsewhere do not count.
    assert await text_hits("pg_dump") == [texts[0]]
    assert await text_hits("--force-with-lease") == [texts[4]]
    # An option is a term like any other, not websearch's "-" (not): each term of the
    # question is scored, and the chunk with the option is found without the other words.
    hits = await text_hits("stash pop --index")
    assert set(hits) == {texts[2], texts[3]}


@pytest.mark.timeout(120)
async def test_a_weak_text_match_cannot_outrank_a_strong_vector_match(
    make_tenant, owner_engine, sessionmaker
):
    rng = np.random.default_rng(5)
    query = _unit(rng.normal(size=384))
    texts = [
        "Employees receive thirty days of paid annual leave each calendar year.",
        "Vacation tracker: get the time sheet template from the shared drive.",
    ]
    # The answer is close in meaning but shares no word with the question; the other
    # chunk has every word of the question and little of its meaning.
    vectors = np.stack([_at_similarity(query, 0.7, rng), _at_similarity(query, 0.4, rng)])
    t = await make_tenant()
    await _seed(owner_engine, t.id, vectors, texts)

    # One vector candidate: the other chunk is found by full text alone.
    hits = await _search(sessionmaker, t.id, "vacation time get", vector=query, candidates=1)
    assert [h.content for h in hits] == texts
    assert hits[1].text_rank == 1 and hits[1].vector_rank is None
    assert hits[0].vector_rank == 1 and hits[0].text_rank is None


@pytest.mark.timeout(300)
async def test_a_nonsense_query_finds_nothing_above_the_relevance_floor(
    make_tenant, owner_engine, sessionmaker, settings
):
    model = Embedder()
    texts = [
        "Every employee is entitled to thirty days of paid annual leave per year.",
        "IT hands out a laptop on your first day; report a broken one to the service desk.",
        "Parking permits for the garage are issued by facilities.",
    ]
    t = await make_tenant()
    await _seed(owner_engine, t.id, model.encode(texts), texts)
    floor = settings.navigator_min_similarity

    hits = await _search(
        sessionmaker, t.id, "zqxv wlorft prandle", embedder=model, min_similarity=floor
    )
    assert hits == []
    # The floor keeps a real question's answer.
    hits = await _search(
        sessionmaker, t.id, "how much vacation do I get?", embedder=model, min_similarity=floor
    )
    assert hits and hits[0].content == texts[0]


@pytest.mark.timeout(180)
async def test_a_common_word_neither_floods_nor_drops_the_lexical_leg(
    make_tenant, owner_engine, sessionmaker
):
    """A word in most chunks (over the 1,000 that make a term common, migration 0018)
    brings no candidates of its own, yet still scores: of the chunks with the rare word,
    the one that also has the common word ranks first; a question of common words only
    still finds the chunks that have them all."""
    filler = [f"release notes entry {i}" for i in range(1_100)]
    filler += [f"deploy notes entry {i}" for i in range(100)]
    texts = [
        *filler,
        "the quorum setting of the release",  # rare word + common word
        "the quorum setting of the server",  # rare word alone, same length
        "release checklist for the rollout",
    ]
    t = await make_tenant()
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(len(texts), 384))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    await _seed(owner_engine, t.id, vectors, texts)

    hits = await _search(sessionmaker, t.id, "release quorum", mode="text", k=5)
    assert [h.content for h in hits[:2]] == [texts[-3], texts[-2]]
    assert all("quorum" in h.content for h in hits)  # no chunk matching "release" only
    common = await _search(sessionmaker, t.id, "release rollout checklist", mode="text", k=5)
    assert common[0].content == texts[-1]
