"""Periodic jobs. Any number of schedulers may run (one per replica): a Redis
`SET NX EX` per tick lets exactly one of them enqueue each run."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
import structlog

from posturio.config import Settings
from posturio.platform.jobs.actors import DeferredActor

log = structlog.get_logger("posturio.scheduler")


@dataclass(frozen=True)
class Periodic:
    actor: DeferredActor
    every_s: int


def schedule(settings: Settings) -> list[Periodic]:
    from posturio.gateway.tasks import drain_usage
    from posturio.navigator.tasks import sync_due_sources
    from posturio.platform.tasks import verify_all_audit_chains

    return [
        Periodic(verify_all_audit_chains, settings.audit_verify_interval_s),
        Periodic(drain_usage, settings.usage_drain_interval_s),
        Periodic(sync_due_sources, 60),
    ]


def run_scheduler(settings: Settings, stop: threading.Event) -> None:
    assert settings.redis_url is not None
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout_s)
    jobs = schedule(settings)
    while not stop.is_set():
        now = int(time.time())
        for job in jobs:
            tick = now // job.every_s
            try:
                if client.set(
                    f"posturio:schedule:{job.actor.name}:{tick}", "1", nx=True, ex=job.every_s * 2
                ):
                    job.actor.send()
                    # Every second for some jobs: routine, so debug (`make run` keeps its banner).
                    log.debug("scheduled_job_enqueued", actor=job.actor.name)
            except redis.RedisError as exc:
                log.warning("scheduler_redis_error", error=str(exc))
        stop.wait(1.0)
    client.close()
