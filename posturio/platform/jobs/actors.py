"""The actor wrapper: actors are declared at import, bound to a broker at start.

Declaring with plain `@dramatiq.actor` would need the broker (and so the settings) at
import time. Here a declaration only records the function; `bind_all` creates the real
dramatiq actors once `setup_broker` has built the broker from the settings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import Broker

_declared: list[DeferredActor] = []


class DeferredActor:
    def __init__(
        self, fn: Callable[..., Any], *, tenant: bool, queue: str, options: dict[str, Any]
    ):
        params = list(inspect.signature(fn).parameters)
        if tenant and (not params or params[0] != "tenant_id"):
            raise TypeError(f"tenant actor {fn.__name__} must take tenant_id as its first argument")
        self.fn = fn
        self.name = f"{fn.__module__.rsplit('.', 2)[-2]}.{fn.__name__}"
        self.tenant = tenant
        self.queue = queue
        self.options = options
        self._actor: dramatiq.Actor[Any, Any] | None = None

    def bind(self, broker: Broker) -> None:
        if self.name in broker.actors:
            self._actor = broker.get_actor(self.name)
            return
        self._actor = dramatiq.Actor(
            self.fn,
            broker=broker,
            actor_name=self.name,
            queue_name=self.queue,
            priority=0,
            options=self.options,
        )

    @property
    def actor(self) -> dramatiq.Actor[Any, Any]:
        if self._actor is None:
            raise RuntimeError(f"actor {self.name} used before the broker was set up")
        return self._actor

    def message(self, *args: Any, **kwargs: Any) -> dramatiq.Message[Any]:
        if self.tenant and not args and "tenant_id" not in kwargs:
            raise TypeError(f"{self.name}: tenant_id is required")
        return self.actor.message(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> dramatiq.Message[Any]:
        return self.actor.broker.enqueue(self.message(*args, **kwargs))

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run inline (the scheduler and tests of the function itself)."""
        return await self.fn(*args, **kwargs)


def _declare(
    tenant: bool, queue: str, options: dict[str, Any]
) -> Callable[[Callable[..., Any]], DeferredActor]:
    def wrap(fn: Callable[..., Any]) -> DeferredActor:
        deferred = DeferredActor(fn, tenant=tenant, queue=queue, options=options)
        _declared.append(deferred)
        return deferred

    return wrap


def tenant_actor(
    *, queue: str = "default", max_retries: int = 5, **options: Any
) -> Callable[[Callable[..., Any]], DeferredActor]:
    """A job about one tenant's data: ids only, tenant_id first, idempotent, retried."""
    return _declare(True, queue, {"max_retries": max_retries, **options})


def system_actor(
    *, queue: str = "default", max_retries: int = 3, **options: Any
) -> Callable[[Callable[..., Any]], DeferredActor]:
    """A platform job that is not about one tenant (it may fan out per tenant)."""
    return _declare(False, queue, {"max_retries": max_retries, **options})


def bind_all(broker: Broker) -> None:
    for deferred in _declared:
        deferred.bind(broker)


def declared() -> list[DeferredActor]:
    return list(_declared)
