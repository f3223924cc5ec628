"""Navigator jobs: sync a source (on approval, on demand, on its schedule), purge a revoked
one, and the scheduler's sweep for sources whose sync interval has passed."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import text

from posturio.navigator.pipeline import SourceSync, purge
from posturio.platform.jobs.actors import system_actor, tenant_actor
from posturio.platform.jobs.runtime import resources

log = structlog.get_logger("posturio.navigator")


SYNC_LOCK_S = 3_600  # the sync actor's time limit


@tenant_actor(max_retries=3, time_limit=SYNC_LOCK_S * 1000)
async def sync_source(tenant_id: str, source_id: str) -> None:
    """One sync of a source at a time: a second one asked for meanwhile (the schedule
    and an admin's "sync now") finds the first at work and leaves it; two at once raced
    on the documents' unique key. The lock expires with the actor's time limit."""
    r = resources()
    lock = f"posturio:sync:{source_id}"
    if not await r.redis.set(lock, tenant_id, nx=True, ex=SYNC_LOCK_S):
        log.info("source_sync_already_running", source_id=source_id)
        return
    try:
        sync = SourceSync(r.settings, r.sessionmaker, uuid.UUID(tenant_id), uuid.UUID(source_id))
        await sync.run()
    finally:
        await r.redis.delete(lock)


@tenant_actor(max_retries=5)
async def purge_source(tenant_id: str, source_id: str) -> None:
    removed = await purge(resources().sessionmaker, uuid.UUID(tenant_id), uuid.UUID(source_id))
    log.info("source_purged", source_id=source_id, documents=removed)


@system_actor(max_retries=0)
async def sync_due_sources() -> None:
    """Every approved source whose interval has passed since its last sync."""
    async with resources().sessionmaker() as session:
        due = (await session.execute(text("SELECT * FROM posturio_due_sources()"))).all()
    for tenant_id, source_id in due:
        sync_source.send(str(tenant_id), str(source_id))
