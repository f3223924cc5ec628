"""Console pages for keys, members, audit log and routes: who may see and do what, forms
with CSRF, secrets shown once, escaping, paging, and errors shown as messages."""

from __future__ import annotations

import re
import uuid

import msgspec
from redis.asyncio import Redis
from sqlalchemy import text

PASSWORD = "correct horse battery staple"
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello console"}]}


def _csrf(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def _login(client, email: str, password: str = PASSWORD) -> None:
    page = await client.get("/login")
    r = await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": _csrf(page.text)}
    )
    assert r.status_code == 303, r.text


async def _submit(client, page_url: str, action: str, data: dict):
    """What a browser does: load the page holding the form, post it with the page's token."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    return await client.post(action, data={**data, "_csrf_token": _csrf(page.text)})


async def _flash(client, location: str) -> str:
    page = await client.get(location)
    match = re.search(r'<p class="notice" role="status" id="flash">([^<]*)</p>', page.text)
    assert match, page.text
    return match.group(1)


async def _member(client, tenant, role: str) -> str:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    r = await client.post(
        "/api/members",
        json={"email": email, "role": role, "password": PASSWORD},
        headers=tenant.admin_headers,
    )
    assert r.status_code == 201, r.text
    return email


def _key_id(html: str, prefix: str) -> str:
    match = re.search(
        rf'<tr data-prefix="{re.escape(prefix)}">\s*<td><a href="/console/keys/([0-9a-f-]+)"', html
    )
    assert match, html
    return match.group(1)


async def _create_key(client, name: str, **extra) -> tuple[str, str, str]:
    """(secret, prefix, key id) of a key made through the console form."""
    r = await _submit(
        client, "/console/keys", "/console/keys", {"name": name, "scopes": "gateway", **extra}
    )
    assert r.status_code == 201, r.text
    secret = re.search(r'<pre id="secret">([^<]+)</pre>', r.text).group(1)
    prefix = re.search(r"Prefix ([\w-]+)", r.text).group(1)  # url-safe characters
    return secret, prefix, _key_id(r.text, prefix)


async def test_pages_by_role(browser, client, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    for url in ("/console/keys", "/console/members", "/console/audit", "/console/routes"):
        r = await browser.get(url)
        assert r.status_code == 200, (url, r.text)
        assert 'aria-current="page"' in r.text
    browser.cookies.clear()

    for role in ("member", "reviewer"):
        await _login(browser, await _member(client, t, role))
        assert (await browser.get("/console/keys")).status_code == 200
        for url in ("/console/members", "/console/audit", "/console/routes"):
            r = await browser.get(url)
            assert r.status_code == 403, (role, url)
            assert 'id="forbidden"' in r.text and "needs the admin role" in r.text
            assert r.headers["content-type"].startswith("text/html")
        # The menu offers only what the role may open.
        keys_page = (await browser.get("/console/keys")).text
        assert 'href="/console/members"' not in keys_page
        assert 'href="/console/audit"' not in keys_page
        browser.cookies.clear()

    assert (await browser.get("/console/keys")).headers["location"] == "/login"


async def test_key_secret_shown_once_then_revoked_and_refused(browser, client, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    secret, prefix, key_id = await _create_key(browser, "support-bot", tags="team-a, eu")
    assert secret.startswith("pst_") and prefix in secret

    listing = await browser.get("/console/keys")
    assert prefix in listing.text and "support-bot" in listing.text
    assert secret not in listing.text
    detail = await browser.get(f"/console/keys/{key_id}")
    assert secret not in detail.text and "eu, team-a" in detail.text

    headers = {"Authorization": f"Bearer {secret}"}
    ok = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert ok.status_code == 200, ok.text

    asked = await _submit(
        browser,
        f"/console/keys/{key_id}",
        f"/console/keys/{key_id}/revoke",
        {"reason": "left on a laptop"},
    )
    assert asked.status_code == 200 and 'id="confirm"' in asked.text  # nothing revoked yet
    assert 'name="reason" value="left on a laptop"' in asked.text
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=headers)).is_success
    r = await browser.post(
        f"/console/keys/{key_id}/revoke",
        data={"reason": "left on a laptop", "confirm": "yes", "_csrf_token": _csrf(asked.text)},
    )
    assert r.status_code == 303
    assert "revoked" in await _flash(browser, r.headers["location"])
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"

    revoked = await browser.get("/console/keys?status=revoked")
    assert prefix in revoked.text
    assert prefix not in (await browser.get("/console/keys?status=active")).text
    audit = await browser.get("/console/audit?action=key.revoke")
    assert "left on a laptop" in audit.text


async def test_key_form_errors_and_escaping(browser, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    r = await _submit(browser, "/console/keys", "/console/keys", {"name": "x", "scopes": []})
    assert r.status_code == 303 and "at least one scope" in await _flash(browser, "/console/keys")
    r = await _submit(
        browser,
        "/console/keys",
        "/console/keys",
        {"name": "x", "scopes": "gateway", "expires_in_days": "soon"},
    )
    assert "must be a number" in await _flash(browser, "/console/keys")

    await _create_key(browser, "<script>alert(1)</script>")
    listing = await browser.get("/console/keys")
    assert "<script>alert(1)</script>" not in listing.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text


async def test_admin_limits_and_extend(browser, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    _, _, key_id = await _create_key(browser, "limited", expires_in_days="10")
    detail = f"/console/keys/{key_id}"
    r = await _submit(
        browser,
        detail,
        f"{detail}/limits",
        {
            "allowed_models": "echo, gpt-4o",
            "rpm_limit": "5",
            "tpm_limit": "",
            "monthly_budget_usd": "12.5",
            "tags": "batch",
        },
    )
    assert r.status_code == 303 and "saved" in await _flash(browser, detail)
    page = (await browser.get(detail)).text
    assert "echo, gpt-4o" in page and "5 requests/min" in page and "$12.50" in page

    await _submit(browser, detail, f"{detail}/limits", {"rpm_limit": "0"})
    assert "invalid limits" in await _flash(browser, detail)
    assert "5 requests/min" in (await browser.get(detail)).text  # nothing of it was kept

    r = await _submit(browser, detail, f"{detail}/extend", {"days": "30"})
    assert r.status_code == 303 and "now expires" in await _flash(browser, detail)


async def test_member_sees_and_manages_only_own_keys(browser, client, make_tenant):
    t = await make_tenant()
    admin_keys = (await client.get("/api/keys", headers=t.admin_headers)).json()
    await _login(browser, await _member(client, t, "member"))
    listing = await browser.get("/console/keys")
    assert all(k["prefix"] not in listing.text for k in admin_keys)
    assert 'value="admin"' not in listing.text  # no admin scope to pick

    _, prefix, key_id = await _create_key(browser, "mine")
    assert prefix in (await browser.get("/console/keys")).text
    other = admin_keys[0]["id"]
    assert (await browser.get(f"/console/keys/{other}")).status_code == 404
    r = await _submit(
        browser, f"/console/keys/{key_id}", f"/console/keys/{other}/revoke", {"confirm": "yes"}
    )
    assert r.status_code == 303 and "not found" in await _flash(browser, "/console/keys")
    for action, data in (("extend", {"days": "5"}), ("limits", {"rpm_limit": "99"})):
        r = await _submit(
            browser, f"/console/keys/{key_id}", f"/console/keys/{key_id}/{action}", data
        )
        assert r.status_code == 403 and "needs the admin role" in r.text
    revoke = f"/console/keys/{key_id}/revoke"
    r = await _submit(browser, f"/console/keys/{key_id}", revoke, {"confirm": "yes"})
    assert r.status_code == 303


async def test_keys_filter_and_pages(browser, client, make_tenant):
    t = await make_tenant()
    for i in range(25):
        r = await client.post("/api/keys", json={"name": f"bulk-{i:02d}"}, headers=t.admin_headers)
        assert r.status_code == 201
    await _login(browser, t.owner_email)
    first = await browser.get("/console/keys")
    assert "bulk-24" in first.text and ">admin<" not in first.text
    older = re.search(r'<a class="next" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = await browser.get(older)
    assert ">admin<" in second.text and "bulk-24" not in second.text and "← Newer" in second.text
    found = await browser.get("/console/keys?q=BULK-07")
    assert "bulk-07" in found.text and "bulk-08" not in found.text
    assert "No keys match" in (await browser.get("/console/keys?q=100%25_x")).text


async def test_members_invite_change_remove_and_last_owner(browser, client, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    r = await _submit(
        browser, "/console/members", "/console/members", {"email": email, "role": "admin"}
    )
    assert r.status_code == 201 and f"Invitation for <strong>{email}</strong>" in r.text
    assert email in (await browser.get("/console/members")).text  # an open invitation
    r = await client.post(
        "/api/members", json={"email": email, "role": "admin"}, headers=t.admin_headers
    )
    assert r.status_code == 201
    members = (await client.get("/api/members", headers=t.admin_headers)).json()
    new = next(m for m in members if m["email"] == email)
    me = next(m for m in members if m["email"] == t.owner_email)
    assert new["role"] == "admin"

    r = await _submit(
        browser, "/console/members", f"/console/members/{new['id']}/role", {"role": "reviewer"}
    )
    assert f"{email} is now reviewer" in await _flash(browser, "/console/members")

    r = await _submit(
        browser, "/console/members", f"/console/members/{me['id']}/role", {"role": "admin"}
    )
    assert "at least one owner" in await _flash(browser, "/console/members")
    r = await _submit(
        browser, "/console/members", "/console/members", {"email": email, "role": "member"}
    )
    assert "already a member" in await _flash(browser, "/console/members")
    r = await _submit(browser, "/console/members", "/console/members", {"email": "nope"})
    assert "not a valid email" in await _flash(browser, "/console/members")

    remove = f"/console/members/{new['id']}/remove"
    r = await _submit(browser, "/console/members", remove, {"confirm": "yes"})
    assert "removed" in await _flash(browser, "/console/members")
    page = await browser.get("/console/members")
    assert email not in page.text and t.owner_email in page.text
    roles = {m["email"]: m["role"] for m in await _api_members(client, t)}
    assert roles == {t.owner_email: "owner"}


async def _api_members(client, t):
    return (await client.get("/api/members", headers=t.admin_headers)).json()


async def test_admin_cannot_grant_owner(browser, client, make_tenant):
    t = await make_tenant()
    await _login(browser, await _member(client, t, "admin"))
    page = await browser.get("/console/members")
    assert 'value="owner"' not in page.text and "only an owner changes an owner" in page.text
    r = await _submit(
        browser, "/console/members", "/console/members", {"email": "x@example.com", "role": "owner"}
    )
    assert r.status_code == 403 and "needs the owner role" in r.text
    assert "x@example.com" not in {m["email"] for m in await _api_members(client, t)}


async def test_audit_filter_pages_and_chain(browser, client, owner_engine, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    await _create_key(browser, "audited")
    page = await browser.get("/console/audit")
    assert "Chain verified" in page.text and 'id="chain"' in page.text
    assert t.owner_email in page.text  # actors are shown by email

    by_action = await browser.get("/console/audit?action=key.create")
    actions = re.findall(r'<td class="action"><code>([^<]+)</code>', by_action.text)
    assert actions and set(actions) == {"key.create"}
    by_actor = await browser.get(f"/console/audit?actor={t.owner_email}")
    rows = re.findall(r'<td class="actor">([^<]+)</td>', by_actor.text)
    # the fixture's two keys, the sign-in and the console's key
    assert rows == [t.owner_email] * 4
    older = await browser.get("/console/audit?before_seq=3")
    seqs = re.findall(r"<tr>\s*<td>(\d+)</td>", older.text)
    assert seqs == ["2", "1"]

    async with owner_engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(
            text("UPDATE audit_events SET actor = 'someone' WHERE tenant_id = :t AND seq = 2"),
            {"t": t.id},
        )
    broken = await browser.get("/console/audit")
    assert "Chain broken at event #2" in broken.text and 'role="alert"' in broken.text


async def test_routes_page(browser, client, settings, make_tenant):
    t = await make_tenant()
    alias = f"team-{uuid.uuid4().hex[:6]}"
    spec = {
        "deployments": [
            {"name": "first", "provider": "echo", "model": "echo", "timeout_s": 7},
            {"name": "second", "provider": "echo", "model": "echo", "priority": 1, "weight": 3},
        ]
    }
    put = await client.put(f"/api/routes/{alias}", json=spec, headers=t.admin_headers)
    assert put.status_code == 200, put.text
    first_id = put.json()["deployments"][0]["id"]
    redis = Redis.from_url(settings.redis_url)  # the app's client lives on another loop
    await redis.hset(
        f"posturio:breakers:{t.id}",
        first_id,
        msgspec.json.encode(
            {"deployment": "x", "failures": 4, "open_until": 4e9, "opened_at": 1.7e9}
        ),
    )
    await redis.aclose()
    await _login(browser, t.owner_email)
    page = await browser.get("/console/routes")
    assert f"<code>{alias}</code>" in page.text and "text-embedding-local" in page.text
    assert "built-in" in page.text and "7.0s" in page.text
    assert "cooling down until" in page.text and "4 failures" in page.text

    r = await _submit(
        browser, "/console/routes", "/console/routes", {"alias": "broken", "spec": "{nope"}
    )
    assert r.status_code == 400 and "not valid JSON" in r.text and "{nope" in r.text
    r = await _submit(
        browser,
        "/console/routes",
        "/console/routes",
        {"alias": "broken", "spec": '{"deployments": [{"name": "a", "provider": "x"}]}'},
    )
    assert r.status_code == 400 and "does not fit the schema" in r.text
    assert "broken" not in {x["alias"] for x in (await _routes(client, t))}

    edit = await browser.get(f"/console/routes?edit={alias}")
    assert "&#34;priority&#34;: 1" in edit.text or "&quot;priority&quot;: 1" in edit.text
    new = {"deployments": [{"name": "only", "provider": "echo", "model": "echo"}]}
    r = await _submit(
        browser,
        "/console/routes",
        "/console/routes",
        {"alias": "fresh", "spec": msgspec.json.encode(new).decode()},
    )
    assert r.status_code == 303 and "saved" in await _flash(browser, "/console/routes")
    reply = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "model": "fresh"},
        headers={"Authorization": f"Bearer {t.gateway_key}"},
    )
    assert reply.status_code == 200, reply.text

    r = await _submit(browser, "/console/routes", "/console/routes/delete", {"alias": alias})
    assert r.status_code == 200 and f"Delete route {alias}?" in r.text  # asked first
    r = await _submit(
        browser, "/console/routes", "/console/routes/delete", {"alias": alias, "confirm": "yes"}
    )
    assert r.status_code == 303 and "deleted" in await _flash(browser, "/console/routes")
    r = await _submit(
        browser, "/console/routes", "/console/routes/delete", {"alias": "echo", "confirm": "yes"}
    )
    assert "built-in aliases cannot be deleted" in await _flash(browser, "/console/routes")
    assert {x["alias"] for x in await _routes(client, t)} >= {"fresh", "echo"}
    assert alias not in {x["alias"] for x in await _routes(client, t)}


async def _routes(client, t):
    return (await client.get("/api/routes", headers=t.admin_headers)).json()


async def test_forms_need_the_csrf_token(browser, client, make_tenant):
    t = await make_tenant()
    await _login(browser, t.owner_email)
    await browser.get("/console/keys")
    for url, data in (
        ("/console/keys", {"name": "no-token", "scopes": "gateway"}),
        ("/console/members", {"email": "csrf@example.com", "role": "member"}),
        ("/console/routes/delete", {"alias": "echo"}),
    ):
        assert (await browser.post(url, data=data)).status_code == 403
        forged = await browser.post(url, data={**data, "_csrf_token": "forged"})
        assert forged.status_code == 403
    names = {k["name"] for k in (await client.get("/api/keys", headers=t.admin_headers)).json()}
    assert "no-token" not in names
