async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.headers["x-posturio-request-id"]


async def test_readyz(client):
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "postgres": "ok", "redis": "ok"}


async def test_tenant(client, make_tenant):
    t = await make_tenant("Acme")
    r = await client.get("/api/tenant", headers=t.admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Acme"
