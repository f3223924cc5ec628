"""Postgres stopped under a running gateway (`pg_ctl stop`): known keys and routes keep
serving past their cache TTL, usage goes to the Redis stream, whatever needs the database
answers 503 with Retry-After in its own envelope, never 500; once Postgres is back a
worker stores the outage's usage.

The session's Postgres is shared by every test, so this one runs its own Postgres and
Redis, its own `posturio serve` and, at the end, its own worker."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from posturio.config import Settings
from posturio.platform.db import create_engine, create_sessionmaker
from posturio.platform.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from posturio.platform.migrate import upgrade
from posturio.platform.security import generate_api_key
from tests.conftest import TenantFixture, build_tenant
from tests.gateway.helpers import USER, deployment, put_route
from tests.stack_fixtures import TUNING, Worker, _start, _stop

ALIAS = "outage"
CACHE_TTL_S = 1.0


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    postgres: EmbeddedPostgres
    settings: Settings
    tenant: TenantFixture


async def _ready(base: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail("posturio serve did not become ready")


@pytest.fixture
async def stack(tmp_path: Path, settings: Settings, fake) -> AsyncIterator[Stack]:  # type: ignore[no-untyped-def]
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    redis = EmbeddedRedis(tmp_path / "redis", persist=False)
    own = settings.model_copy(update={"database_url": postgres.start(), "redis_url": redis.start()})
    proc = None
    try:
        await asyncio.to_thread(upgrade, own)  # alembic runs its own event loop
        engine = create_engine(own)
        try:
            tenant = await build_tenant(create_sessionmaker(engine))
        finally:
            await engine.dispose()
        env = {
            **os.environ,
            **TUNING,
            "POSTURIO_DATABASE_URL": own.database_url,
            "POSTURIO_REDIS_URL": own.redis_url,
            "POSTURIO_PORT": str(free_port()),
            "POSTURIO_API_KEY_CACHE_TTL_S": str(CACHE_TTL_S),
            "POSTURIO_ROUTE_CACHE_TTL_S": str(CACHE_TTL_S),
            "POSTURIO_DB_CONNECT_TIMEOUT_S": "2",
        }
        proc = _start(["serve"], env)
        base = f"http://127.0.0.1:{env['POSTURIO_PORT']}"
        await _ready(base)
        yield Stack(base, env, postgres, own, tenant)
    finally:
        if proc is not None:
            _stop(proc)
        redis.stop()
        postgres.stop()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _chat(http: httpx.AsyncClient, key: str) -> httpx.Response:
    return await http.post(
        "/v1/chat/completions", json={"model": ALIAS, "messages": USER}, headers=_bearer(key)
    )


def _unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1


async def _stored(stack: Stack, request_ids: list[str]) -> set[str]:
    """Which of these requests have a usage row (read as the owner: no tenant context)."""
    engine = create_engine(stack.settings, as_owner=True)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT request_id FROM usage_events WHERE request_id = ANY(:ids)"),
                {"ids": request_ids},
            )
            return {r.request_id for r in rows}
    finally:
        await engine.dispose()


@pytest.mark.timeout(240)
async def test_the_gateway_without_postgres(stack: Stack, fake) -> None:  # type: ignore[no-untyped-def]
    tenant = stack.tenant
    await put_route(stack.base, tenant, ALIAS, [deployment("main", "ok", fake.base_url)])
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        warm = await _chat(http, tenant.gateway_key)
        assert warm.status_code == 200, warm.text
        login = await http.get("/login")  # the sign-in page itself needs no database
        csrf = login.text.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]

        stack.postgres.stop()
        await asyncio.sleep(CACHE_TTL_S * 1.5)  # every cached key and route is past its TTL

        # A known key on a known route: served from the caches, metered through Redis.
        served = []
        for _ in range(3):
            r = await _chat(http, tenant.gateway_key)
            statuses.append(r.status_code)
            assert r.status_code == 200, r.text
            served.append(r.headers["x-posturio-request-id"])

        # A key the gateway has never seen cannot be checked: retry later, in OpenAI's shape.
        r = await _chat(http, generate_api_key().plaintext)
        statuses.append(r.status_code)
        _unavailable(r)
        assert r.json()["error"]["type"] == "api_error"
        assert r.json()["error"]["code"] == "service_unavailable"

        # The admin API needs the database: the platform's envelope.
        for headers in (tenant.admin_headers, _bearer(generate_api_key().plaintext)):
            r = await http.get("/api/tenant", headers=headers)
            statuses.append(r.status_code)
            _unavailable(r)
            assert r.json()["error"]["code"] == "unavailable"
        r = await http.get("/api/keys", headers=tenant.admin_headers)
        statuses.append(r.status_code)
        _unavailable(r)

        # Signing in to the console needs it too: a page, not JSON.
        r = await http.post(
            "/login",
            data={"email": tenant.owner_email, "password": "x" * 12, "_csrf_token": csrf},
            headers={"Accept": "text/html"},
        )
        statuses.append(r.status_code)
        _unavailable(r)
        assert r.headers["content-type"].startswith("text/html")

        assert 500 not in statuses

        # Postgres back, a worker drains the stream: the outage's usage is stored.
        stack.postgres.start()
        worker = Worker(stack.env)
        worker.start()
        try:
            deadline = time.monotonic() + 60
            stored: set[str] = set()
            while time.monotonic() < deadline and stored != set(served):
                await asyncio.sleep(0.5)
                stored = await _stored(stack, served)
            assert stored == set(served)
        finally:
            worker.stop()
        assert (await _chat(http, tenant.gateway_key)).status_code == 200
