"""OpenID Connect single sign-on against real provider processes (`oidc-provider-mock`,
one per tenant): sign-in, just-in-time membership, group -> role and source-group
mapping re-read at each sign-in, SSO only, and the refusals (state, nonce, audience,
expiry, another tenant's provider, addresses outside the tenant's domains)."""

from __future__ import annotations

import html
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import text

from posturio.platform import sso
from posturio.platform.db import tenant_session
from posturio.platform.models import SsoConfig
from tests import stack_fixtures
from tests.platform.test_sessions import _audit, _csrf, _login
from tests.stack_fixtures import Idp

SECRET = "client-secret-for-tests"
idps = stack_fixtures.idps  # the providers, a fixture shared with other modules


@dataclass
class SsoTenant:
    tenant: Any
    idp: Idp
    domain: str
    client_id: str

    def email(self, name: str) -> str:
        return f"{name}-{uuid.uuid4().hex[:8]}@{self.domain}"


async def _sso_tenant(client, make_tenant, idp: Idp, **settings: Any) -> SsoTenant:
    t = await make_tenant()
    domain = f"corp-{uuid.uuid4().hex[:8]}.example"
    client_id = f"posturio-{t.slug}"
    body = {
        "issuer": idp.issuer,
        "client_id": client_id,
        "client_secret": SECRET,
        "email_domains": [domain],
        "groups_claim": "groups",
        "role_map": {"posturio-admins": "admin", "posturio-reviewers": "reviewer"},
        "group_map": {"finance-team": ["finance"], "hr-team": ["hr", "people"]},
        "default_role": "member",
        **settings,
    }
    r = await client.put("/api/sso", json=body, headers=t.admin_headers)
    assert r.status_code == 200, r.text
    return SsoTenant(t, idp, domain, client_id)


async def _start(browser, who: str) -> str:
    """The provider's authorization URL, from the page that moves the browser on."""
    r = await browser.get("/sso", params={"who": who})
    assert r.status_code == 200, r.text
    found = re.search(r'<a id="sso-continue" href="([^"]+)"', r.text)
    assert found and f'content="0;url={found.group(1)}"' in r.text, r.text
    return html.unescape(found.group(1))


async def _callback(browser, location: str):
    parts = urlsplit(location)
    return await browser.get(f"{parts.path}?{parts.query}")


async def _sso_sign_in(browser, st: SsoTenant, sub: str, who: str | None = None):
    location = st.idp.authorize(await _start(browser, who or st.tenant.slug), sub)
    return await _callback(browser, location)


def _with_param(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **params})))


async def _member(client, st: SsoTenant, email: str) -> dict[str, Any] | None:
    members = (await client.get("/api/members", headers=st.tenant.admin_headers)).json()
    return next((m for m in members if m["email"] == email), None)


async def test_first_sign_in_creates_the_member_with_mapped_role_and_groups(
    browser, client, make_tenant, idps
):
    st = await _sso_tenant(client, make_tenant, idps[0])
    email = st.email("ana")
    st.idp.set_user("ana", email=email, groups=["posturio-reviewers", "finance-team"])

    r = await _sso_sign_in(browser, st, "ana", who=email)  # found by the address's domain
    assert r.status_code == 303 and r.headers["location"] == "/console"
    home = await browser.get("/console/")
    assert home.status_code == 200 and email in home.text and "reviewer" in home.text

    member = await _member(client, st, email)
    assert member and member["role"] == "reviewer" and member["groups"] == ["finance"]
    [joined] = await _audit(client, st.tenant, "member.sso_join")
    assert joined["data"]["email"] == email
    [signed_in] = await _audit(client, st.tenant, "auth.sign_in")
    assert signed_in["data"]["method"] == "sso" and signed_in["data"]["client"]


async def test_role_and_groups_are_read_again_at_each_sign_in(browser, client, make_tenant, idps):
    st = await _sso_tenant(client, make_tenant, idps[0])
    email = st.email("bo")
    st.idp.set_user("bo", email=email, groups=["hr-team"])
    assert (await _sso_sign_in(browser, st, "bo")).status_code == 303
    assert (await _member(client, st, email))["role"] == "member"

    st.idp.set_user("bo", email=email, groups=["posturio-admins"])  # promoted at the IdP
    browser.cookies.clear()
    assert (await _sso_sign_in(browser, st, "bo")).status_code == 303
    member = await _member(client, st, email)
    assert member["role"] == "admin" and member["groups"] == []
    assert "Members" in (await browser.get("/console/")).text  # the admin's menu

    st.idp.set_user("bo", email=email, groups=[])  # left every group
    browser.cookies.clear()
    assert (await _sso_sign_in(browser, st, "bo")).status_code == 303
    assert (await _member(client, st, email))["role"] == "member"
    [change, _] = await _audit(client, st.tenant, "member.sso_update")
    assert change["data"]["role"] == {"from": "admin", "to": "member"}


