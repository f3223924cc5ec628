"""The full-text leg's BM25 (migration 0020): what a user relies on when a word of the
question is in the text. Counts, not guesses: a chunk that says the word more often
ranks higher, a longer chunk with the same count lower, identifiers and options are
matched whole, and every matching chunk is ranked, wherever it is stored."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import text

from tests.navigator.test_search import _search, _seed


async def _tenant_with(make_tenant, owner_engine, texts: list[str]) -> uuid.UUID:
    """A tenant whose one source holds these chunks, stored in this order."""
    t = await make_tenant()
    rng = np.random.default_rng(len(texts))
    vectors = rng.normal(size=(len(texts), 384))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    await _seed(owner_engine, t.id, vectors, texts)
    return t.id


async def _ranked(sessionmaker, tenant_id: uuid.UUID, query: str, k: int = 10) -> list[str]:
    return [h.content for h in await _search(sessionmaker, tenant_id, query, mode="text", k=k)]


# Chunks without the question's words: they make the corpus, so the word is rare in it.
_OTHER = [f"release notes entry {i} for the storage service" for i in range(20)]


@pytest.mark.timeout(120)
async def test_a_chunk_repeating_a_rare_word_outranks_one_mentioning_it_once(
    make_tenant, owner_engine, sessionmaker
):
    once = "quorum cluster nodes members votes"
    repeated = "quorum quorum quorum cluster nodes"  # as many words, stored after
    tenant = await _tenant_with(make_tenant, owner_engine, [*_OTHER, once, repeated])

    assert await _ranked(sessionmaker, tenant, "quorum") == [repeated, once]


@pytest.mark.timeout(120)
async def test_a_longer_chunk_with_the_same_count_ranks_lower(
    make_tenant, owner_engine, sessionmaker
):
    # The long chunk repeats one word: as many distinct words as the short one, five
    # times its words. It is stored first, so a tie would put it first.
    short = "quorum settings for the cluster nodes"
    long = short + " nodes" * 25
    tenant = await _tenant_with(make_tenant, owner_engine, [*_OTHER, long, short])

    assert await _ranked(sessionmaker, tenant, "quorum") == [short, long]
    # The same with the corpus's mean length from the table's statistics (kept by
    # ANALYZE) rather than from the matching chunks.
    async with owner_engine.begin() as conn:
        await conn.execute(text("ANALYZE navigator_chunks"))
    assert await _ranked(sessionmaker, tenant, "quorum") == [short, long]


@pytest.mark.timeout(120)
async def test_identifiers_are_matched_whole_and_counted(make_tenant, owner_engine, sessionmaker):
    twice = "pg_dump writes one archive; pg_dump with several jobs writes a directory."
    once = "pg_dump writes one archive of a database to a file."
    apart = "A dump of the pg cluster is slow; more jobs do not help."
    setting = "Raise max_connections in postgresql.conf and restart the server."
    words = "The max number of open connections is set by the server."
    option = "pg_restore --jobs 4 restores four tables at a time."
    jobs = "Background jobs run at night."
    tenant = await _tenant_with(
        make_tenant, owner_engine, [*_OTHER, apart, once, twice, words, setting, jobs, option]
    )

    assert await _ranked(sessionmaker, tenant, "pg_dump") == [twice, once]
    assert await _ranked(sessionmaker, tenant, "max_connections") == [setting]
    # A one-word option is found, though not yet whole: the parser reads "--jobs" as the
    # word "jobs", so the shorter chunk with the word ranks first.
    assert option in await _ranked(sessionmaker, tenant, "--jobs")


@pytest.mark.timeout(180)
async def test_every_match_is_ranked_wherever_it_is_stored(make_tenant, owner_engine, sessionmaker):
    """Hundreds of chunks mention the word once in a long text; the one that is about it
    is stored last and still comes first (0008 ranked the first 400 matches it read)."""
    mentions = [
        f"entry {i} of the maintenance log: the nightly vacuum ran after the backup of "
        f"table {i}, the index rebuild and the statistics refresh finished on time"
        for i in range(900)
    ]
    about = "vacuum reclaims storage: run vacuum after bulk deletes"
    tenant = await _tenant_with(make_tenant, owner_engine, [*mentions, about])

    hits = await _ranked(sessionmaker, tenant, "vacuum", k=5)
    assert hits[0] == about
    assert len(hits) == 5
