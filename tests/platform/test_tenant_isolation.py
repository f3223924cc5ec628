"""Tenant A cannot see or touch tenant B: through the API (404) and in SQL (RLS)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from posturio.platform.db import bind_tenant


async def _ids(client, tenant):
    members = (await client.get("/api/members", headers=tenant.admin_headers)).json()
    keys = (await client.get("/api/keys", headers=tenant.admin_headers)).json()
    return members[0]["id"], keys[0]["id"]


async def test_api_hides_other_tenants_resources(client, make_tenant):
    a, b = await make_tenant(), await make_tenant()
    b_member, b_key = await _ids(client, b)

    # Listing shows only A's own rows.
    members = (await client.get("/api/members", headers=a.admin_headers)).json()
    assert {m["email"] for m in members} == {a.owner_email}
    key_ids = {k["id"] for k in (await client.get("/api/keys", headers=a.admin_headers)).json()}
    assert b_key not in key_ids and len(key_ids) == 2

    # Reading, changing and deleting B's rows with A's key: 404, and nothing changes.
    assert (await client.get(f"/api/keys/{b_key}", headers=a.admin_headers)).status_code == 404
    r = await client.post(f"/api/keys/{b_key}/revoke", headers=a.admin_headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await client.patch(
        f"/api/members/{b_member}", json={"role": "member"}, headers=a.admin_headers
    )
    assert r.status_code == 404
    assert (
        await client.delete(f"/api/members/{b_member}", headers=a.admin_headers)
    ).status_code == 404

    b_key_now = (await client.get(f"/api/keys/{b_key}", headers=b.admin_headers)).json()
    assert b_key_now["status"] == "active"
    b_members = (await client.get("/api/members", headers=b.admin_headers)).json()
    assert b_members[0]["role"] == "owner"

    # B's audit log is not A's: A sees only its own events.
    a_audit = (await client.get("/api/audit?limit=500", headers=a.admin_headers)).json()["items"]
    b_audit = (await client.get("/api/audit?limit=500", headers=b.admin_headers)).json()["items"]
    assert a_audit and b_audit
    assert not {e["id"] for e in a_audit} & {e["id"] for e in b_audit}
    assert all(b_member not in (e["target_id"] or "") for e in a_audit)


async def test_unknown_and_malformed_ids_are_404(client, make_tenant):
    a = await make_tenant()
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        r = await client.get(f"/api/keys/{bad}", headers=a.admin_headers)
        assert r.status_code == 404, r.text


@pytest.mark.parametrize("table", ["memberships", "api_keys", "audit_events"])
async def test_rls_hides_other_tenants_rows_in_raw_sql(sessionmaker, make_tenant, table):
    a, b = await make_tenant(), await make_tenant()
    async with sessionmaker() as session:
        bind_tenant(session, a.id)
        async with session.begin():
            tenants = {r[0] for r in await session.execute(text(f"SELECT tenant_id FROM {table}"))}
    assert tenants == {a.id}
    assert b.id not in tenants

    # With no tenant context at all, the app role sees nothing.
    async with sessionmaker() as session, session.begin():
        count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
    assert count == 0


async def test_rls_refuses_writing_into_another_tenant(sessionmaker, make_tenant):
    a, b = await make_tenant(), await make_tenant()
    async with sessionmaker() as session:
        bind_tenant(session, a.id)
        with pytest.raises(DBAPIError, match="row-level security"):
            async with session.begin():
                await session.execute(
                    text(
                        "INSERT INTO memberships (id, tenant_id, user_id, role, created_at) "
                        "VALUES (:id, :t, :u, 'owner', now())"
                    ),
                    {"id": uuid.uuid4(), "t": b.id, "u": a.owner_id},
                )
    # UPDATE of B's rows under A's context touches nothing.
    async with sessionmaker() as session:
        bind_tenant(session, a.id)
        async with session.begin():
            result = await session.execute(
                text("UPDATE api_keys SET name = 'pwned' WHERE tenant_id = :t"), {"t": b.id}
            )
    assert result.rowcount == 0


async def test_app_role_cannot_bypass_rls(app_engine):
    async with app_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT current_user, r.rolsuper, r.rolbypassrls FROM pg_roles r "
                    "WHERE r.rolname = current_user"
                )
            )
        ).one()
    assert row == ("posturio_app", False, False)
