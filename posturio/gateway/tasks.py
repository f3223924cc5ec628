"""Gateway jobs: drain the usage stream into Postgres (scheduled every second)."""

from __future__ import annotations

from typing import Any

import structlog

from posturio.gateway.usage import GROUP, STREAM, consumer_name, ensure_group, parse_entries, store
from posturio.platform.jobs.actors import system_actor
from posturio.platform.jobs.runtime import resources, unit_of_work

log = structlog.get_logger("posturio.usage")
BATCH = 20  # stream entries per read; each holds up to 500 usage records
MAX_BATCHES_PER_RUN = 20
RECLAIM_IDLE_MS = 60_000


async def _process(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    redis = resources().redis
    by_tenant, poison = parse_entries(entries)
    stored = 0
    for tenant_id, rows in by_tenant.items():
        async with unit_of_work(tenant_id) as session:
            stored += await store(session, rows)
    # Acknowledge only after every tenant's transaction committed: a crash before this
    # line leaves the entries pending, and they are claimed again (inserts are idempotent).
    ids = [entry_id for entry_id, _ in entries]
    if ids:
        await redis.xack(STREAM, GROUP, *ids)
    if poison:
        log.error("usage_poison_entries_skipped", count=len(poison))
    return stored


@system_actor(max_retries=0, time_limit=60_000)
async def drain_usage() -> None:
    redis = resources().redis
    await ensure_group(redis)
    me = consumer_name()
    stored = 0
    # Entries another consumer took and never acknowledged (it died): take them over.
    # Redis 6.2 answers [next, entries]; 7+ adds the ids of deleted entries.
    # redis-py types stream replies loosely (bytes | str, one union for every reply shape).
    reclaimed: Any = await redis.xautoclaim(
        STREAM, GROUP, me, min_idle_time=RECLAIM_IDLE_MS, start_id="0-0", count=BATCH
    )
    claimed = reclaimed[1]
    if claimed:
        stored += await _process(claimed)
    for _ in range(MAX_BATCHES_PER_RUN):
        response: Any = await redis.xreadgroup(GROUP, me, {STREAM: ">"}, count=BATCH)
        entries = response[0][1] if response else []
        if not entries:
            break
        stored += await _process(entries)
        if len(entries) < BATCH:
            break
    if stored:
        log.info("usage_drained", stored=stored)
