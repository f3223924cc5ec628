"""Members and roles through the admin API."""

from __future__ import annotations

import re
import uuid

from tests.console_client import login

SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


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


async def test_a_member_deactivated_by_scim_is_listed_as_deactivated(browser, client, make_tenant):
    """The API and the members page tell an active member from one the identity provider
    deactivated (the membership stays, so it is listed, but never as active)."""
    t = await make_tenant()
    token = (await client.post("/api/scim/token", headers=t.admin_headers)).json()["token"]
    scim = {"Authorization": f"Bearer {token}"}
    email = f"leaver-{uuid.uuid4().hex[:8]}@example.com"
    user = {"schemas": [SCIM_USER], "userName": email, "active": True}
    created = await client.post("/scim/v2/Users", json=user, headers=scim)
    assert created.status_code == 201, created.text

    async def listed() -> dict[str, bool]:
        members = (await client.get("/api/members", headers=t.admin_headers)).json()
        return {m["email"]: m["active"] for m in members}

    assert await listed() == {t.owner_email: True, email: True}
    off = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    r = await client.patch(f"/scim/v2/Users/{created.json()['id']}", json=off, headers=scim)
    assert r.status_code == 200 and r.json()["active"] is False
    assert await listed() == {t.owner_email: True, email: False}

    await login(browser, t.owner_email, t.owner_password)
    page = (await browser.get("/console/members")).text
    row = re.search(
        rf'<tr data-email="{re.escape(email)}" data-active="(\w+)">(.*?)</tr>', page, re.S
    )
    assert row and row.group(1) == "no" and "deactivated" in row.group(2)
    owner = re.search(rf'<tr data-email="{re.escape(t.owner_email)}" data-active="(\w+)">', page)
    assert owner and owner.group(1) == "yes"
