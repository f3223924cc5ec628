"""The console's single sign-on page over HTTP, as a browser posts it: settings saved
through the same service as the API (mapping tables, a write-only secret, audited), bad
settings refused on the page with what was typed, "SSO only" for owners only and after a
confirmation page, and the SCIM token shown once and rotated only when confirmed."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.console_client import csrf, login, submit
from tests.platform.test_sessions import _audit

PASSWORD = "correct horse battery staple"
SECRET = "console-client-secret-for-tests"
PAGE = "/console/sso"


def _settings(domain: str, **overrides: Any) -> dict[str, Any]:
    return {
        "issuer": "https://idp.example.com",
        "client_id": "posturio-console",
        "client_secret": SECRET,
        "email_domains": f"{domain}, Sub.{domain}",
        "groups_claim": "roles",
        "role_group": ["posturio-admins", "posturio-reviewers", ""],
        "role": ["admin", "reviewer", "member"],
        "nav_group": ["finance-team", ""],
        "nav_groups": ["finance, audit", ""],
        "default_role": "member",
        "enabled": "yes",
        **overrides,
    }


async def _sso(client, tenant) -> dict[str, Any]:
    r = await client.get("/api/sso", headers=tenant.admin_headers)
    return r.json() if r.status_code == 200 else {}


async def _member(client, tenant, role: str) -> str:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    r = await client.post(
        "/api/members",
        json={"email": email, "role": role, "password": PASSWORD},
        headers=tenant.admin_headers,
    )
    assert r.status_code == 201, r.text
    return email


async def test_an_admin_sets_up_sso_with_mapping_tables_and_a_write_only_secret(
    browser, client, make_tenant
):
    t = await make_tenant()
    admin = await _member(client, t, "admin")
    assert (await login(browser, admin, PASSWORD)).status_code == 303
    home = await browser.get("/console/")
    assert 'href="/console/sso"' in home.text  # in an admin's menu
    empty = await browser.get(PAGE)
    assert empty.status_code == 200 and "Not set up" in empty.text
    assert re.search(r'id="redirect-uri">https?://[^<]+/sso/callback<', empty.text)

    r = await submit(browser, PAGE, PAGE, _settings("corp.example"))
    assert r.status_code == 303 and r.headers["location"] == PAGE
    saved = await _sso(client, t)
    assert saved["role_map"] == {"posturio-admins": "admin", "posturio-reviewers": "reviewer"}
    assert saved["group_map"] == {"finance-team": ["audit", "finance"]}
    assert saved["email_domains"] == ["corp.example", "sub.corp.example"]
    assert saved["groups_claim"] == "roles" and saved["has_client_secret"]
    assert not saved["sso_only"]

    shown = await browser.get(PAGE)
    assert "Single sign-on settings saved" in shown.text
    assert SECRET not in shown.text and "leave empty to keep" in shown.text
    assert 'value="posturio-reviewers"' in shown.text  # the table shows the mapping back

    # Saved again with the secret left empty: kept; one row removed: gone.
    again = _settings("corp.example", client_secret="", role_group=["posturio-admins", ""])
    again["role"] = ["admin", "member"]
    assert (await submit(browser, PAGE, PAGE, again)).status_code == 303
    saved = await _sso(client, t)
    assert saved["has_client_secret"] and saved["role_map"] == {"posturio-admins": "admin"}
    first, second = reversed(await _audit(client, t, "sso.configure"))
    assert first["actor"] == second["actor"] and first["actor"].startswith("user:")
    assert first["data"]["secret_changed"] and not second["data"]["secret_changed"]
    assert SECRET not in str(first)


async def test_bad_settings_are_refused_on_the_page_with_what_was_typed(
    browser, client, make_tenant
):
    t = await make_tenant()
    await login(browser, t.owner_email, t.owner_password)
    bad = await submit(browser, PAGE, PAGE, _settings("corp.example", issuer="http://idp.test"))
    assert bad.status_code == 400 and "issuer must be the provider" in bad.text
    assert 'value="http://idp.test"' in bad.text and SECRET not in bad.text
    assert await _sso(client, t) == {}  # nothing saved

    twice = _settings("corp.example", role_group=["staff", "staff"], role=["admin", "member"])
    r = await submit(browser, PAGE, PAGE, twice)
    assert r.status_code == 400 and "appears twice" in r.text
    r = await submit(browser, PAGE, PAGE, _settings("corp.example", role=["admin", "god", "x"]))
    assert r.status_code == 400 and "the settings do not fit" in r.text
    r = await submit(browser, PAGE, PAGE, _settings("not a domain"))
    assert r.status_code == 400 and "not an e-mail domain" in r.text
    assert await _sso(client, t) == {}


async def test_sso_only_is_an_owners_switch_behind_a_confirmation(browser, client, make_tenant):
    t = await make_tenant()
    admin = await _member(client, t, "admin")
    await login(browser, admin, PASSWORD)
    assert (await submit(browser, PAGE, PAGE, _settings("corp.example"))).status_code == 303
    page = await browser.get(PAGE)
    assert "Only an owner turns SSO only on or off" in page.text
    refused = await browser.post(
        f"{PAGE}/sso-only",
        data={"sso_only": "on", "confirm": "yes", "_csrf_token": csrf(page.text)},
    )
    assert refused.status_code == 403 and not (await _sso(client, t))["sso_only"]

    browser.cookies.clear()
    await login(browser, t.owner_email, t.owner_password)
    asked = await submit(browser, PAGE, f"{PAGE}/sso-only", {"sso_only": "on"})
    assert asked.status_code == 200 and "Turn on SSO only?" in asked.text
    assert not (await _sso(client, t))["sso_only"]  # nothing yet
    done = await browser.post(
        f"{PAGE}/sso-only",
        data={"sso_only": "on", "confirm": "yes", "_csrf_token": csrf(asked.text)},
    )
    assert done.status_code == 303 and (await _sso(client, t))["sso_only"]
    [audited] = [e for e in await _audit(client, t, "sso.configure") if e["data"]["to"]["sso_only"]]
    assert audited["actor"] == f"user:{t.owner_id}"
    assert audited["data"]["from"]["sso_only"] is False and not audited["data"]["secret_changed"]
    assert (await _sso(client, t))["has_client_secret"]  # the switch keeps the secret

    # Saving the settings form leaves SSO only as the owner set it.
    assert (await submit(browser, PAGE, PAGE, _settings("corp.example"))).status_code == 303
    assert (await _sso(client, t))["sso_only"]
    # An admin's password session ends now; the admin cannot turn it off either way.
    browser.cookies.clear()
    r = await login(browser, admin, PASSWORD)
    assert r.status_code == 403 and "single sign-on" in r.text


async def test_scim_token_is_shown_once_and_rotation_is_confirmed(browser, client, make_tenant):
    t = await make_tenant()
    await login(browser, t.owner_email, t.owner_password)
    page = await browser.get(PAGE)
    assert "No token yet" in page.text and "/scim/v2</code>" in page.text
    made = await submit(browser, PAGE, f"{PAGE}/scim-token", {})
    assert made.status_code == 201
    token = re.search(r'<pre id="scim-token">([^<]+)</pre>', made.text)
    assert token and 'data-copy="scim-token"' in made.text
    first = token.group(1)
    scim = {"Authorization": f"Bearer {first}"}
    assert (await client.get("/scim/v2/Users", headers=scim)).status_code == 200
    later = await browser.get(PAGE)
    assert first not in later.text and first.split("_")[1] in later.text  # the prefix only

    asked = await submit(browser, PAGE, f"{PAGE}/scim-token", {})
    assert asked.status_code == 200 and "Rotate the SCIM token?" in asked.text
    assert (await client.get("/scim/v2/Users", headers=scim)).status_code == 200  # still
    rotated = await browser.post(
        f"{PAGE}/scim-token", data={"confirm": "yes", "_csrf_token": csrf(asked.text)}
    )
    assert rotated.status_code == 201
    second = re.search(r'<pre id="scim-token">([^<]+)</pre>', rotated.text)
    assert second and second.group(1) != first
    assert (await client.get("/scim/v2/Users", headers=scim)).status_code == 401
    new = {"Authorization": f"Bearer {second.group(1)}"}
    assert (await client.get("/scim/v2/Users", headers=new)).status_code == 200
    [created] = await _audit(client, t, "scim.token_create")
    [rotation] = await _audit(client, t, "scim.token_rotate")
    assert created["actor"] == rotation["actor"] == f"user:{t.owner_id}"
    assert rotation["data"]["replaced"] == created["data"]["prefix"]


async def test_members_and_reviewers_do_not_reach_the_page(browser, client, make_tenant):
    t = await make_tenant()
    reviewer = await _member(client, t, "reviewer")
    await login(browser, reviewer, PASSWORD)
    assert 'href="/console/sso"' not in (await browser.get("/console/")).text
    assert (await browser.get(PAGE)).status_code == 403
    token = csrf((await browser.get("/console/keys")).text)
    r = await browser.post(f"{PAGE}/scim-token", data={"confirm": "yes", "_csrf_token": token})
    assert r.status_code == 403
    r = await browser.post(PAGE, data={**_settings("corp.example"), "_csrf_token": token})
    assert r.status_code == 403 and await _sso(client, t) == {}
