"""The public evaluation path against a running server: signup behind proof-of-work,
demo keys and their limits, throttles, size controls, the playground's governed chat."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import openai
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from posturio.config import load_settings
from posturio.gateway.limits import DAY_MS, key_tag, window
from posturio.platform import keys, signup
from posturio.platform.db import create_engine, tenant_session
from posturio.platform.errors import Forbidden
from posturio.platform.models import ApiKey, OutboxEmail, Role, Tenant
from posturio.platform.principal import OPERATOR, Principal
from tests.gateway.helpers import USER, sdk
from tests.gateway.public_helpers import Visitor, solve

AWS_KEY = "AKIAZ7QW3ERT5YUI6OPL"


def email() -> str:
    return f"eval-{uuid.uuid4().hex[:10]}@acme-corp.com"


@pytest.fixture
async def visitor(server):
    v = Visitor(server)
    await v.open()
    yield v
    await v.close()


async def test_signup_gives_a_demo_key_that_works_at_once(
    server, visitor, owner_engine, sessionmaker
):
    address = email()
    r = await visitor.signup(address, "Acme Evaluation")
    assert r.status_code == 201, r.text
    out = r.json()
    key = out["api_key"]
    assert out["limits"]["models"] == ["echo"] and out["key_expires_at"]
    client = sdk(server, key)
    reply = await client.chat.completions.create(model="echo", messages=USER)
    assert reply.choices[0].message.content == "hello from the test"
    assert [m.id async for m in client.models.list()] == ["echo"]
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await client.embeddings.create(model="text-embedding-local", input="x")
    assert denied.value.code == "model_not_allowed"

    async with owner_engine.connect() as conn:
        tenant = (await conn.execute(select(Tenant).where(Tenant.name == "Acme Evaluation"))).one()
        mail = (
            await conn.execute(select(OutboxEmail).where(OutboxEmail.to_address == address))
        ).one()
    assert tenant.plan == "demo"
    assert mail.kind == "verify_email" and mail.confirmed_at is None
    link = mail.body.split(": ", 1)[1]
    confirmed = await visitor.http.get(link.replace(link.split("/verify")[0], ""))
    assert confirmed.status_code == 200 and "Email confirmed" in confirmed.text
    bogus = await visitor.http.get("/verify-email?token=not-a-real-token")
    assert bogus.status_code == 404

    # The demo plan issues no further keys, routes or credentials (the operator still can).
    async with tenant_session(sessionmaker, tenant.id) as session:
        owner = Principal(tenant.id, Role.owner, "user:someone")
        with pytest.raises(Forbidden) as refused:
            await keys.create_key(session, owner, name="more", scopes=["gateway"])
        assert refused.value.code == "demo_plan"
        operator = Principal(tenant.id, Role.owner, OPERATOR)
        await keys.create_key(session, operator, name="by-operator", scopes=["gateway"])


async def test_size_limits_of_the_demo_plan_name_the_limit(server, visitor):
    key = (await visitor.signup(email())).json()["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=server, transport=httpx.AsyncHTTPTransport(local_address=visitor.address)
    ) as http:

        async def chat(**body):
            return await http.post(
                "/v1/chat/completions", json={"model": "echo", **body}, headers=headers
            )

        r = await chat(messages=USER, max_tokens=600)
        assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_too_large"
        assert "512" in r.json()["error"]["message"]
        r = await chat(messages=USER * 51)
        assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_messages"
        r = await chat(messages=[{"role": "user", "content": "word " * 8000}])
        assert r.status_code == 413 and r.json()["error"]["code"] == "prompt_too_large"
        r = await chat(messages=[{"role": "user", "content": "x" * 70_000}])
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert "65536" in r.json()["error"]["message"]
        ok = await chat(messages=USER, max_tokens=100)
        assert ok.status_code == 200


async def test_forged_expired_replayed_and_misdirected_challenges_are_refused(server, visitor):
    secret = os.environ["POSTURIO_SECRET_KEY"].encode()
    c = await visitor.challenge()
    good = solve(c["challenge"], c["difficulty"])
    payload, _, sig = c["challenge"].partition(".")
    cases = [
        (f"{payload}x.{sig}", good, "challenge_invalid"),  # tampered
        (c["challenge"], "abc", "solution_invalid"),
        ("no-dot-at-all", good, "challenge_invalid"),
    ]
    expired = signup.issue(secret, visitor.address, 1, ttl_s=-1)
    cases.append((expired.token, solve(expired.token, 1), "challenge_expired"))
    elsewhere = signup.issue(secret, "10.9.8.7", 1, ttl_s=60)
    cases.append((elsewhere.token, solve(elsewhere.token, 1), "challenge_invalid"))
    for token, solution, code in cases:
        r = await visitor.post(
            "/signup",
            {"email": email(), "organisation": "X", "challenge": token, "solution": solution},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
    body = {"email": email(), "organisation": "X", "challenge": c["challenge"], "solution": good}
    assert (await visitor.post("/signup", body)).status_code == 201
    again = await visitor.post("/signup", {**body, "email": email()})
    assert again.status_code == 400 and again.json()["error"]["code"] == "challenge_replayed"


async def test_bad_signup_input_is_refused_without_spending_the_challenge(server, visitor):
    c = await visitor.challenge()
    body = {
        "challenge": c["challenge"],
        "solution": solve(c["challenge"], c["difficulty"]),
        "organisation": "X",
    }
    for bad in ("not-an-email", "a@localhost", "x" * 400 + "@acme.com"):
        r = await visitor.post("/signup", {**body, "email": bad})
        assert r.status_code == 400, r.text
    assert (await visitor.post("/signup", {**body, "email": 42})).status_code == 400
    raw = await visitor.http.post(
        "/signup", content=b"{nope", headers={"x-csrftoken": visitor.csrf}
    )
    assert raw.status_code == 400
    taken = email()
    assert (await visitor.post("/signup", {**body, "email": taken})).status_code == 201
    again = await visitor.signup(taken)
    assert again.status_code == 409 and again.json()["error"]["code"] == "email_taken"
    no_csrf = await visitor.http.post("/signup/challenge", json={})
    assert no_csrf.status_code == 403


async def test_a_burst_of_signups_from_one_address_costs_more_then_is_refused(server, visitor):
    difficulties = []
    for _ in range(3):
        c = await visitor.challenge()
        difficulties.append(c["difficulty"])
        r = await visitor.post(
            "/signup",
            {
                "email": email(),
                "organisation": "Burst",
                "challenge": c["challenge"],
                "solution": solve(c["challenge"], c["difficulty"]),
            },
        )
        assert r.status_code == 201, r.text
    assert difficulties[0] < difficulties[1] < difficulties[2]
    r = await visitor.signup(email())
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    # Another network is not affected by this one's burst.
    other = Visitor(server)
    await other.open()
    assert (await other.challenge())["difficulty"] == difficulties[0]
    await other.close()


async def test_demo_key_over_its_daily_limit_gets_429(server, visitor, settings):
    key = (await visitor.signup(email())).json()["api_key"]
    key_id = await _key_id(key.split("_")[1])
    redis = Redis.from_url(settings.redis_url)
    day, _ = window(int(time.time() * 1000), DAY_MS)
    await redis.set(f"{key_tag(key_id)}:rpd:{day}", settings.demo_requests_per_day)
    await redis.aclose()
    async with httpx.AsyncClient(base_url=server) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": USER},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "daily_limit_exceeded"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(r.headers["retry-after"]) <= 86_400


async def _key_id(prefix: str) -> str:
    engine = create_engine(load_settings(), as_owner=True)
    async with engine.connect() as conn:
        key_id = (await conn.execute(select(ApiKey.id).where(ApiKey.prefix == prefix))).scalar()
    await engine.dispose()
    return str(key_id)


async def test_operator_revokes_and_extends_demo_keys(server, visitor):
    key = (await visitor.signup(email())).json()["api_key"]
    prefix = key.split("_")[1]
    client = sdk(server, key)
    await client.chat.completions.create(model="echo", messages=USER)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "posturio.cli", *args],
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = cli("demo", "list")
    assert listed.returncode == 0 and prefix in listed.stdout
    extended = cli("demo", "extend", prefix, "--days", "30")
    assert extended.returncode == 0, extended.stderr
    revoked = cli("demo", "revoke", prefix, "--reason", "abuse")
    assert revoked.returncode == 0, revoked.stderr
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.chat.completions.create(model="echo", messages=USER)
    assert refused.value.code == "key_revoked"
    assert cli("demo", "revoke", "nosuchkey").returncode != 0


async def test_throttle_per_address_answers_429_with_retry_after(server, visitor):
    key = (await visitor.signup(email())).json()["api_key"]
    statuses = []
    async with httpx.AsyncClient(
        base_url=server, transport=httpx.AsyncHTTPTransport(local_address=visitor.address)
    ) as http:
        for _ in range(40):
            r = await http.post(
                "/v1/chat/completions",
                json={"model": "echo", "messages": USER},
                headers={"Authorization": f"Bearer {key}"},
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "rate_limit_exceeded"
                assert int(r.headers["retry-after"]) >= 1
    assert statuses.count(200) == 30 and statuses.count(429) == 10


async def test_slow_drip_body_times_out_with_408(server, visitor):
    key = (await visitor.signup(email())).json()["api_key"]
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            "POST /v1/chat/completions HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            '{"model": "echo",'
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert head.startswith(b"HTTP/1.1 408"), head
    writer.close()


async def test_playground_chats_through_the_gateway_with_its_metadata(server, visitor):
    assert (await visitor.signup(email())).status_code == 201
    page = await visitor.open("/playground")
    assert page.status_code == 200 and "Playground" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    r = await visitor.post(
        "/playground/chat",
        {
            "model": "echo",
            "stream": True,
            "messages": [{"role": "user", "content": "mail ana.silva@globex-corp.com"}],
        },
    )
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e]
    meta = json.loads(
        next(e for e in events if e.startswith("event: posturio")).split("data: ", 1)[1]
    )
    assert meta["decision"] == "redact" and meta["route"] == "echo:echo/echo"
    assert meta["findings"][0]["category"] == "email"
    assert "ana.silva@globex-corp.com" not in r.text
    assert "[EMAIL_1]" in r.text
    blocked = await visitor.post(
        "/playground/chat",
        {
            "model": "echo",
            "stream": True,
            "messages": [{"role": "user", "content": f"key {AWS_KEY}"}],
        },
    )
    assert blocked.status_code == 400
    body = blocked.json()
    assert body["response"]["error"]["code"] == "policy_blocked"
    assert body["posturio"]["decision"] == "block"
    assert AWS_KEY not in blocked.text
    stranger = Visitor(server)
    await stranger.open()
    r = await stranger.post("/playground/chat", {"model": "echo", "messages": USER})
    assert r.status_code == 401
    await stranger.close()
