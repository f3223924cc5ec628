"""Postgres or Redis down: /readyz names it, requests get a quick 503, never a hang."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from posturio.app import create_app
from posturio.platform.embedded import free_port


@pytest.fixture
def down_settings(settings):
    dead = free_port()
    return settings.model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{dead}/posturio",
            "db_connect_timeout_s": 1.0,
        }
    )


@pytest.mark.timeout(30)
async def test_database_down(down_settings, make_tenant):
    t = await make_tenant()
    async with AsyncTestClient(app=create_app(down_settings)) as client:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["redis"] == "ok" and r.json()["postgres"] != "ok"
        r = await client.get("/api/tenant", headers=t.admin_headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert r.headers["retry-after"]


@pytest.mark.timeout(30)
async def test_redis_down(settings, make_tenant):
    dead = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "redis_timeout_s": 0.5}
    )
    async with AsyncTestClient(app=create_app(dead)) as client:
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["postgres"] == "ok" and r.json()["redis"] != "ok"
        # The sign-in page needs no Redis; signing in does: a 503, not a hang or a 500.
        page = await client.get("/login")
        assert page.status_code == 200
        token = page.text.split('name="_csrf_token" value="', 1)[1].split('"', 1)[0]
        r = await client.post(
            "/login", data={"email": "a@example.com", "password": "x" * 12, "_csrf_token": token}
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
