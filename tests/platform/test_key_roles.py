"""Keys carry a role through their scopes: a `review` key works the review queue as a
reviewer (confirm an item) and gets 403 on policy and members; an `admin` key acts as
before; a key below admin manages no one's keys."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.gateway.models import PolicyDecision
from posturio.platform import accounts, keys
from posturio.platform.db import tenant_session, utcnow
from posturio.platform.errors import Forbidden
from posturio.platform.keyauth import role_for_scopes, scopes_for_role
from posturio.platform.models import Role, Scope
from posturio.platform.principal import OPERATOR, Principal
from tests.conftest import TenantFixture


async def _member_key(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: TenantFixture,
    role: Role,
    scopes: list[str],
) -> tuple[uuid.UUID, dict[str, str]]:
    """A new member in `role` and a key they made: (membership id, its headers)."""
    async with tenant_session(sessionmaker, tenant.id) as session:
        owner = Principal(tenant.id, Role.owner, f"user:{tenant.owner_id}", user_id=tenant.owner_id)
        email = f"{role.value}-{uuid.uuid4().hex[:10]}@example.com"
        view = await accounts.add_member(session, owner, email, role, "a long enough password")
        me = Principal(
            tenant.id, role, f"user:{view.membership.user_id}", user_id=view.membership.user_id
        )
        made = await keys.create_key(session, me, name="automation", scopes=scopes)
    return view.membership.id, {"Authorization": f"Bearer {made.plaintext}"}


async def _open_item(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> str:
    """A blocked request waiting in the review queue (as the worker's drain writes it)."""
    async with tenant_session(sessionmaker, tenant_id) as session:
        item = PolicyDecision(
            tenant_id=tenant_id,
            request_id=f"req_{uuid.uuid4().hex}",
            direction="input",
            occurred_at=utcnow(),
            origin="policy",
            action="block",
            rule_id="block-secrets",
            shadow=False,
            policy_version=0,
            findings=[],
            snapshot="why does boto3 reject [CLOUD_CREDENTIAL_1]?",
        )
        session.add(item)
        await session.flush()
        return str(item.id)


def test_scopes_say_the_role():
    assert role_for_scopes(frozenset({"admin", "gateway"})) is Role.admin
    assert role_for_scopes(frozenset({"review"})) is Role.reviewer
    assert role_for_scopes(frozenset({"admin", "review"})) is Role.admin
    assert role_for_scopes(frozenset({"gateway"})) is None
    assert scopes_for_role(Role.reviewer) == {"gateway", "review"}
    assert scopes_for_role(Role.member) == {"gateway"}
    assert scopes_for_role(Role.admin) == {"gateway", "review", "admin"}


async def test_reviewer_key_confirms_a_review_item_but_cannot_edit_policy(
    client, make_tenant, sessionmaker
):
    t = await make_tenant()
    _, review = await _member_key(sessionmaker, t, Role.reviewer, ["review"])
    item = await _open_item(sessionmaker, t.id)

    queue = await client.get("/api/review-queue", headers=review)
    assert queue.status_code == 200 and [d["id"] for d in queue.json()] == [item]
    r = await client.post(
        f"/api/decisions/{item}/review", json={"status": "confirmed"}, headers=review
    )
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert (await client.get("/api/policy", headers=review)).status_code == 200  # reads it

    edit = await client.put(
        "/api/policy", json={"document": {"rules": []}, "comment": "x"}, headers=review
    )
    assert edit.status_code == 403 and "admin" in edit.json()["error"]["message"]
    assert (await client.get("/api/members", headers=review)).status_code == 403
    assert (await client.get("/api/audit", headers=review)).status_code == 403


async def test_admin_key_keeps_todays_behaviour(client, make_tenant):
    t = await make_tenant()
    assert (await client.get("/api/members", headers=t.admin_headers)).status_code == 200
    gateway_only = {"Authorization": f"Bearer {t.gateway_key}"}
    r = await client.get("/api/review-queue", headers=gateway_only)
    assert r.status_code == 403


async def test_review_scope_follows_the_creators_role(client, make_tenant, sessionmaker):
    t = await make_tenant()
    membership_id, review = await _member_key(sessionmaker, t, Role.reviewer, ["review"])
    assert (await client.get("/api/review-queue", headers=review)).status_code == 200
    r = await client.patch(
        f"/api/members/{membership_id}", json={"role": "member"}, headers=t.admin_headers
    )
    assert r.status_code == 200
    assert (await client.get("/api/review-queue", headers=review)).status_code == 403


async def test_members_cannot_mint_review_keys(make_tenant, sessionmaker):
    t = await make_tenant()
    async with tenant_session(sessionmaker, t.id) as session:
        view = await accounts.add_member(
            session,
            Principal(t.id, Role.owner, OPERATOR),
            f"m-{uuid.uuid4().hex[:8]}@example.com",
            Role.member,
            "a long enough password",
        )
        member = Principal(
            t.id, Role.member, f"user:{view.membership.user_id}", user_id=view.membership.user_id
        )
        with pytest.raises(Forbidden):
            await keys.create_key(session, member, name="x", scopes=[Scope.review.value])


async def test_reviewer_key_manages_no_ones_keys(client, make_tenant, sessionmaker):
    t = await make_tenant()
    _, review = await _member_key(sessionmaker, t, Role.reviewer, ["review"])
    async with tenant_session(sessionmaker, t.id) as session:
        operator = Principal(t.id, Role.owner, OPERATOR)
        made = await keys.create_key(session, operator, name="ops", scopes=["gateway"])
        operator_key = str(made.key.id)
    assert (await client.get("/api/keys", headers=review)).json() == []
    assert (await client.get(f"/api/keys/{operator_key}", headers=review)).status_code == 404
    r = await client.post(f"/api/keys/{operator_key}/revoke", headers=review)
    assert r.status_code == 404
