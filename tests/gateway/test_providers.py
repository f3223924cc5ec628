"""Anthropic translation both ways, Azure's URL scheme, embeddings, encrypted credentials."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.gateway.helpers import USER, put_route, sdk

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
async def tenant(make_tenant, server):
    return await make_tenant()


async def _credential(server, tenant, name, provider, secret):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        r = await http.post(
            "/api/credentials", json={"name": name, "provider": provider, "api_key": secret}
        )
    assert r.status_code == 201, r.text
    assert secret not in r.text
    return r.json()


async def test_anthropic_round_trip_with_tools(server, fake, tenant, owner_engine):
    secret = f"sk-ant-{uuid.uuid4().hex}"
    await _credential(server, tenant, "anthropic-main", "anthropic", secret)
    alias = f"claude-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            {
                "name": "claude",
                "provider": "anthropic",
                "model": "claude-x",
                "base_url": fake.base_url,
                "credential": "anthropic-main",
                "max_retries": 0,
            }
        ],
    )
    client = sdk(server, tenant.gateway_key)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "and tomorrow?"},
    ]
    reply = await client.chat.completions.create(
        model=alias, messages=messages, tools=TOOLS, tool_choice="required", max_tokens=100
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "and tomorrow?"
    call = choice.message.tool_calls[0]
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    assert reply.usage.prompt_tokens == 21 and reply.usage.completion_tokens == 9

    sent = fake.calls("claude-x")[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == secret  # decrypted only to call upstream
    body = sent["body"]
    assert body["system"] == "You are terse." and body["max_tokens"] == 100
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"][0]["input_schema"]["properties"]["city"]["type"] == "string"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "weather",
        "input": {"city": "Paris"},
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"

    # The credential is stored encrypted: its plaintext is nowhere in the database.
    async with owner_engine.connect() as conn:
        dump = (
            await conn.execute(
                text("SELECT string_agg(row_to_json(c)::text, '') FROM provider_credentials c")
            )
        ).scalar_one()
    assert secret not in dump


async def test_anthropic_streaming_text_and_tool_calls(server, fake, tenant):
    await _credential(server, tenant, "a", "anthropic", "sk-ant-x")
    alias = f"claude-s-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            {
                "name": "claude",
                "provider": "anthropic",
                "model": "claude-s",
                "base_url": fake.base_url,
                "credential": "a",
            }
        ],
    )
    client = sdk(server, tenant.gateway_key)
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model=alias,
            messages=[{"role": "user", "content": "red green"}],
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    text_out = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text_out.strip() == "red green"
    args = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
    )
    assert json.loads(args) == {"city": "Paris"}
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 21 and chunks[-1].usage.completion_tokens == 9


async def test_azure_url_scheme_and_header(server, fake, tenant):
    await _credential(server, tenant, "az", "azure", "azure-secret")
    alias = f"az-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            {
                "name": "east",
                "provider": "azure",
                "model": "ok",
                "base_url": fake.base_url,
                "api_version": "2024-10-21",
                "credential": "az",
            }
        ],
    )
    reply = await sdk(server, tenant.gateway_key).chat.completions.create(
        model=alias, messages=USER
    )
    assert reply.choices[0].message.content == "hello from the test"
    sent = [r for r in fake.requests if r["path"].startswith("/openai/deployments/")][-1]
    assert sent["path"] == "/openai/deployments/ok/chat/completions"
    assert sent["query"] == {"api-version": "2024-10-21"}
    assert sent["headers"]["api-key"] == "azure-secret"
    assert "Authorization" not in sent["headers"]


async def test_embeddings_local_and_upstream(server, fake, tenant):
    client = sdk(server, tenant.gateway_key)
    local = await client.embeddings.create(
        model="text-embedding-local",
        input=["the cat sat", "a feline was sitting", "quarterly revenue"],
    )
    vectors = [d.embedding for d in local.data]
    assert [len(v) for v in vectors] == [384, 384, 384]

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])  # real semantics
    floats = await client.embeddings.create(
        model="text-embedding-local", input="one", encoding_format="float"
    )
    assert len(floats.data[0].embedding) == 384

    alias = f"emb-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [{"name": "e", "provider": "openai", "model": "emb-up", "base_url": f"{fake.base_url}/v1"}],
        kind="embeddings",
    )
    up = await client.embeddings.create(model=alias, input="x", encoding_format="float")
    assert up.data[0].embedding == [0.1, 0.2, 0.3]
    async with httpx.AsyncClient(base_url=server) as http:
        bad = await http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-local", "input": [1, "a"]},
            headers={"Authorization": f"Bearer {tenant.gateway_key}"},
        )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


async def test_route_admin_validation_and_isolation(server, tenant, make_tenant):
    other = await make_tenant()
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        bad = [
            {"deployments": []},
            {"deployments": [{"name": "x", "provider": "azure", "model": "m"}]},
            {"deployments": [{"name": "x", "provider": "openai", "model": "m"}]},
            {
                "deployments": [
                    {"name": "x", "provider": "openai", "model": "m", "base_url": "ftp://x"}
                ]
            },
            {
                "deployments": [
                    {
                        "name": "x",
                        "provider": "openai",
                        "model": "m",
                        "credential": "missing",
                        "base_url": "http://x",
                    }
                ]
            },
            {
                "kind": "embeddings",
                "deployments": [{"name": "x", "provider": "echo", "model": "echo"}],
            },
            {"deployments": [{"name": "x", "provider": "nope", "model": "m"}]},
        ]
        for spec in bad:
            r = await http.put("/api/routes/broken", json=spec)
            assert r.status_code == 400, (spec, r.text)
        await _credential(server, tenant, "used", "openai", "sk-1")
        r = await http.put(
            "/api/routes/mine",
            json={
                "deployments": [
                    {"name": "x", "provider": "openai", "model": "m", "credential": "used"}
                ]
            },
        )
        assert r.status_code == 200
        creds = (await http.get("/api/credentials")).json()
        assert [c["name"] for c in creds] == ["used"] and "sk-1" not in str(creds)
        r = await http.delete(f"/api/credentials/{creds[0]['id']}")
        assert r.status_code == 409
        aliases = [r["alias"] for r in (await http.get("/api/routes")).json()]
        assert "mine" in aliases and "echo" in aliases
    async with httpx.AsyncClient(base_url=server, headers=other.admin_headers) as http:
        assert "mine" not in [r["alias"] for r in (await http.get("/api/routes")).json()]
        assert (await http.get("/api/routes/mine")).status_code == 404
        assert (await http.delete(f"/api/credentials/{creds[0]['id']}")).status_code == 404
    async with httpx.AsyncClient(base_url=server) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={"model": "mine", "messages": USER},
            headers={"Authorization": f"Bearer {other.gateway_key}"},
        )
    assert r.status_code == 404
