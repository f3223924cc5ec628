"""The audit log is append-only and tamper-evident."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from posturio.platform.db import bind_tenant


async def _tamper(owner_engine, sql: str, **params):
    # A superuser skipping triggers: what someone with raw database access could do.
    async with owner_engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text(sql), params)


def _cli(settings_env, *args):
    return subprocess.run(
        [sys.executable, "-m", "posturio.cli", *args],
        capture_output=True,
        text=True,
        env=settings_env,
        timeout=60,
    )


@pytest.fixture
def cli_env(services):
    import os

    return dict(os.environ)


async def test_admin_actions_are_chained(client, make_tenant):
    t = await make_tenant()
    await client.post("/api/keys", json={"name": "k"}, headers=t.admin_headers)
    page = (await client.get("/api/audit", headers=t.admin_headers)).json()
    actions = [e["action"] for e in page["items"]]
    assert actions[0] == "key.create"
    assert {"tenant.create", "member.add"} <= set(actions)
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 1
    report = (await client.get("/api/audit/verify", headers=t.admin_headers)).json()
    assert report["ok"] is True and report["checked"] == len(seqs)


async def test_audit_pagination(client, make_tenant):
    t = await make_tenant()
    for i in range(4):
        await client.post("/api/keys", json={"name": f"k{i}"}, headers=t.admin_headers)
    first = (await client.get("/api/audit?limit=3", headers=t.admin_headers)).json()
    second = (
        await client.get(
            f"/api/audit?limit=3&before_seq={first['next_before_seq']}", headers=t.admin_headers
        )
    ).json()
    seen = [e["seq"] for e in first["items"] + second["items"]]
    assert len(seen) == len(set(seen)) == 6
    only_keys = (await client.get("/api/audit?action=key.create", headers=t.admin_headers)).json()
    assert {e["action"] for e in only_keys["items"]} == {"key.create"}


async def test_app_role_cannot_modify_or_delete_audit_rows(sessionmaker, make_tenant):
    t = await make_tenant()
    for sql in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events"):
        async with sessionmaker() as session:
            bind_tenant(session, t.id)
            with pytest.raises(DBAPIError, match="permission denied"):
                async with session.begin():
                    await session.execute(text(sql))


async def test_owner_cannot_update_through_trigger(owner_engine, make_tenant):
    t = await make_tenant()
    with pytest.raises(DBAPIError, match="append-only"):
        async with owner_engine.begin() as conn:
            await conn.execute(
                text("UPDATE audit_events SET actor = 'x' WHERE tenant_id = :t"), {"t": t.id}
            )


async def test_modified_row_is_reported(client, make_tenant, owner_engine, cli_env):
    t = await make_tenant()
    await client.post("/api/keys", json={"name": "k"}, headers=t.admin_headers)
    await _tamper(
        owner_engine,
        'UPDATE audit_events SET data = \'{"name": "innocent"}\' WHERE tenant_id = :t AND seq = 2',
        t=t.id,
    )
    report = (await client.get("/api/audit/verify", headers=t.admin_headers)).json()
    assert report["ok"] is False and report["broken_seq"] == 2 and report["checked"] == 1
    assert "modified" in report["reason"]

    result = _cli(cli_env, "audit", "verify", "--tenant", t.slug)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "seq=2" in result.stdout


async def test_removed_row_is_reported(client, make_tenant, owner_engine, cli_env):
    t = await make_tenant()
    await client.post("/api/keys", json={"name": "k"}, headers=t.admin_headers)
    await _tamper(owner_engine, "DELETE FROM audit_events WHERE tenant_id = :t AND seq = 1", t=t.id)
    report = (await client.get("/api/audit/verify", headers=t.admin_headers)).json()
    assert report["ok"] is False and report["broken_seq"] == 2
    assert "gap" in report["reason"]


async def test_intact_chain_verifies_in_cli(make_tenant, cli_env):
    t = await make_tenant()
    result = _cli(cli_env, "audit", "verify", "--tenant", str(t.id))
    assert result.returncode == 0, result.stderr
    assert f"ok      {t.slug}" in result.stdout
