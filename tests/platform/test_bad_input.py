"""Bad input gets a clear 4xx in the platform's error envelope, never a 500."""

from __future__ import annotations


async def test_malformed_json(client, make_tenant):
    t = await make_tenant()
    r = await client.post(
        "/api/keys",
        content=b'{"name": ',
        headers={**t.admin_headers, "content-type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["code"] == "invalid_request" and body["error"]["request_id"]


async def test_invalid_utf8(client, make_tenant):
    t = await make_tenant()
    r = await client.post(
        "/api/keys",
        content=b'{"name": "\xff\xfe"}',
        headers={**t.admin_headers, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text


async def test_wrong_top_level_type(client, make_tenant):
    t = await make_tenant()
    r = await client.post("/api/keys", json=["name"], headers=t.admin_headers)
    assert r.status_code == 400


async def test_body_too_large(client, make_tenant, settings):
    t = await make_tenant()
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    r = await client.post(
        "/api/keys", content=big, headers={**t.admin_headers, "content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


async def test_unknown_route_and_method(client):
    r = await client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.put("/healthz")
    assert r.status_code == 405


async def test_bad_query_parameter(client, make_tenant):
    t = await make_tenant()
    r = await client.get("/api/audit?limit=100000", headers=t.admin_headers)
    assert r.status_code == 400 and "limit" in r.json()["error"]["message"]
    r = await client.get("/api/audit?limit=abc", headers=t.admin_headers)
    assert r.status_code == 400
