"""API key authentication: the cached hot path against a Postgres lookup per request.

Run: .venv/bin/python -m bench.keyauth
Prints per-call latency of both paths, measured in the same run, and their ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.services import embedded_services
from posturio.config import Settings
from posturio.platform import accounts, keys
from posturio.platform.db import create_engine, create_sessionmaker
from posturio.platform.keyauth import KeyAuthenticator
from posturio.platform.models import Role, Scope
from posturio.platform.principal import Principal

CALLS = 5_000


async def _timed(auth: KeyAuthenticator, token: str, calls: int, *, cold: bool) -> list[float]:
    samples = []
    for _ in range(calls):
        if cold:
            auth.invalidate()
        start = time.perf_counter()
        await auth.authenticate(token)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def _summary(name: str, samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=100)
    mean = statistics.fmean(samples)
    return f"{name:<28} p50 {qs[49]:8.1f} µs   p99 {qs[98]:8.1f} µs   mean {mean:8.1f} µs"


async def run(settings: Settings) -> None:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        tenant = await accounts.create_tenant(session, "bench", actor="bench")
        created = await keys.create_key(
            session,
            Principal(tenant.id, Role.owner, "bench"),
            name="k",
            scopes=[Scope.gateway.value],
        )
    auth = KeyAuthenticator(sessionmaker, ttl_s=3600)
    await _timed(auth, created.plaintext, 200, cold=True)  # warm the pool and code paths
    cold = await _timed(auth, created.plaintext, CALLS // 5, cold=True)
    warm = await _timed(auth, created.plaintext, CALLS, cold=False)
    await engine.dispose()
    print(f"API key authentication, {CALLS} cached calls / {CALLS // 5} uncached calls")
    print(_summary("uncached (Postgres lookup)", cold))
    print(_summary("cached (in-process)", warm))
    ratio = statistics.median(cold) / statistics.median(warm)
    print(f"cached path is {ratio:.0f}x faster at p50")


if __name__ == "__main__":
    with embedded_services() as services:
        asyncio.run(run(services))
