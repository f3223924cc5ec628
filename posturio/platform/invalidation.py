"""Cache invalidation across processes: a change is published on Redis and every
process drops its cached copy at once (caches still expire on their own TTL)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("posturio.invalidation")

KEYS = "posturio:invalidate:keys"
ROUTES = "posturio:invalidate:routes"
POLICIES = "posturio:invalidate:policies"

# A handler gets the changed item's id, or None for "drop everything" (after a reconnect,
# when messages may have been missed).
Handler = Callable[[str | None], None]


class InvalidationHub:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def on(self, channel: str, handler: Handler) -> None:
        self._handlers[channel].append(handler)

    def dispatch(self, channel: str, item: str | None) -> None:
        for handler in self._handlers.get(channel, []):
            handler(item)

    def _drop_all(self) -> None:
        for channel in self._handlers:
            self.dispatch(channel, None)

    async def run(self, redis: Redis) -> None:
        """Listen for the app's lifetime; reconnect across Redis outages."""
        while True:
            try:
                pubsub = redis.pubsub()
                await pubsub.subscribe(*self._handlers)
                self._drop_all()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.dispatch(message["channel"].decode(), message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("invalidation_listener_error", error=str(exc))
                self._drop_all()
                await asyncio.sleep(1.0)


async def publish(redis: Redis, channel: str, item: str) -> None:
    await redis.publish(channel, item)
