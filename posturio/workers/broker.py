"""Build the dramatiq Redis broker from the settings and bind every declared actor."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from posturio.config import Settings
from posturio.platform.jobs.actors import bind_all

NAMESPACE = "posturio-jobs"


def import_task_modules() -> None:
    """Every module that declares actors; importing registers them."""
    import posturio.gateway.tasks
    import posturio.navigator.tasks
    import posturio.platform.tasks  # noqa: F401


def setup_broker(settings: Settings) -> RedisBroker:
    if settings.redis_url is None:
        raise RuntimeError("POSTURIO_REDIS_URL is not set")
    broker = RedisBroker(url=settings.redis_url, namespace=NAMESPACE)
    broker.add_middleware(AsyncIO())
    dramatiq.set_broker(broker)
    import_task_modules()
    bind_all(broker)
    return broker
