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
