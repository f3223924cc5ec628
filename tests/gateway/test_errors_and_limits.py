"""Every /v1 error status, in OpenAI's envelope with the x-posturio headers; key limits."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from posturio.gateway.errors import GatewayError
from posturio.gateway.limits import Limiter, bucket
from posturio.platform.embedded import free_port
from tests.gateway.helpers import USER, deployment, put_route, sdk

HEADERS = (
    "x-posturio-request-id",
    "x-posturio-decision",
    "x-posturio-route",
    "x-posturio-attempts",
    "x-posturio-overhead-ms",
)


@pytest.fixture
async def tenant(make_tenant, server):
    return await make_tenant()


async def _post(server, key, body, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        if isinstance(body, bytes | str):
            return await http.post(
                "/v1/chat/completions",
                content=body,
                headers={**headers, "content-type": "application/json"},
                **kw,
            )
        return await http.post("/v1/chat/completions", json=body, headers=headers, **kw)


def _check(r, status, code=None, type_=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert r.headers["x-posturio-request-id"] in err["message"]
    for h in HEADERS:
        assert h in r.headers, h
    if code:
        assert err["code"] == code, err
    if type_:
        assert err["type"] == type_
    return err


async def test_authentication_errors(server, tenant, owner_engine):
    ok = {"model": "echo", "messages": USER}
    _check(await _post(server, None, ok), 401, "invalid_api_key", "authentication_error")
    _check(await _post(server, "pst_nothing_here", ok), 401, type_="authentication_error")
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        made = (await http.post("/api/keys", json={"name": "t", "scopes": ["gateway"]})).json()
        await http.post(f"/api/keys/{made['key']['id']}/revoke")
    _check(await _post(server, made["secret"], ok), 401, "key_revoked")
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        made = (await http.post("/api/keys", json={"name": "t2", "scopes": ["gateway"]})).json()
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": made["key"]["id"]},
        )
    _check(await _post(server, made["secret"], ok), 401, "key_expired")
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        admin_only = (await http.post("/api/keys", json={"name": "a", "scopes": ["admin"]})).json()
    _check(await _post(server, admin_only["secret"], ok), 403, "permission_denied")


async def test_model_errors(server, tenant):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        limited = (
            await http.post(
                "/api/keys", json={"name": "l", "scopes": ["gateway"], "allowed_models": ["echo"]}
            )
        ).json()
    err = _check(
        await _post(server, limited["secret"], {"model": "text-embedding-local", "messages": USER}),
        403,
        "model_not_allowed",
        "permission_error",
    )
    assert err["param"] == "model"
    _check(
        await _post(server, tenant.gateway_key, {"model": "no-such-model", "messages": USER}),
        404,
        "model_not_found",
        "not_found_error",
    )
    _check(
        await _post(
            server, tenant.gateway_key, {"model": "text-embedding-local", "messages": USER}
        ),
        400,
        "wrong_model_kind",
    )
    models = openai.OpenAI(base_url=f"{server}/v1", api_key=limited["secret"]).models.list()
    assert [m.id for m in models] == ["echo"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "echo", "messages": [', None),
        (b"[1, 2]", None),
        (b'{"model": "echo", "messages": [{"role": "user", "content": "\\xff"}]}', None),
        ({"model": 5, "messages": USER}, "model"),
        ({"model": "echo"}, None),
        ({"model": "echo", "messages": []}, "messages"),
        ({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "echo", "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"model": "echo", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "echo", "messages": USER, "n": 0}, "n"),
    ],
)
async def test_malformed_requests_are_400(server, tenant, body, param):
    err = _check(await _post(server, tenant.gateway_key, body), 400, type_="invalid_request_error")
    if param:
        assert err["param"] == param, err


async def test_invalid_utf8_and_huge_bodies(server, tenant):
    _check(
        await _post(
            server,
            tenant.gateway_key,
            b'{"model": "echo", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        ),
        400,
        type_="invalid_request_error",
    )
    huge = (
        b'{"model": "echo", "messages": [{"role": "user", "content": "' + b"a" * 5_000_000 + b'"}]}'
    )
    _check(await _post(server, tenant.gateway_key, huge), 413, "body_too_large")


async def test_unknown_v1_path_is_openai_shaped(server):
    async with httpx.AsyncClient(base_url=server) as http:
        r = await http.get("/v1/nothing")
    _check(r, 404)


async def test_requests_per_minute_limit(server, tenant):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        key = (await http.post("/api/keys", json={"name": "rpm", "rpm_limit": 2})).json()
    ok = {"model": "echo", "messages": USER}
    assert (await _post(server, key["secret"], ok)).status_code == 200
    assert (await _post(server, key["secret"], ok)).status_code == 200
    r = await _post(server, key["secret"], ok)
    _check(r, 429, "rate_limit_exceeded", "rate_limit_error")
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_tokens_per_minute_limit(server, tenant):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        key = (await http.post("/api/keys", json={"name": "tpm", "tpm_limit": 300})).json()
    small = {"model": "echo", "messages": USER, "max_tokens": 50}
    assert (await _post(server, key["secret"], small)).status_code == 200
    big = {
        "model": "echo",
        "messages": [{"role": "user", "content": "word " * 400}],
        "max_tokens": 50,
    }
    r = await _post(server, key["secret"], big)
    err = _check(r, 429, "rate_limit_exceeded")
    assert "tokens per minute" in err["message"]


async def test_monthly_budget_is_reserved_and_enforced(server, fake, tenant):
    alias = f"paid-{uuid.uuid4().hex[:6]}"
    # 11 prompt + 7 completion tokens at $1 per 1K each: $0.018 a call.
    await put_route(
        server,
        tenant,
        alias,
        [deployment("main", "ok", fake.base_url, input_price_per_1k=1, output_price_per_1k=1)],
    )
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        key = (await http.post("/api/keys", json={"name": "b", "monthly_budget_usd": 0.05})).json()
    body = {"model": alias, "messages": USER, "max_tokens": 10}
    statuses = [(await _post(server, key["secret"], body)).status_code for _ in range(5)]
    assert statuses[:2] == [200, 200] and 429 in statuses
    r = await _post(server, key["secret"], body)
    _check(r, 429, "budget_exceeded")
    assert int(r.headers["retry-after"]) > 0


async def test_changing_limits_applies_at_once(server, tenant):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        key = (await http.post("/api/keys", json={"name": "x"})).json()
        ok = {"model": "echo", "messages": USER}
        assert (await _post(server, key["secret"], ok)).status_code == 200  # cached now
        r = await http.put(
            f"/api/keys/{key['key']['id']}/limits", json={"allowed_models": ["something-else"]}
        )
        assert r.status_code == 200 and r.json()["allowed_models"] == ["something-else"]
    _check(await _post(server, key["secret"], ok), 403, "model_not_allowed")


async def test_limits_when_redis_is_down_follow_the_tenant_choice():
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    limiter = Limiter(dead)
    checks = [bucket("k:rpm", 10, None, "over")]
    assert await limiter.admit("k", checks, fail_open=True) is None
    with pytest.raises(GatewayError) as err:
        await limiter.admit("k", checks, fail_open=False)
    assert err.value.status == 503 and err.value.code == "limits_unavailable"
    await dead.aclose()


async def test_tenant_chooses_fail_open_or_closed(server, tenant):
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        assert (await http.get("/api/tenant")).json()["limits_fail_open"] is True
        r = await http.patch("/api/tenant", json={"limits_fail_open": False})
        assert r.status_code == 200 and r.json()["limits_fail_open"] is False
        bad = await http.patch("/api/tenant", json={"limits_fail_open": "maybe"})
        assert bad.status_code == 400
        audit = (await http.get("/api/audit?action=tenant.update")).json()["items"]
    assert audit[0]["data"]["limits_fail_open"] == {"from": True, "to": False}


async def test_weights_share_traffic(server, fake, tenant):
    alias = f"w-{uuid.uuid4().hex[:6]}"
    await put_route(
        server,
        tenant,
        alias,
        [
            deployment("heavy", "ok", fake.base_url, weight=3),
            deployment("light", "ok", fake.base_url, weight=1),
        ],
    )
    client = sdk(server, tenant.gateway_key)
    served = []
    for _ in range(100):
        raw = await client.chat.completions.with_raw_response.create(model=alias, messages=USER)
        served.append(raw.headers["x-posturio-route"].split(":")[0])
    # Binomial(100, 0.75): outside 55..92 with probability below 1e-5.
    assert 55 <= served.count("heavy") <= 92 and served.count("light") >= 8
