"""Enqueue jobs only after the transaction that asked for them commits.

A job sent mid-transaction can run before the rows it refers to are visible, or refer
to rows a rollback removed. `defer` parks the message on the session; it is sent on
commit and dropped on rollback.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from posturio.platform.jobs.actors import DeferredActor

_KEY = "posturio_deferred_jobs"
log = structlog.get_logger("posturio.outbox")


def defer(session: AsyncSession, actor: DeferredActor, *args: Any, **kwargs: Any) -> None:
    message = actor.message(*args, **kwargs)  # built now so bad arguments fail in the request
    session.sync_session.info.setdefault(_KEY, []).append((actor, message))


def pending(session: AsyncSession) -> int:
    return len(session.sync_session.info.get(_KEY, []))


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    jobs = session.info.pop(_KEY, [])
    for actor, message in jobs:
        actor.actor.broker.enqueue(message)
        log.info("job_enqueued", actor=actor.name, message_id=message.message_id)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    dropped = session.info.pop(_KEY, [])
    if dropped:
        log.info("jobs_dropped_on_rollback", count=len(dropped))
