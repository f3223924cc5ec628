"""Metrics, OpenAPI and request ids."""

from __future__ import annotations


async def test_metrics_exposed(client):
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "posturio_requests_total" in r.text
    assert 'path="/healthz"' in r.text


async def test_openapi_documents_admin_api(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in (
        "/api/keys",
        "/api/keys/{key_id}/revoke",
        "/api/members",
        "/api/audit",
        "/api/audit/verify",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path


async def test_every_response_has_a_distinct_request_id(client):
    a = await client.get("/healthz")
    b = await client.get("/api/keys")
    assert a.headers["x-posturio-request-id"] != b.headers["x-posturio-request-id"]
    assert b.json()["error"]["request_id"] == b.headers["x-posturio-request-id"]


async def test_v1_is_served_inside_litestar_too(client, make_tenant):
    """Without the production dispatcher, /v1 is a Litestar mount of the same gateway."""
    t = await make_tenant()
    r = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {t.gateway_key}"},
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "hi"
    assert r.headers["x-posturio-route"] == "echo:echo/echo"
    r = await client.get("/v1/nowhere", headers={"Authorization": f"Bearer {t.gateway_key}"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
