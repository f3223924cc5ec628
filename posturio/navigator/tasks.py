"""Navigator jobs: sync a source (on approval, on demand, on its schedule), purge a revoked
one, and the scheduler's sweep for sources whose sync interval has passed."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import text

from posturio.navigator.indexing import SourceSync, purge
from posturio.platform.jobs.actors import system_actor, tenant_actor
from posturio.platform.jobs.runtime import resources

log = structlog.get_logger("posturio.navigator")


@tenant_actor(max_retries=3, time_limit=3_600_000)
async def sync_source(tenant_id: str, source_id: str) -> None:
    """One sync of a source at a time: a second one asked for meanwhile (the schedule
    and an admin's "sync now") finds the first at work and leaves it; two at once raced
    on the documents' unique key. A Postgres advisory lock held by a connection of its
    own: a worker that dies lets go of it with its connection, so a retried sync never
    waits on a lock nobody holds."""
    r = resources()
    # Autocommit: the lock is the session's, no transaction stays open for the sync.
    async with r.engine.connect() as connection:
        lock = await connection.execution_options(isolation_level="AUTOCOMMIT")
        key = {"k": f"navigator.sync:{source_id}"}
        if not await lock.scalar(text("SELECT pg_try_advisory_lock(hashtext(:k))"), key):
            log.info("source_sync_already_running", source_id=source_id)
            return
        try:
            sync = SourceSync(
                r.settings, r.sessionmaker, uuid.UUID(tenant_id), uuid.UUID(source_id)
            )
            await sync.run()
        finally:
            await lock.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), key)


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
