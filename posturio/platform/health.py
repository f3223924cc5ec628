"""Liveness (/healthz) and readiness (/readyz: Postgres and Redis reachable)."""

from __future__ import annotations

import asyncio

from litestar import Request, Response, get
from sqlalchemy import text

CHECK_TIMEOUT_S = 2.0


@get("/healthz", include_in_schema=True, tags=["health"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(coro: object) -> str:
    try:
        await asyncio.wait_for(coro, CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@get("/readyz", tags=["health"], summary="Postgres and Redis are reachable")
async def readyz(request: Request) -> Response[dict[str, object]]:
    state = request.app.state

    async def db() -> None:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    postgres, redis = await asyncio.gather(_check(db()), _check(state.redis.ping()))
    ready = postgres == "ok" and redis == "ok"
    body: dict[str, object] = {
        "status": "ready" if ready else "unavailable",
        "postgres": postgres,
        "redis": redis,
    }
    return Response(body, status_code=200 if ready else 503)
