"""Console sign-in: argon2 passwords, server-side sessions, CSRF on every form."""

from __future__ import annotations

import re

from sqlalchemy import text


def _csrf(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def _login(client, email, password):
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": _csrf(page.text)}
    )


async def test_sign_in_and_out(browser, make_tenant):
    client = browser
    t = await make_tenant("Globex")
    assert (await client.get("/console/", follow_redirects=False)).headers["location"] == "/login"
    r = await _login(client, t.owner_email, t.owner_password)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("posturio_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    home = await client.get("/console/")
    assert home.status_code == 200
    assert t.owner_email in home.text and "Globex" in home.text and "owner" in home.text
    r = await client.post("/logout", data={"_csrf_token": _csrf(home.text)})
    assert r.status_code == 303
    assert (await client.get("/console/", follow_redirects=False)).status_code == 303


async def test_wrong_password_and_unknown_user(browser, make_tenant):
    client = browser
    t = await make_tenant()
    r = await _login(client, t.owner_email, "not the password")
    assert r.status_code == 401 and "Wrong email or password" in r.text
    r = await _login(client, "nobody@example.com", "whatever-password")
    assert r.status_code == 401 and "Wrong email or password" in r.text


async def test_post_without_csrf_token_is_refused(browser, make_tenant):
    client = browser
    t = await make_tenant()
    await client.get("/login")
    r = await client.post("/login", data={"email": t.owner_email, "password": t.owner_password})
    assert r.status_code == 403
    r = await client.post(
        "/login",
        data={"email": t.owner_email, "password": t.owner_password, "_csrf_token": "forged"},
    )
    assert r.status_code == 403


async def test_repeated_failures_are_throttled(browser, make_tenant):
    client = browser
    t = await make_tenant()
    for _ in range(10):
        assert (await _login(client, t.owner_email, "wrong password!")).status_code == 401
    r = await _login(client, t.owner_email, t.owner_password)
    assert r.status_code == 429 and "Too many" in r.text


async def test_password_is_stored_as_argon2(make_tenant, owner_engine):
    t = await make_tenant()
    async with owner_engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT password_hash FROM users WHERE email = :e"), {"e": t.owner_email}
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$") and t.owner_password not in stored


async def test_removed_member_loses_console_access(browser, client, make_tenant):
    t = await make_tenant()
    await client.post(
        "/api/members",
        json={"email": "temp@example.com", "role": "member", "password": "temporary-password"},
        headers=t.admin_headers,
    )
    await _login(browser, "temp@example.com", "temporary-password")
    assert (await browser.get("/console/")).status_code == 200
    members = (await client.get("/api/members", headers=t.admin_headers)).json()
    temp = next(m for m in members if m["email"] == "temp@example.com")
    await client.delete(f"/api/members/{temp['id']}", headers=t.admin_headers)
    assert (await browser.get("/console/", follow_redirects=False)).status_code == 303
