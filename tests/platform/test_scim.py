"""SCIM 2.0 provisioning through the real API: users and groups as Okta and Entra ID send
them, deprovisioning that ends sessions and keys within the request, one tenant's token
blind to every other tenant, and bad input answered in SCIM's error shape."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from posturio.platform import keys, sso
from posturio.platform.db import tenant_session
from posturio.platform.models import Role, Scope, SsoConfig
from posturio.platform.principal import Principal
from posturio.platform.sessions import ConsoleSessionStore
from tests.conftest import TenantFixture
from tests.console_client import login

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MEDIA = "application/scim+json"
PASSWORD = "a long enough password"


def _address(who: str = "person") -> str:
    return f"{who}-{uuid.uuid4().hex[:10]}@example.com"


async def _token(client, tenant: TenantFixture) -> dict[str, str]:
    r = await client.post("/api/scim/token", headers=tenant.admin_headers)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _okta_user(email: str, **extra) -> dict:
    return {
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": "Ada Lovelace",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "active": True,
        **extra,
    }


def _patch(*operations: dict) -> dict:
    return {"schemas": [PATCH], "Operations": list(operations)}


def _assert_error(r, status: int, scim_type: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(MEDIA)
    body = r.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status) and body["detail"]
    if scim_type is not None:
        assert body["scimType"] == scim_type, body


async def _find(client, scim: dict[str, str], email: str) -> dict:
    r = await client.get(f'/scim/v2/Users?filter=userName eq "{email}"', headers=scim)
    assert r.status_code == 200, r.text
    [user] = r.json()["Resources"]
    return user


@dataclass
class Person:
    """A member with a password, a console session and a personal admin key."""

    email: str
    scim_id: str
    key_headers: dict[str, str]
    session_id: str


async def _person(client, browser, sessionmaker, tenant: TenantFixture, scim) -> Person:
    email = _address("admin")
    r = await client.post(
        "/api/members",
        json={"email": email, "role": "admin", "password": PASSWORD},
        headers=tenant.admin_headers,
    )
    assert r.status_code == 201, r.text
    user_id = uuid.UUID(r.json()["user_id"])
    async with tenant_session(sessionmaker, tenant.id) as session:
        me = Principal(tenant.id, Role.admin, f"user:{user_id}", user_id=user_id)
        made = await keys.create_key(
            session, me, name="mine", scopes=[Scope.admin.value, Scope.gateway.value]
        )
    key_headers = {"Authorization": f"Bearer {made.plaintext}"}
    # The key is in the server's cache and the person is signed in to the console.
    assert (await client.get("/api/tenant", headers=key_headers)).status_code == 200
    assert (await login(browser, email, PASSWORD)).status_code == 303
    assert (await browser.get("/console/")).status_code == 200
    session_id = browser.cookies.get("posturio_session", domain="testserver.local")
    assert session_id
    return Person(email, (await _find(client, scim, email))["id"], key_headers, session_id)


async def _cut_off(client, browser, app, settings, person: Person) -> None:
    """What a deprovisioned person finds right after the SCIM call returned."""
    r = await client.get("/api/tenant", headers=person.key_headers)
    assert r.status_code == 401, r.text
    # The session is gone from the store (the app's Redis client lives on another loop).
    redis = Redis.from_url(settings.redis_url)
    try:
        store = ConsoleSessionStore(redis, namespace=app.stores.get("sessions").namespace)
        assert await store.get(person.session_id) is None
    finally:
        await redis.aclose()
    r = await browser.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/login"


async def test_token_is_shown_once_rotated_and_audited(client, make_tenant):
    t = await make_tenant()
    assert (await client.get("/api/scim/token", headers=t.admin_headers)).status_code == 404
    first = await _token(client, t)
    r = await client.get("/api/scim/token", headers=t.admin_headers)
    assert r.status_code == 200
    info = r.json()
    assert "token" not in info and info["base_url"].endswith("/scim/v2")
    r = await client.get("/scim/v2/ServiceProviderConfig", headers=first)
    assert r.status_code == 200 and r.headers["content-type"].startswith(MEDIA)
    assert r.json()["patch"]["supported"] is True

    second = await _token(client, t)
    _assert_error(await client.get("/scim/v2/Users", headers=first), 401)
    assert (await client.get("/scim/v2/Users", headers=second)).status_code == 200
    assert (await client.delete("/api/scim/token", headers=t.admin_headers)).status_code == 204
    _assert_error(await client.get("/scim/v2/Users", headers=second), 401)

    r = await client.get("/api/audit?action=scim.token_rotate", headers=t.admin_headers)
    [rotated] = r.json()["items"]
    assert rotated["data"]["replaced"] == info["prefix"]  # the first token's prefix


async def test_discovery_endpoints(client, make_tenant):
    scim = await _token(client, await make_tenant())
    r = await client.get("/scim/v2/ResourceTypes", headers=scim)
    assert r.status_code == 200
    body = r.json()
    assert body["schemas"] == [LIST]
    assert {t["endpoint"] for t in body["Resources"]} == {"/Users", "/Groups"}
    r = await client.get("/scim/v2/Schemas", headers=scim)
    assert {s["id"] for s in r.json()["Resources"]} == {USER, GROUP}
    r = await client.get(f"/scim/v2/Schemas/{USER}", headers=scim)
    names = {a["name"] for a in r.json()["attributes"]}
    assert {"userName", "active", "emails", "name"} <= names


async def test_create_filter_get_and_page(client, make_tenant):
    t = await make_tenant()
    scim = await _token(client, t)
    email = _address("ada")
    r = await client.post("/scim/v2/Users", json=_okta_user(email), headers=scim)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith(MEDIA)
    user = r.json()
    assert user["schemas"] == [USER] and user["userName"] == email and user["active"] is True
    assert user["name"] == {"givenName": "Ada", "familyName": "Lovelace"}
    assert user["externalId"] == "00u1abcd" and "locale" not in user
    assert user["meta"]["resourceType"] == "User"
    assert r.headers["location"] == user["meta"]["location"]
    assert user["meta"]["location"].endswith(f"/scim/v2/Users/{user['id']}")

    # Okta's and Entra's first question: is this userName known? (case-insensitive)
    found = await _find(client, scim, email.upper())
    assert found["id"] == user["id"]
    r = await client.get('/scim/v2/Users?filter=userName eq "nobody@example.com"', headers=scim)
    body = r.json()
    assert body["schemas"] == [LIST] and body["totalResults"] == 0 and body["Resources"] == []
    r = await client.get(f"/scim/v2/Users/{user['id']}", headers=scim)
    assert r.status_code == 200 and r.json()["userName"] == email

    # The account exists, signs in with SSO (no password) and is a member.
    members = (await client.get("/api/members", headers=t.admin_headers)).json()
    assert {m["email"]: m["role"] for m in members}[email] == "member"

    for _ in range(2):
        await client.post("/scim/v2/Users", json=_okta_user(_address()), headers=scim)
    r = await client.get("/scim/v2/Users?startIndex=2&count=2", headers=scim)
    page = r.json()
    assert page["totalResults"] == 4  # the owner and three provisioned
    assert page["startIndex"] == 2 and page["itemsPerPage"] == 2 and len(page["Resources"]) == 2
    everyone = (await client.get("/scim/v2/Users", headers=scim)).json()["Resources"]
    assert [u["id"] for u in everyone[1:3]] == [u["id"] for u in page["Resources"]]

    _assert_error(
        await client.post("/scim/v2/Users", json=_okta_user(email), headers=scim),
        409,
        "uniqueness",
    )


async def test_okta_deactivation_ends_sessions_and_keys_at_once(
    client, browser, app, settings, make_tenant, sessionmaker
):
    t = await make_tenant()
    scim = await _token(client, t)
    person = await _person(client, browser, sessionmaker, t, scim)

    r = await client.patch(
        f"/scim/v2/Users/{person.scim_id}",
        json=_patch({"op": "replace", "value": {"active": False}}),
        headers=scim,
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    await _cut_off(client, browser, app, settings, person)
    # An inactive member cannot sign in to the tenant.
    assert (await login(browser, person.email, PASSWORD)).status_code == 401
    r = await client.get("/api/audit?action=member.scim_deactivate", headers=t.admin_headers)
    [event] = r.json()["items"]
    assert len(event["data"]["revoked_keys"]) == 1

    # Reactivation restores the membership (not the revoked key).
    r = await client.patch(
        f"/scim/v2/Users/{person.scim_id}",
        json=_patch({"op": "replace", "value": {"active": True}}),
        headers=scim,
    )
    assert r.status_code == 200 and r.json()["active"] is True
    assert (await login(browser, person.email, PASSWORD)).status_code == 303
    assert (await browser.get("/console/")).status_code == 200
    assert (await client.get("/api/tenant", headers=person.key_headers)).status_code == 401


async def test_entra_patches_and_deactivation(
    client, browser, app, settings, make_tenant, sessionmaker
):
    t = await make_tenant()
    scim = await _token(client, t)
    person = await _person(client, browser, sessionmaker, t, scim)
    work = f"ada.work-{uuid.uuid4().hex[:6]}@example.com"
    r = await client.patch(
        f"/scim/v2/Users/{person.scim_id}",
        json=_patch(
            {"op": "Add", "path": "name.givenName", "value": "Ada"},
            {"op": "Replace", "path": "name.familyName", "value": "King"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": work},
            {"op": "Add", "path": "externalId", "value": "entra-object-id"},
            {
                "op": "Add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                "value": "R&D",
            },
            {"op": "Replace", "path": "displayName", "value": "Ada King"},
        ),
        headers=scim,
    )
    assert r.status_code == 200, r.text
    user = r.json()
    assert user["name"] == {"givenName": "Ada", "familyName": "King"}
    assert user["emails"] == [{"type": "work", "value": work}]
    assert user["displayName"] == "Ada King" and user["externalId"] == "entra-object-id"
    assert user["userName"] == person.email  # the account's address is not the tenant's
    r = await client.get('/scim/v2/Users?filter=externalId eq "entra-object-id"', headers=scim)
    assert r.json()["totalResults"] == 1

    r = await client.patch(
        f"/scim/v2/Users/{person.scim_id}",
        json=_patch({"op": "Replace", "path": "active", "value": "False"}),
        headers=scim,
    )
    assert r.status_code == 200 and r.json()["active"] is False
    await _cut_off(client, browser, app, settings, person)

    r = await client.patch(
        f"/scim/v2/Users/{person.scim_id}",
        json=_patch({"op": "Replace", "path": "active", "value": "True"}),
        headers=scim,
    )
    assert r.status_code == 200 and r.json()["active"] is True
    assert r.json()["name"]["familyName"] == "King"  # the profile survives


async def test_put_replaces_and_delete_removes(
    client, browser, app, settings, make_tenant, sessionmaker
):
    t = await make_tenant()
    scim = await _token(client, t)
    person = await _person(client, browser, sessionmaker, t, scim)
    body = {"schemas": [USER], "userName": person.email, "active": True, "name": {"givenName": "A"}}
    r = await client.put(f"/scim/v2/Users/{person.scim_id}", json=body, headers=scim)
    assert r.status_code == 200 and r.json()["name"] == {"givenName": "A"}
    moved = {**body, "userName": _address("other")}
    _assert_error(
        await client.put(f"/scim/v2/Users/{person.scim_id}", json=moved, headers=scim),
        400,
        "mutability",
    )

    r = await client.delete(f"/scim/v2/Users/{person.scim_id}", headers=scim)
    assert r.status_code == 204, r.text
    await _cut_off(client, browser, app, settings, person)
    _assert_error(await client.get(f"/scim/v2/Users/{person.scim_id}", headers=scim), 404)
    emails = {
        m["email"] for m in (await client.get("/api/members", headers=t.admin_headers)).json()
    }
    assert person.email not in emails


async def test_an_inactive_member_cannot_sign_in_with_sso(client, make_tenant, sessionmaker):
    t = await make_tenant()
    r = await client.put(
        "/api/sso",
        json={
            "issuer": "https://idp.example.com",
            "client_id": "p",
            "email_domains": ["example.com"],
        },
        headers=t.admin_headers,
    )
    assert r.status_code == 200, r.text
    scim = await _token(client, t)
    email = _address()
    user = (await client.post("/scim/v2/Users", json=_okta_user(email), headers=scim)).json()
    off = _patch({"op": "replace", "value": {"active": False}})
    assert (await client.patch(f"/scim/v2/Users/{user['id']}", json=off, headers=scim)).is_success
    async with tenant_session(sessionmaker, t.id) as session:
        config = await session.get(SsoConfig, t.id)
        assert config is not None
        with pytest.raises(sso.SsoError) as refused:
            await sso.admit(session, config, sso.Identity(email, [], "sub-1"))
    assert refused.value.reason == "member_inactive"


async def test_the_last_owner_is_not_deprovisioned(client, make_tenant):
    t = await make_tenant()
    scim = await _token(client, t)
    owner = await _find(client, scim, t.owner_email)
    r = await client.patch(
        f"/scim/v2/Users/{owner['id']}",
        json=_patch({"op": "replace", "path": "active", "value": False}),
        headers=scim,
    )
    _assert_error(r, 409)
    _assert_error(await client.delete(f"/scim/v2/Users/{owner['id']}", headers=scim), 409)
    assert (await _find(client, scim, t.owner_email))["active"] is True


async def test_an_account_of_another_tenant_is_never_attached(client, make_tenant):
    elsewhere = await make_tenant()
    t = await make_tenant()
    scim = await _token(client, t)
    r = await client.post("/scim/v2/Users", json=_okta_user(elsewhere.owner_email), headers=scim)
    _assert_error(r, 409, "uniqueness")
    assert "invite" in r.json()["detail"]
    emails = {
        m["email"] for m in (await client.get("/api/members", headers=t.admin_headers)).json()
    }
    assert elsewhere.owner_email not in emails


async def _member_state(client, tenant: TenantFixture, email: str) -> tuple[str, list[str]]:
    members = (await client.get("/api/members", headers=tenant.admin_headers)).json()
    member = next(m for m in members if m["email"] == email)
    return member["role"], member["groups"]


async def test_groups_set_navigator_groups(client, make_tenant):
    t = await make_tenant()
    scim = await _token(client, t)
    email = _address()
    user = (await client.post("/scim/v2/Users", json=_okta_user(email), headers=scim)).json()

    r = await client.post(
        "/scim/v2/Groups",
        json={"schemas": [GROUP], "displayName": "engineering", "members": [{"value": user["id"]}]},
        headers=scim,
    )
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["schemas"] == [GROUP] and group["meta"]["resourceType"] == "Group"
    assert group["members"] == [
        {"value": user["id"], "display": email, "$ref": user["meta"]["location"]}
    ]
    # Without single sign-on the group's name is the Navigator group; the role stays.
    assert await _member_state(client, t, email) == ("member", ["engineering"])

    r = await client.get('/scim/v2/Groups?filter=displayName eq "Engineering"', headers=scim)
    assert r.json()["totalResults"] == 1 and r.json()["Resources"][0]["id"] == group["id"]
    r = await client.get(
        '/scim/v2/Groups?filter=displayName eq "engineering"&excludedAttributes=members',
        headers=scim,
    )
    assert "members" not in r.json()["Resources"][0]
    dup = {"schemas": [GROUP], "displayName": "Engineering"}
    _assert_error(await client.post("/scim/v2/Groups", json=dup, headers=scim), 409, "uniqueness")

    # Okta removes one member by filter.
    r = await client.patch(
        f"/scim/v2/Groups/{group['id']}",
        json=_patch({"op": "remove", "path": f'members[value eq "{user["id"]}"]'}),
        headers=scim,
    )
    assert r.status_code == 200 and r.json()["members"] == []
    assert await _member_state(client, t, email) == ("member", [])

    assert (await client.delete(f"/scim/v2/Groups/{group['id']}", headers=scim)).status_code == 204
    _assert_error(await client.get(f"/scim/v2/Groups/{group['id']}", headers=scim), 404)


async def test_groups_follow_the_sso_mapping(client, make_tenant):
    t = await make_tenant()
    r = await client.put(
        "/api/sso",
        json={
            "issuer": "https://idp.example.com",
            "client_id": "posturio",
            "email_domains": ["example.com"],
            "role_map": {"Posturio Reviewers": "reviewer"},
            "group_map": {"Engineering": ["eng-docs", "handbook"]},
        },
        headers=t.admin_headers,
    )
    assert r.status_code == 200, r.text
    scim = await _token(client, t)
    email = _address()
    user = (await client.post("/scim/v2/Users", json=_okta_user(email), headers=scim)).json()
    groups = {}
    for name in ("Posturio Reviewers", "Engineering"):
        r = await client.post(
            "/scim/v2/Groups", json={"schemas": [GROUP], "displayName": name}, headers=scim
        )
        groups[name] = r.json()["id"]

    # Entra adds members with a capitalised op and a list of values.
    for name in groups:
        r = await client.patch(
            f"/scim/v2/Groups/{groups[name]}",
            json=_patch({"op": "Add", "path": "members", "value": [{"value": user["id"]}]}),
            headers=scim,
        )
        assert r.status_code == 200, r.text
    assert await _member_state(client, t, email) == ("reviewer", ["eng-docs", "handbook"])

    r = await client.patch(
        f"/scim/v2/Groups/{groups['Posturio Reviewers']}",
        json=_patch({"op": "Remove", "path": "members", "value": [{"value": user["id"]}]}),
        headers=scim,
    )
    assert r.status_code == 200
    assert await _member_state(client, t, email) == ("member", ["eng-docs", "handbook"])

    # Okta renames a group: its members are mapped again (the new name maps to nothing).
    r = await client.patch(
        f"/scim/v2/Groups/{groups['Engineering']}",
        json=_patch(
            {"op": "replace", "value": {"id": groups["Engineering"], "displayName": "R&D"}}
        ),
        headers=scim,
    )
    assert r.status_code == 200 and r.json()["displayName"] == "R&D"
    assert await _member_state(client, t, email) == ("member", [])
    r = await client.get("/api/audit?action=member.scim_update", headers=t.admin_headers)
    assert len(r.json()["items"]) == 4


async def test_another_tenants_token_sees_nothing(client, make_tenant):
    ours, theirs = await make_tenant(), await make_tenant()
    our_scim, their_scim = await _token(client, ours), await _token(client, theirs)
    email = _address()
    user = (await client.post("/scim/v2/Users", json=_okta_user(email), headers=our_scim)).json()
    group = (
        await client.post(
            "/scim/v2/Groups",
            json={"displayName": "ours", "members": [{"value": user["id"]}]},
            headers=our_scim,
        )
    ).json()

    path = f"/scim/v2/Users/{user['id']}"
    _assert_error(await client.get(path, headers=their_scim), 404)
    off = _patch({"op": "replace", "value": {"active": False}})
    _assert_error(await client.patch(path, json=off, headers=their_scim), 404)
    _assert_error(await client.put(path, json=_okta_user(email), headers=their_scim), 404)
    _assert_error(await client.delete(path, headers=their_scim), 404)
    r = await client.get(f'/scim/v2/Users?filter=userName eq "{email}"', headers=their_scim)
    assert r.json()["totalResults"] == 0
    gpath = f"/scim/v2/Groups/{group['id']}"
    _assert_error(await client.get(gpath, headers=their_scim), 404)
    _assert_error(await client.delete(gpath, headers=their_scim), 404)
    # Nor can their group take our user in.
    r = await client.post(
        "/scim/v2/Groups",
        json={"displayName": "theirs", "members": [{"value": user["id"]}]},
        headers=their_scim,
    )
    _assert_error(r, 400, "invalidValue")

    assert (await _find(client, our_scim, email))["active"] is True
    r = await client.get(gpath, headers=our_scim)
    assert r.status_code == 200 and len(r.json()["members"]) == 1


async def test_bad_input_gets_scim_errors(client, make_tenant):
    t = await make_tenant()
    scim = await _token(client, t)
    _assert_error(await client.get("/scim/v2/Users"), 401)
    _assert_error(await client.get("/scim/v2/Users", headers=t.admin_headers), 401)
    _assert_error(
        await client.get("/scim/v2/Users", headers={"Authorization": "Bearer pscim_x_y"}), 401
    )
    user = (await client.post("/scim/v2/Users", json=_okta_user(_address()), headers=scim)).json()
    path = f"/scim/v2/Users/{user['id']}"
    cases = [
        (client.post("/scim/v2/Users", content=b"{not json", headers=scim), 400, "invalidSyntax"),
        (client.post("/scim/v2/Users", json=[1], headers=scim), 400, "invalidSyntax"),
        (client.post("/scim/v2/Users", json={"active": True}, headers=scim), 400, "invalidValue"),
        (
            client.post("/scim/v2/Users", json=_okta_user("not an address"), headers=scim),
            400,
            "invalidValue",
        ),
        (
            client.post(
                "/scim/v2/Users", json=_okta_user(_address(), active="maybe"), headers=scim
            ),
            400,
            "invalidValue",
        ),
        (client.get('/scim/v2/Users?filter=userName co "a"', headers=scim), 400, "invalidFilter"),
        (client.get('/scim/v2/Users?filter=title eq "a"', headers=scim), 400, "invalidFilter"),
        (client.get("/scim/v2/Users?count=many", headers=scim), 400, "invalidValue"),
        (client.patch(path, json={"Operations": []}, headers=scim), 400, "invalidSyntax"),
        (
            client.patch(path, json=_patch({"op": "move", "path": "active"}), headers=scim),
            400,
            "invalidSyntax",
        ),
        (
            client.patch(path, json=_patch({"op": "remove", "path": "userName"}), headers=scim),
            400,
            "mutability",
        ),
        (client.patch(path, json=_patch({"op": "remove"}), headers=scim), 400, "noTarget"),
        (
            client.patch(path, json=_patch({"op": "replace", "path": "a[["}), headers=scim),
            400,
            "invalidPath",
        ),
        (
            client.post(
                "/scim/v2/Groups",
                json={"displayName": "g", "members": [{"value": str(uuid.uuid4())}]},
                headers=scim,
            ),
            400,
            "invalidValue",
        ),
        (client.post("/scim/v2/Groups", json={"members": []}, headers=scim), 400, "invalidValue"),
        (client.get("/scim/v2/Users/not-an-id", headers=scim), 404, None),
        (client.get("/scim/v2/Groups/not-an-id", headers=scim), 404, None),
    ]
    for call, status, scim_type in cases:
        _assert_error(await call, status, scim_type)
    # Nothing was changed by the refused calls.
    assert (await client.get(path, headers=scim)).json()["active"] is True


async def test_the_openapi_document_lists_the_scim_operations(client):
    """/schema documents SCIM's paths, methods, content type, token and error shape (the
    attributes are RFC 7643's, served at /Schemas); the rendered docs page still loads."""
    doc = (await client.get("/schema/openapi.json")).json()
    paths = {p: item for p, item in doc["paths"].items() if p.startswith("/scim/v2/")}
    assert set(paths) == {
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/ResourceTypes",
        "/scim/v2/ResourceTypes/{type_name}",
        "/scim/v2/Schemas",
        "/scim/v2/Schemas/{schema_urn}",
        "/scim/v2/Users",
        "/scim/v2/Users/{user_id}",
        "/scim/v2/Groups",
        "/scim/v2/Groups/{group_id}",
    }
    assert set(paths["/scim/v2/Users/{user_id}"]) >= {"get", "put", "patch", "delete"}
    create = paths["/scim/v2/Users"]["post"]
    assert list(create["responses"]["201"]["content"]) == [MEDIA]
    assert create["security"] == [{"scimToken": []}]
    error = create["responses"]["409"]["content"][MEDIA]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"schemas", "status", "detail", "scimType"} <= set(
        doc["components"]["schemas"][error]["properties"]
    )
    assert doc["components"]["securitySchemes"]["scimToken"]["scheme"] == "bearer"
    page = await client.get("/schema")
    assert page.status_code == 200 and "swagger" in page.text.lower()
