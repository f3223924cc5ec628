"""Members and roles through the admin API."""

from __future__ import annotations


async def test_add_list_change_remove(client, make_tenant):
    t = await make_tenant()
    r = await client.post(
        "/api/members",
        json={"email": "Rev@Example.com", "role": "reviewer"},
        headers=t.admin_headers,
    )
    assert r.status_code == 201, r.text
    member = r.json()
    assert member["role"] == "reviewer" and member["email"] == "Rev@example.com"

    dup = await client.post(
        "/api/members", json={"email": "rev@example.com"}, headers=t.admin_headers
    )
    assert dup.status_code == 409

    r = await client.patch(
        f"/api/members/{member['id']}", json={"role": "admin"}, headers=t.admin_headers
    )
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert (
        await client.delete(f"/api/members/{member['id']}", headers=t.admin_headers)
    ).status_code == 204
    emails = {
        m["email"] for m in (await client.get("/api/members", headers=t.admin_headers)).json()
    }
    assert emails == {t.owner_email}


async def test_admin_key_cannot_touch_owners(client, make_tenant):
    t = await make_tenant()
    r = await client.post(
        "/api/members", json={"email": "boss@example.com", "role": "owner"}, headers=t.admin_headers
    )
    assert r.status_code == 403
    owner = (await client.get("/api/members", headers=t.admin_headers)).json()[0]
    r = await client.patch(
        f"/api/members/{owner['id']}", json={"role": "member"}, headers=t.admin_headers
    )
    assert r.status_code == 403
    assert (
        await client.delete(f"/api/members/{owner['id']}", headers=t.admin_headers)
    ).status_code == 403


async def test_member_input_errors(client, make_tenant):
    t = await make_tenant()
    cases = [
        ({"email": "not-an-email"}, 400, "email"),
        ({"email": "a@example.com", "role": "god"}, 400, "role"),
        ({"email": "a@example.com", "password": "short"}, 400, "password"),
        ({"email": ["a@example.com"]}, 400, "email"),
    ]
    for body, status, word in cases:
        r = await client.post("/api/members", json=body, headers=t.admin_headers)
        assert r.status_code == status, (body, r.text)
        assert word in r.json()["error"]["message"], (body, r.json())