async def test_no_mapped_group_and_no_default_role_gives_no_access(
    browser, client, make_tenant, idps
):
    st = await _sso_tenant(client, make_tenant, idps[0], default_role=None)
    email = st.email("cy")
    st.idp.set_user("cy", email=email, groups=["marketing"])
    r = await _sso_sign_in(browser, st, "cy")
    assert r.status_code == 403 and "give no access" in r.text
    assert await _member(client, st, email) is None


async def test_addresses_outside_the_tenants_domains_are_refused(
    browser, client, make_tenant, idps
):
    st = await _sso_tenant(client, make_tenant, idps[0])
    st.idp.set_user("eve", email="eve@elsewhere.example", groups=["posturio-admins"])
    r = await _sso_sign_in(browser, st, "eve")
    assert r.status_code == 403 and "may not sign in" in r.text
    [failed] = await _audit(client, st.tenant, "auth.sign_in_failed")
    assert failed["data"]["method"] == "sso" and failed["data"]["reason"] == "domain_not_allowed"


async def test_an_existing_account_is_not_attached_by_an_idp(browser, client, make_tenant, idps):
    other = await make_tenant()  # the owner's account exists, in another tenant
    st = await _sso_tenant(client, make_tenant, idps[0])
    domain = other.owner_email.rpartition("@")[2]
    await client.put(
        "/api/sso",
        json={"issuer": st.idp.issuer, "client_id": st.client_id, "email_domains": [domain]},
        headers=st.tenant.admin_headers,
    )
    st.idp.set_user("owner", email=other.owner_email, groups=["posturio-admins"])
    r = await _sso_sign_in(browser, st, "owner")
    assert r.status_code == 403 and "invites it once" in r.text
    assert await _member(client, st, other.owner_email) is None


async def test_sso_only_refuses_passwords_owners_break_glass(browser, client, make_tenant, idps):
    st = await _sso_tenant(client, make_tenant, idps[0])
    member_email = st.email("pat")
    r = await client.post(
        "/api/members",
        json={"email": member_email, "role": "member", "password": "a long enough password"},
        headers=st.tenant.admin_headers,
    )
    assert r.status_code == 201
    assert (await _login(browser, member_email, "a long enough password")).status_code == 303
    assert (await browser.get("/console/")).status_code == 200

    r = await client.put(
        "/api/sso",
        json={
            "issuer": st.idp.issuer,
            "client_id": st.client_id,
            "email_domains": [st.domain],
            "sso_only": True,
        },
        headers=st.tenant.admin_headers,
    )
    assert r.status_code == 200 and r.json()["has_client_secret"]  # the secret was kept
    # The member's password session ends, and the password no longer signs in.
    assert (await browser.get("/console/")).status_code == 303
    browser.cookies.clear()
    r = await _login(browser, member_email, "a long enough password")
    assert r.status_code == 403 and "single sign-on" in r.text
    # The same person through the provider is fine.
    st.idp.set_user("pat", email=member_email, groups=[])
    browser.cookies.clear()
    assert (await _sso_sign_in(browser, st, "pat")).status_code == 303
    # The owner's password still opens the tenant: break glass, audited.
    browser.cookies.clear()
    r = await _login(browser, st.tenant.owner_email, st.tenant.owner_password)
    assert r.status_code == 303
    assert (await browser.get("/console/")).status_code == 200
    [glass] = await _audit(client, st.tenant, "auth.break_glass")
    assert glass["actor"] == f"user:{st.tenant.owner_id}" and glass["data"]["method"] == "password"


async def test_a_wrong_or_reused_state_is_refused(browser, client, make_tenant, idps):
    st = await _sso_tenant(client, make_tenant, idps[0])
    email = st.email("dee")
    st.idp.set_user("dee", email=email, groups=[])
    location = st.idp.authorize(await _start(browser, st.tenant.slug), "dee")
    r = await _callback(browser, _with_param(location, state="forged-state"))
    assert r.status_code == 401
    assert await _member(client, st, email) is None
    # The sign-in in progress was spent by that attempt: the genuine answer is refused too.
    r = await _callback(browser, location)
    assert r.status_code == 400 and "no sign-in is in progress" in r.text
    [failed] = await _audit(client, st.tenant, "auth.sign_in_failed")
    assert failed["data"]["reason"] == "state_mismatch"


async def test_a_token_for_another_nonce_is_refused(browser, client, make_tenant, idps):
    st = await _sso_tenant(client, make_tenant, idps[0])
    email = st.email("nia")
    st.idp.set_user("nia", email=email, groups=[])
    url = _with_param(await _start(browser, st.tenant.slug), nonce="replayed-nonce")
    r = await _callback(browser, st.idp.authorize(url, "nia"))
    assert r.status_code == 401 and "did not check out" in r.text
    assert await _member(client, st, email) is None
    [failed] = await _audit(client, st.tenant, "auth.sign_in_failed")
    assert failed["data"]["reason"].startswith("id_token_invalid")


