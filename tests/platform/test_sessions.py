"""Console sessions: the id is the server's, new at every sign-in and tenant switch (no
fixation), and sign-ins, failures and sign-outs are audited with method and address."""

from __future__ import annotations

import re
import uuid

from posturio.platform import accounts
from posturio.platform.db import tenant_session
from posturio.platform.models import Role
from posturio.platform.principal import OPERATOR, Principal

COOKIE = "posturio_session"
DOMAIN = "testserver.local"


def _csrf(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def _login(client, email: str, password: str):
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": _csrf(page.text)}
    )


def _session_id(client) -> str | None:
    return client.cookies.get(COOKIE, domain=DOMAIN)


def _plant(client, session_id: str) -> None:
    """The cookie as an attacker would set it in the victim's browser."""
    client.cookies.clear()
    client.cookies.set(COOKIE, session_id, domain=DOMAIN)


async def _audit(client, tenant, action: str) -> list[dict]:
    r = await client.get(f"/api/audit?action={action}", headers=tenant.admin_headers)
    assert r.status_code == 200
    return r.json()["items"]


async def test_a_planted_session_id_is_worthless_after_sign_in(browser, make_tenant):
    t = await make_tenant()
    # The attacker gets a real, server-issued id by opening the sign-in page...
    await browser.get("/login")
    planted = _session_id(browser)
    assert planted
    # ...and plants it in the victim's browser, who then signs in.
    r = await _login(browser, t.owner_email, t.owner_password)
    assert r.status_code == 303
    signed_in = _session_id(browser)
    assert signed_in and signed_in != planted
    assert (await browser.get("/console/")).status_code == 200
    # The attacker's copy of the old id opens nothing.
    _plant(browser, planted)
    r = await browser.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/login"


async def test_an_id_the_server_never_issued_is_not_adopted(browser, make_tenant):
    t = await make_tenant()
    chosen = "a" * 64
    _plant(browser, chosen)
    await _login(browser, t.owner_email, t.owner_password)
    assert _session_id(browser) != chosen
    _plant(browser, chosen)
    assert (await browser.get("/console/")).status_code == 303


async def test_switching_tenant_rotates_the_session(browser, make_tenant, sessionmaker):
    first = await make_tenant("First")
    second = await make_tenant("Second")
    async with tenant_session(sessionmaker, second.id) as session:
        user = await accounts.user_by_email(session, first.owner_email)
        assert user is not None
        await accounts.add_member(
            session, Principal(second.id, Role.owner, OPERATOR), user.email, Role.member
        )
    await _login(browser, first.owner_email, first.owner_password)
    home = await browser.get("/console/")
    before = _session_id(browser)
    r = await browser.post(
        "/console/tenant", data={"tenant_id": str(second.id), "_csrf_token": _csrf(home.text)}
    )
    assert r.status_code == 303
    after = _session_id(browser)
    assert after and after != before
    assert "Second" in (await browser.get("/console/")).text
    _plant(browser, before)
    assert (await browser.get("/console/")).status_code == 303


async def test_sign_in_failure_and_sign_out_are_audited(browser, client, make_tenant):
    t = await make_tenant()
    assert (await _login(browser, t.owner_email, "not the password")).status_code == 401
    home_login = await _login(browser, t.owner_email, t.owner_password)
    assert home_login.status_code == 303
    home = await browser.get("/console/")
    await browser.post("/logout", data={"_csrf_token": _csrf(home.text)})

    [failed] = await _audit(client, t, "auth.sign_in_failed")
    assert failed["actor"] == f"user:{t.owner_id}"
    assert failed["data"]["method"] == "password" and failed["data"]["reason"] == "wrong_password"
    assert failed["data"]["client"]  # the client address
    [signed_in] = await _audit(client, t, "auth.sign_in")
    assert signed_in["data"]["method"] == "password"
    assert signed_in["data"]["client"] == failed["data"]["client"]
    [signed_out] = await _audit(client, t, "auth.sign_out")
    assert signed_out["actor"] == f"user:{t.owner_id}"


async def test_unknown_address_is_audited_nowhere(browser, make_tenant, client):
    t = await make_tenant()
    r = await _login(browser, f"nobody-{uuid.uuid4().hex[:6]}@example.com", "whatever-password")
    assert r.status_code == 401
    assert await _audit(client, t, "auth.sign_in_failed") == []
