"""Single sign-on in Chromium against a running Posturio and a real OpenID Connect provider
process (`oidc-provider-mock`): an owner sets SSO up on the console page (mapping tables,
the redirect URI to register, a SCIM token shown once); a person signs in with "Sign in
with SSO" from /login, through the provider's page and back, as a member with the role
their IdP groups map to (just in time), and a role changed at the provider applies at the
next sign-in; a tenant switched to SSO only refuses the password form. The refusals that
need a forged answer (state, nonce, audience, expiry) stay HTTP-level in test_sso.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import stack_fixtures
from tests.stack_fixtures import Idp

idps = stack_fixtures.idps  # the providers, a fixture shared with other modules

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
SECRET = "browser-client-secret"


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "posturio.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_org() -> dict[str, str]:
    """A tenant with an owner and a member who has a password."""
    slug = f"sso-{uuid.uuid4().hex[:6]}"
    owner = f"owner@{slug}.example"
    member = f"pat@{slug}.example"
    cli("tenants", "create", slug, "--owner-email", owner, "--owner-password", PASSWORD)
    cli("members", "add", slug, member, "--role", "member", "--password", PASSWORD)
    return {"slug": slug, "domain": f"{slug}.example", "owner": owner, "member": member}


def password_sign_in(page: Any, server: str, email: str) -> None:
    page.goto(f"{server}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("main form[action='/login'] button[type=submit]")


def sso_sign_in(page: Any, server: str, idp: Idp, who: str, sub: str) -> None:
    """What the person does: "Sign in with SSO" on /login, then the provider's page."""
    page.goto(f"{server}/login")
    page.fill("#who", who)
    page.click("#sso-form button[type=submit]")
    # Posturio's page moves on to the provider, unless it refuses (said on /sso).
    page.wait_for_selector("input[name=sub], #sso-error")
    assert page.url.startswith(idp.issuer), page.inner_text("main")
    page.fill("input[name=sub]", sub)
    page.click("button:has-text('Authorize')")
    page.wait_for_url("**/console")


def configure(page: Any, server: str, idp: Idp, org: dict[str, str]) -> None:
    """The owner fills the console's SSO page: reviewers and admins by IdP group, the
    finance team's Navigator group."""
    page.goto(f"{server}/console/")
    page.click("nav.side a:text('Single sign-on')")
    page.wait_for_selector("#sso-settings")
    assert page.inner_text("#redirect-uri") == f"{server}/sso/callback"
    page.fill("#issuer", idp.issuer)
    page.fill("#client_id", f"posturio-{org['slug']}")
    page.fill("#client_secret", SECRET)
    page.fill("#email_domains", org["domain"])
    page.fill("#role-group-1", "posturio-reviewers")
    page.select_option("#role-1", "reviewer")
    page.fill("#role-group-2", "posturio-admins")
    page.select_option("#role-2", "admin")
    page.fill("#nav-group-1", "finance-team")
    page.fill("#nav-groups-1", "finance")
    page.click("#sso-settings button[type=submit]")
    page.wait_for_selector("#flash")
    assert "settings saved" in page.inner_text("#flash")
    assert page.inner_text("#sso-state") == "on"
    assert SECRET not in page.content() and page.input_value("#client_secret") == ""


@pytest.mark.timeout(240)
def test_owner_sets_up_sso_and_people_sign_in_with_their_idp_role(server, chromium, idps):
    idp = idps[0]
    org = make_org()
    owner = chromium.new_context()
    admin_page = owner.new_page()
    password_sign_in(admin_page, server, org["owner"])
    admin_page.wait_for_url("**/console")
    configure(admin_page, server, idp, org)
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin_page.screenshot(path=str(SHOTS / "console-sso.png"), full_page=True)

    # Provisioning: the SCIM token, shown once, works at the SCIM base URL shown.
    admin_page.click("#scim-token-form button")
    admin_page.wait_for_selector("#new-scim-token")
    token = admin_page.inner_text("#scim-token").strip()
    assert admin_page.locator("#new-scim-token button.copy").count() == 1
    scim_base = admin_page.inner_text("#scim-base")
    assert scim_base == f"{server}/scim/v2"
    users = httpx.get(f"{scim_base}/Users", headers={"Authorization": f"Bearer {token}"})
    assert users.status_code == 200 and users.json()["totalResults"] == 2
    admin_page.goto(f"{server}/console/sso")
    assert token not in admin_page.content()  # never shown again

    # A person of the company signs in through the provider: a reviewer, just in time.
    email = f"ana@{org['domain']}"
    idp.set_user("ana", email=email, groups=["posturio-reviewers", "finance-team"])
    person = chromium.new_context()
    page = person.new_page()
    sso_sign_in(page, server, idp, email, "ana")
    assert page.inner_text("#who") == email and page.inner_text("#role") == "reviewer"
    assert "Members" not in page.inner_text("nav.side")

    admin_page.goto(f"{server}/console/members")
    row = admin_page.locator(f"#members tr[data-email='{email}']")
    assert row.locator(".badge").first.inner_text() == "reviewer"
    assert row.locator("input[name=groups]").input_value() == "finance"

    # Promoted at the provider: an admin from the next sign-in on.
    idp.set_user("ana", email=email, groups=["posturio-admins"])
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    sso_sign_in(page, server, idp, org["slug"], "ana")  # by the organisation's name
    assert page.inner_text("#role") == "admin"
    assert "Members" in page.inner_text("nav.side")
    person.close()
    owner.close()


@pytest.mark.timeout(240)
def test_sso_only_tenant_refuses_the_password_form(server, chromium, idps):
    idp = idps[0]
    org = make_org()
    owner = chromium.new_context()
    admin_page = owner.new_page()
    password_sign_in(admin_page, server, org["owner"])
    admin_page.wait_for_url("**/console")
    configure(admin_page, server, idp, org)
    admin_page.click("#sso-only-form button")
    admin_page.wait_for_selector("#confirm")  # the server's confirmation page
    assert "Turn on SSO only?" in admin_page.inner_text("#confirm h1")
    admin_page.click("#confirm button[type=submit]")
    admin_page.wait_for_selector("#flash")
    assert admin_page.inner_text("#sso-only-state") == "on"

    member = chromium.new_context()
    page = member.new_page()
    password_sign_in(page, server, org["member"])
    page.wait_for_selector("p.error")
    assert "single sign-on" in page.inner_text("p.error")
    assert "/login" in page.url
    assert page.goto(f"{server}/console/").url.endswith("/login")  # not signed in

    # The same person through the provider is in, as the member they were.
    idp.set_user("pat", email=org["member"], groups=[])
    sso_sign_in(page, server, idp, org["member"], "pat")
    assert page.inner_text("#who") == org["member"] and page.inner_text("#role") == "member"
    member.close()
    owner.close()