async def test_another_tenants_provider_cannot_sign_into_this_tenant(
    browser, client, make_tenant, idps
):
    ours = await _sso_tenant(client, make_tenant, idps[0])
    theirs = await _sso_tenant(client, make_tenant, idps[1])
    email = ours.email("mal")  # an address in our domain, vouched for by their provider
    theirs.idp.set_user("mal", email=email, groups=["posturio-admins"])
    # A sign-in started for our tenant, answered by their provider (same request, their host).
    ours_url = urlsplit(await _start(browser, ours.tenant.slug))
    forged = urlunsplit(ours_url._replace(netloc=urlsplit(theirs.idp.issuer).netloc))
    r = await _callback(browser, theirs.idp.authorize(forged, "mal"))
    assert r.status_code == 401
    assert await _member(client, ours, email) is None


async def _provider_token(idp: Idp, client_id: str, sub: str, nonce: str) -> dict[str, Any]:
    """An ID token straight from the provider, for `client_id` (the test is the client)."""
    redirect = "http://127.0.0.1/cb"
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": "openid email",
            "state": "s",
            "nonce": nonce,
        }
    )
    location = idp.authorize(f"{idp.issuer}/oauth2/authorize?{query}", sub)
    code = parse_qs(urlsplit(location).query)["code"][0]
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{idp.issuer}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(client_id, "any"),
        )
    assert r.status_code == 200, r.text
    return r.json()


def _config(idp: Idp, client_id: str) -> SsoConfig:
    return SsoConfig(
        tenant_id=uuid.uuid4(), issuer=idp.issuer, client_id=client_id, email_domains=["x.example"]
    )


async def test_id_token_checks_audience_expiry_and_signer(idps):
    a, b = idps
    providers = sso.Providers()
    provider_a = await providers.get(a.issuer)
    a.set_user("tok", email="tok@x.example")
    b.set_user("tok", email="tok@x.example")

    good = await _provider_token(a, "ours", "tok", "n1")
    claims = await sso.verify_id_token(providers, provider_a, _config(a, "ours"), good, "n1")
    assert claims["email"] == "tok@x.example"

    async def refused(token: dict[str, Any], config: SsoConfig, **kw: Any) -> None:
        with pytest.raises(sso.SsoError) as caught:
            await sso.verify_id_token(providers, provider_a, config, token, "n1", **kw)
        assert caught.value.reason.startswith("id_token_invalid")

    # Issued to another client (audience).
    await refused(await _provider_token(a, "someone-else", "tok", "n1"), _config(a, "ours"))
    # Expired: checked as of an hour and more after it was issued.
    late = int(time.time()) + 3600 + sso.LEEWAY_S + 5
    await refused(good, _config(a, "ours"), now=late)
    # Signed by another provider's key (claiming its own issuer).
    await refused(await _provider_token(b, "ours", "tok", "n1"), _config(a, "ours"))


async def test_settings_api_keeps_the_secret_encrypted(client, make_tenant, idps, owner_engine):
    st = await _sso_tenant(client, make_tenant, idps[0])
    got = await client.get("/api/sso", headers=st.tenant.admin_headers)
    assert got.status_code == 200
    body = got.json()
    assert body["has_client_secret"] and SECRET not in got.text
    assert body["redirect_uri"].endswith("/sso/callback")
    async with owner_engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT client_secret_encrypted FROM sso_configs WHERE tenant_id = :t"),
                {"t": st.tenant.id},
            )
        ).scalar_one()
    assert SECRET.encode() not in bytes(stored)
    [configured] = await _audit(client, st.tenant, "sso.configure")
    assert SECRET not in str(configured)

    bad = await client.put(
        "/api/sso",
        json={"issuer": "http://idp.example.com", "client_id": "x", "email_domains": ["a.example"]},
        headers=st.tenant.admin_headers,
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_issuer"
    gateway_only = {"Authorization": f"Bearer {st.tenant.gateway_key}"}
    assert (await client.get("/api/sso", headers=gateway_only)).status_code == 403


async def test_sso_session_stays_in_its_tenant(browser, client, make_tenant, idps, sessionmaker):
    st = await _sso_tenant(client, make_tenant, idps[0])
    other = await make_tenant("Elsewhere")
    email = st.email("two")
    st.idp.set_user("two", email=email, groups=[])
    assert (await _sso_sign_in(browser, st, "two")).status_code == 303
    # The same person is also a member elsewhere (added by that tenant's operator).
    async with tenant_session(sessionmaker, other.id) as session:
        from posturio.platform import accounts
        from posturio.platform.models import Role
        from posturio.platform.principal import OPERATOR, Principal

        await accounts.add_member(
            session, Principal(other.id, Role.owner, OPERATOR), email, Role.admin
        )
    home = await browser.get("/console/")
    assert "Elsewhere" not in home.text  # not offered
    r = await browser.post(
        "/console/tenant", data={"tenant_id": str(other.id), "_csrf_token": _csrf(home.text)}
    )
    assert r.status_code == 403
