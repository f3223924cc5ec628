"""Enqueue jobs only after the transaction that asked for them commits.

A job sent mid-transaction can run before the rows it refers to are visible, or refer
to rows a rollback removed. `defer` builds the message now (bad arguments fail in the
request) and sends it through the session's after-commit callbacks (`db.commit`), so a
rollback drops it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform.db import after_commit
from posturio.platform.jobs.actors import DeferredActor

log = structlog.get_logger("posturio.outbox")


def defer(session: AsyncSession, actor: DeferredActor, *args: Any, **kwargs: Any) -> None:
    message = actor.message(*args, **kwargs)

    async def send() -> None:
        # dramatiq's Redis broker is synchronous: off the event loop.
        await asyncio.to_thread(actor.actor.broker.enqueue, message)
        log.info("job_enqueued", actor=actor.name, message_id=message.message_id)

    after_commit(session, send)
