"""Every request is metered through the Redis stream into Postgres: counted, priced,
and nothing lost while the worker is down."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.eventually import eventually
from tests.gateway.helpers import USER, deployment, put_route, sdk


async def _events(server, tenant, expected, within_s=30.0):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:

        async def rows():
            return (await http.get("/api/usage/requests?limit=500")).json()

        return await eventually(
            rows, lambda r: len(r) >= expected, within_s=within_s, what=f"{expected} usage rows"
        )


@pytest.fixture
async def tenant(make_tenant, server):
    return await make_tenant()


async def test_requests_are_counted_priced_and_rolled_up(server, fake, worker, tenant):
    alias = f"u-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [deployment("main", "ok", fake.base_url, input_price_per_1k=2, output_price_per_1k=4)],
    )
    client = sdk(server, tenant.gateway_key)
    ids = []
    for _ in range(5):
        raw = await client.chat.completions.with_raw_response.create(model=alias, messages=USER)
        ids.append(raw.headers["x-posturio-request-id"])
    stream = await client.chat.completions.create(model=alias, messages=USER, stream=True)
    async for _ in stream:
        pass
    async with httpx.AsyncClient(base_url=server) as http:
        await http.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": USER},
            headers={"Authorization": f"Bearer {tenant.gateway_key}"},
        )
    events = await _events(server, tenant, 7)
    assert len(events) == 7
    ok = [e for e in events if e["request_id"] in ids]
    assert len(ok) == 5
    for e in ok:
        assert e["prompt_tokens"] == 11 and e["completion_tokens"] == 7
        assert not e["tokens_estimated"]
        assert e["cost_usd"] == pytest.approx((11 * 2 + 7 * 4) / 1000)
        assert e["deployment"] == "main:openai/ok" and e["status"] == 200
        assert e["latency_ms"] >= e["overhead_ms"]  # the gateway's part of the whole
    streamed = [e for e in events if e["stream"]]
    assert len(streamed) == 1 and streamed[0]["completion_tokens"] == 7
    failed = [e for e in events if e["status"] == 404]
    assert len(failed) == 1 and failed[0]["error_code"] == "model_not_found"

    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        report = (await http.get("/api/usage?days=1")).json()
        keys = (await http.get("/api/keys")).json()
        gw = next(k for k in keys if k["name"] == "gw")
        per_key = (await http.get(f"/api/keys/{gw['id']}/usage")).json()
    assert report["requests"] == 7 and report["errors"] == 1
    assert report["prompt_tokens"] >= 6 * 11
    assert per_key["requests"] == 7
    assert report["cost_usd"] == pytest.approx(6 * (11 * 2 + 7 * 4) / 1000)


async def test_nothing_is_lost_while_the_worker_is_down(server, worker, tenant):
    worker.stop()
    try:
        client = sdk(server, tenant.gateway_key)
        sent = 40
        await asyncio.gather(
            *(client.chat.completions.create(model="echo", messages=USER) for _ in range(sent))
        )
        await asyncio.sleep(1.5)
        async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
            assert (await http.get("/api/usage/requests?limit=500")).json() == []
    finally:
        worker.start()
    events = await _events(server, tenant, sent)
    assert len(events) == sent
    assert len({e["request_id"] for e in events}) == sent  # each once, none twice
