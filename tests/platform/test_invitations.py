"""Joining a tenant takes the person's own acceptance: no tenant attaches an existing
account to itself or chooses its password (audit finding: the first tenant to name an
address owned its password and, through it, every later tenant's membership)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text

from posturio.platform.db import utcnow
from tests.console_client import csrf, login, submit

PASSWORD = "chosen-by-tenant-a"


def _email() -> str:
    return f"victim-{uuid.uuid4().hex[:8]}@b.example.com"


async def _invite(client, tenant, email: str, role: str = "member") -> str:
    r = await client.post(
        "/api/invitations", json={"email": email, "role": role}, headers=tenant.admin_headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["accept_url"].startswith("http")
    return "/invite/" + r.json()["accept_url"].rsplit("/invite/", 1)[1]


async def _accept(client, link: str, password: str):
    page = await client.get(link)
    assert page.status_code == 200, page.text
    return await client.post(link, data={"password": password, "_csrf_token": csrf(page.text)})


async def _tenants_of(owner_engine, email: str) -> set[uuid.UUID]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT m.tenant_id FROM memberships m JOIN users u ON u.id = m.user_id "
                "WHERE lower(u.email) = lower(:e)"
            ),
            {"e": email},
        )
        return {r.tenant_id for r in rows}


async def test_another_tenant_cannot_own_an_address_it_named_first(
    browser, make_tenant, owner_engine
):
    a, b = await make_tenant(), await make_tenant()
    email = _email()
    # A creates the account with a password A chose.
    r = await browser.post(
        "/api/members", json={"email": email, "password": PASSWORD}, headers=a.admin_headers
    )
    assert r.status_code == 201, r.text
    # B cannot attach that account, nor set its password.
    for body in ({"email": email}, {"email": email, "password": "b-chose-this-one"}):
        r = await browser.post("/api/members", json=body, headers=b.admin_headers)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] in {"invite_required", "account_exists"}
    assert await _tenants_of(owner_engine, email) == {a.id}
    # B invites instead; A (knowing the password, not B's link) still cannot reach B.
    await _invite(browser, b, email)
    assert (await login(browser, email, PASSWORD)).status_code == 303
    r = await submit(browser, "/console/", "/console/tenant", {"tenant_id": str(b.id)})
    assert r.status_code in (303, 401) and r.headers.get("location") != "/console"
    assert await _tenants_of(owner_engine, email) == {a.id}


async def test_new_person_accepts_by_choosing_a_password(browser, make_tenant, owner_engine):
    t = await make_tenant()
    email = _email()
    link = await _invite(browser, t, email, role="reviewer")
    page = await browser.get(link)
    assert "Choose a password" in page.text and email in page.text
    r = await _accept(browser, link, "short")
    assert r.status_code == 400 and "at least 10" in r.text
    r = await _accept(browser, link, "my own password 42")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    assert (await browser.get("/console/requests")).status_code == 200  # reviewer pages
    assert await _tenants_of(owner_engine, email) == {t.id}
    # Single use.
    assert (await browser.get(link)).status_code == 404
    browser.cookies.clear()
    assert (await login(browser, email, "my own password 42")).status_code == 303


async def test_existing_account_accepts_with_its_own_password(browser, make_tenant, owner_engine):
    a, b = await make_tenant(), await make_tenant()
    link = await _invite(browser, b, a.owner_email, role="admin")
    page = await browser.get(link)
    assert "Your password for" in page.text
    r = await _accept(browser, link, "someone else's guess")
    assert r.status_code == 401
    assert await _tenants_of(owner_engine, a.owner_email) == {a.id}
    r = await _accept(browser, link, a.owner_password)
    assert r.status_code == 303
    assert await _tenants_of(owner_engine, a.owner_email) == {a.id, b.id}
    # The accept form never changed the account's password.
    browser.cookies.clear()
    assert (await login(browser, a.owner_email, a.owner_password)).status_code == 303


async def test_a_passwordless_account_of_another_tenant_cannot_be_claimed(
    browser, make_tenant, owner_engine
):
    a, b = await make_tenant(), await make_tenant()
    email = _email()
    r = await browser.post("/api/members", json={"email": email}, headers=a.admin_headers)
    assert r.status_code == 201
    link = await _invite(browser, b, email)
    r = await _accept(browser, link, "b-admin-now-owns-this")
    assert r.status_code == 409 and "administrator" in r.text
    assert await _tenants_of(owner_engine, email) == {a.id}
    assert (await login(browser, email, "b-admin-now-owns-this")).status_code == 401


async def test_revoked_expired_and_foreign_invitations(browser, make_tenant, owner_engine):
    a, b = await make_tenant(), await make_tenant()
    link = await _invite(browser, a, _email())
    listed = (await browser.get("/api/invitations", headers=a.admin_headers)).json()
    assert len(listed) == 1 and listed[0]["accept_url"] is None  # the link is shown once
    inv_id = listed[0]["id"]
    # Another tenant neither sees nor revokes it.
    assert (await browser.get("/api/invitations", headers=b.admin_headers)).json() == []
    r = await browser.delete(f"/api/invitations/{inv_id}", headers=b.admin_headers)
    assert r.status_code == 404
    assert (await browser.get(link)).status_code == 200
    assert (
        await browser.delete(f"/api/invitations/{inv_id}", headers=a.admin_headers)
    ).status_code == 204
    assert (await browser.get(link)).status_code == 404
    # Expired.
    email = _email()
    link = await _invite(browser, a, email)
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE invitations SET expires_at = :t WHERE email = :e"),
            {"t": utcnow() - timedelta(minutes=1), "e": email},
        )
    page = await browser.get(link)
    assert page.status_code == 404 and "not valid" in page.text
    assert (await browser.get("/invite/not-a-real-token")).status_code == 404
    # A new invitation to the same address replaces the old link.
    first = await _invite(browser, a, email)
    second = await _invite(browser, a, email)
    assert (await browser.get(first)).status_code == 404
    assert (await browser.get(second)).status_code == 200


async def test_console_invites_and_shows_the_link_once(browser, make_tenant, owner_engine):
    t = await make_tenant()
    email = _email()
    assert (await login(browser, t.owner_email, t.owner_password)).status_code == 303
    r = await submit(
        browser, "/console/members/", "/console/members", {"email": email, "role": "member"}
    )
    assert r.status_code == 201 and "/invite/" in r.text
    link = "/invite/" + r.text.split("/invite/", 1)[1].split('"', 1)[0]
    again = await browser.get("/console/members/")
    assert email in again.text and link not in again.text
    browser.cookies.clear()
    assert (await _accept(browser, link, "a fresh password!")).status_code == 303
    assert await _tenants_of(owner_engine, email) == {t.id}
