"""The shared async Redis client, with timeouts so a dead Redis fails fast."""

from __future__ import annotations

from redis.asyncio import Redis

from posturio.config import Settings


def create_redis(settings: Settings) -> Redis:
    if settings.redis_url is None:
        raise RuntimeError("POSTURIO_REDIS_URL is not set and no embedded Redis runs")
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )
