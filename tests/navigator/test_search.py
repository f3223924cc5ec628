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

from posturio.navigator.models import Chunk
from posturio.navigator.search import Filters, vector_ids
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


async def _seed(owner_engine, tenant_id: uuid.UUID, vectors: np.ndarray) -> None:
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
                    "content": f"chunk {i}",
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
