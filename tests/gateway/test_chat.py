"""/v1/chat/completions through a running Posturio with the official openai SDK."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import openai
import pytest

from tests.eventually import eventually
from tests.gateway.helpers import USER, deployment, put_route, sdk, sync_sdk


@pytest.fixture
async def tenant(make_tenant, server):
    return await make_tenant()


async def test_non_streaming_passes_fields_through(server, fake, tenant):
    alias = f"gpt-{uuid.uuid4().hex[:6]}"
    await put_route(server, tenant, alias, [deployment("main", "ok", fake.base_url)])
    client = sdk(server, tenant.gateway_key)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    raw = await client.chat.completions.with_raw_response.create(
        model=alias,
        messages=[
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "multi"}, {"type": "text", "text": "part"}],
            },
        ],
        tools=tools,
        n=1,
        seed=7,
        response_format={"type": "json_object"},
        extra_body={"vendor_extension": {"x": 1}},
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "multi part"
    assert reply.usage.prompt_tokens == 11
    assert raw.headers["x-posturio-decision"] == "allow"
    assert raw.headers["x-posturio-route"] == "main:openai/ok"
    assert raw.headers["x-posturio-attempts"] == "1"
    assert re.fullmatch(r"\d+\.\d{3}", raw.headers["x-posturio-overhead-ms"])
    assert raw.headers["x-posturio-request-id"]
    sent = fake.calls("ok")[-1]["body"]
    assert sent["model"] == "ok"  # the alias became the upstream model
    assert sent["tools"] == tools and sent["seed"] == 7
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["vendor_extension"] == {"x": 1}


def test_sync_sdk_against_builtin_echo(server, gateway_key_sync):
    client = sync_sdk(server, gateway_key_sync)
    reply = client.chat.completions.create(model="echo", messages=USER)
    assert reply.choices[0].message.content == "hello from the test"
    assert reply.usage.completion_tokens > 0
    stream = client.chat.completions.create(model="echo", messages=USER, stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == "hello from the test"
    )
    models = {m.id for m in client.models.list()}
    assert {"echo", "text-embedding-local"} <= models


@pytest.fixture
async def gateway_key_sync(make_tenant, server):
    return (await make_tenant()).gateway_key


async def test_streaming_chunk_by_chunk_with_and_without_usage(server, fake, tenant):
    alias = f"s-{uuid.uuid4().hex[:6]}"
    await put_route(server, tenant, alias, [deployment("main", "ok", fake.base_url)])
    client = sdk(server, tenant.gateway_key)
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model=alias,
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert len([c for c in chunks if c.choices]) >= 4  # not buffered into one
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7

    plain = [
        c
        async for c in await client.chat.completions.create(model=alias, messages=USER, stream=True)
    ]
    assert all(c.usage is None for c in plain)
    # Usage was still requested upstream, for metering.
    assert fake.calls("ok")[-1]["body"]["stream_options"] == {"include_usage": True}


async def test_fallback_after_retries(server, fake, tenant):
    alias = f"fb-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            deployment("primary", "fail", fake.base_url, max_retries=1),
            deployment("backup", "ok", fake.base_url, priority=1),
        ],
    )
    raw = await sdk(server, tenant.gateway_key).chat.completions.with_raw_response.create(
        model=alias, messages=USER
    )
    assert raw.headers["x-posturio-route"] == "backup:openai/ok"
    assert raw.headers["x-posturio-attempts"] == "3"


async def test_retries_429_honouring_retry_after(server, fake, tenant):
    model = f"ratelimit:2:{uuid.uuid4().hex[:6]}"
    alias = f"rl-{uuid.uuid4().hex[:6]}"
    await put_route(
        server, tenant, alias, [deployment("main", model, fake.base_url, max_retries=3)]
    )
    raw = await sdk(server, tenant.gateway_key).chat.completions.with_raw_response.create(
        model=alias, messages=USER
    )
    assert raw.headers["x-posturio-attempts"] == "3"
    assert len(fake.calls(model)) == 3


async def test_timeouts_give_504_or_fall_back(server, fake, tenant):
    alias = f"slow-{uuid.uuid4().hex[:6]}"
    await put_route(
        server, tenant, alias, [deployment("slow", "slow:2", fake.base_url, timeout_s=0.3)]
    )
    client = sdk(server, tenant.gateway_key)
    with pytest.raises(openai.APIStatusError) as err:
        await client.chat.completions.create(model=alias, messages=USER)
    assert err.value.status_code == 504
    assert err.value.response.json()["error"]["code"] == "upstream_timeout"
    assert err.value.response.headers["x-posturio-attempts"] == "1"

    await put_route(
        server,
        tenant,
        alias,
        [
            deployment("slow", "slow:2", fake.base_url, timeout_s=0.3),
            deployment("fast", "ok", fake.base_url, priority=1),
        ],
    )
    raw = await client.chat.completions.with_raw_response.create(model=alias, messages=USER)
    assert raw.headers["x-posturio-route"] == "fast:openai/ok"


async def test_all_failing_is_502_in_openai_envelope(server, fake, tenant):
    alias = f"dead-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            deployment("a", "fail", fake.base_url, max_retries=1),
            deployment("b", "denied", fake.base_url),
        ],
    )
    with pytest.raises(openai.APIStatusError) as err:
        await sdk(server, tenant.gateway_key).chat.completions.create(model=alias, messages=USER)
    assert err.value.status_code == 502
    body = err.value.response.json()["error"]
    assert body["type"] == "api_error" and body["code"] == "upstream_error"
    assert err.value.response.headers["x-posturio-attempts"] == "3"


async def test_upstream_400_is_the_callers_and_not_retried(server, fake, tenant):
    alias = f"rej-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            deployment("a", "reject", fake.base_url, max_retries=2),
            deployment("b", "ok", fake.base_url, priority=1),
        ],
    )
    before = len(fake.calls("reject"))
    with pytest.raises(openai.BadRequestError) as err:
        await sdk(server, tenant.gateway_key).chat.completions.create(model=alias, messages=USER)
    assert "bad parameter" in err.value.message
    assert len(fake.calls("reject")) == before + 1


async def test_breaker_cools_a_failing_deployment(server, fake, tenant):
    alias = f"cb-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            deployment("bad", "fail", fake.base_url, weight=1000),
            deployment("good", "ok", fake.base_url, weight=1),
        ],
    )
    client = sdk(server, tenant.gateway_key)
    attempts = []
    for _ in range(12):
        raw = await client.chat.completions.with_raw_response.create(model=alias, messages=USER)
        attempts.append(int(raw.headers["x-posturio-attempts"]))
    # Once "bad" has failed 3 times it cools down: later requests go straight to "good".
    assert sum(a == 2 for a in attempts) == 3
    assert attempts[-1] == 1
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        health = (await http.get("/api/routes-health")).json()
    assert any(h["deployment"] == "bad:openai/fail" and h["cooling_down"] for h in health)


async def test_stream_failure_before_first_byte_falls_back(server, fake, tenant):
    alias = f"sfb-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [deployment("a", "fail", fake.base_url), deployment("b", "ok", fake.base_url, priority=1)],
    )
    client = sdk(server, tenant.gateway_key)
    raw = await client.chat.completions.with_raw_response.create(
        model=alias, messages=[{"role": "user", "content": "x y"}], stream=True
    )
    assert raw.headers["x-posturio-route"] == "b:openai/ok"
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "x y"


async def test_stream_cut_mid_way_ends_with_an_error_event(server, fake, worker, tenant):
    alias = f"cut-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [deployment("a", "cut", fake.base_url), deployment("b", "ok", fake.base_url, priority=1)],
    )
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        async with http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": alias,
                "stream": True,
                "messages": [{"role": "user", "content": "alpha beta gamma"}],
            },
            headers={"Authorization": f"Bearer {tenant.gateway_key}"},
        ) as r:
            assert r.status_code == 200
            body = (await r.aread()).decode()
    assert '"content": "alpha"' in body or '"content":"alpha"' in body
    assert "stream_interrupted" in body
    assert "[DONE]" not in body  # never a clean end to a truncated answer
    with pytest.raises(openai.APIError):
        async for _ in await sdk(server, tenant.gateway_key).chat.completions.create(
            model=alias, messages=[{"role": "user", "content": "alpha beta"}], stream=True
        ):
            pass
    # What was delivered before the break is metered (estimated: no usage chunk came).
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:

        async def usage() -> list[dict[str, Any]]:
            return (await http.get("/api/usage/requests?limit=10")).json()

        rows = await eventually(usage, lambda r: len(r) >= 2, what="both usage rows")
    assert len(rows) == 2 and {r["error_code"] for r in rows} == {"stream_interrupted"}
    assert all(r["completion_tokens"] > 0 and r["tokens_estimated"] for r in rows), rows
