"""A key is worth no more than its creator's current membership: a demoted admin's admin
key loses the admin scope, a removed member's key stops, on the running server at once
(the change reaches its key cache through the Redis broadcast)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.platform import accounts, keys
from posturio.platform.db import tenant_session
from posturio.platform.errors import Forbidden
from posturio.platform.models import Role, Scope
from posturio.platform.principal import Principal
from tests.conftest import TenantFixture
from tests.gateway.helpers import USER, deployment, put_route

ALIAS = "bounded"


@dataclass
class Person:
    membership_id: uuid.UUID
    principal: Principal
    key: str  # made by this person

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def _person(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: TenantFixture,
    role: Role,
    scopes: list[Scope],
) -> Person:
    async with tenant_session(sessionmaker, tenant.id) as session:
        owner = Principal(tenant.id, Role.owner, f"user:{tenant.owner_id}", user_id=tenant.owner_id)
        email = f"{role.value}-{uuid.uuid4().hex[:10]}@example.com"
        view = await accounts.add_member(session, owner, email, role, "a long enough password")
        user_id = view.membership.user_id
        me = Principal(tenant.id, role, f"user:{user_id}", user_id=user_id)
        made = await keys.create_key(session, me, name=role.value, scopes=[s.value for s in scopes])
    return Person(view.membership.id, me, made.plaintext)


async def _chat(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post(
        "/v1/chat/completions", json={"model": ALIAS, "messages": USER}, headers=headers
    )


async def _search(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post("/api/navigator/search", json={"query": "holidays"}, headers=headers)


@pytest.fixture
async def tenant(make_tenant, server, fake) -> TenantFixture:  # type: ignore[no-untyped-def]
    t = await make_tenant()
    await put_route(server, t, ALIAS, [deployment("main", "ok", fake.base_url)])
    return t


async def test_a_demoted_admins_keys_lose_the_admin_scope(server, tenant, sessionmaker):
    admin = await _person(sessionmaker, tenant, Role.admin, [Scope.admin, Scope.gateway])
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        # A key the admin's key mints answers to the same person.
        r = await http.post(
            "/api/keys",
            json={"name": "minted", "scopes": ["admin", "gateway"]},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        minted = {"Authorization": f"Bearer {r.json()['secret']}"}
        for headers in (admin.headers, minted):  # cached in the server
            assert (await http.get("/api/tenant", headers=headers)).status_code == 200

        r = await http.patch(
            f"/api/members/{admin.membership_id}",
            json={"role": "member"},
            headers=tenant.admin_headers,
        )
        assert r.status_code == 200, r.text

        for headers in (admin.headers, minted):
            r = await http.post(
                "/api/keys", json={"name": "again", "scopes": ["gateway"]}, headers=headers
            )
            assert r.status_code == 403, r.text
            assert (await http.get("/api/tenant", headers=headers)).status_code == 403
            assert (await http.get("/api/members", headers=headers)).status_code == 403
            # The gateway scope is a member's: /v1 still answers.
            r = await _chat(http, headers)
            assert r.status_code == 200, r.text


async def test_a_member_cannot_mint_beyond_their_role(tenant, sessionmaker):
    member = await _person(sessionmaker, tenant, Role.member, [Scope.gateway])
    async with tenant_session(sessionmaker, tenant.id) as session:
        with pytest.raises(Forbidden):
            await keys.create_key(
                session, member.principal, name="x", scopes=[Scope.admin.value, "gateway"]
            )


async def test_a_removed_members_key_stops_at_once(server, tenant, sessionmaker):
    member = await _person(sessionmaker, tenant, Role.member, [Scope.gateway])
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        assert (await _chat(http, member.headers)).status_code == 200
        assert (await _search(http, member.headers)).status_code == 200

        r = await http.delete(f"/api/members/{member.membership_id}", headers=tenant.admin_headers)
        assert r.status_code == 204, r.text

        r = await _chat(http, member.headers)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "creator_removed"
        assert "no longer a member" in r.json()["error"]["message"]
        r = await _search(http, member.headers)
        assert r.status_code == 401, r.text
        # The tenant's own keys are untouched.
        assert (await _chat(http, {"Authorization": f"Bearer {tenant.gateway_key}"})).is_success


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posturio.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _until_status(
    http: httpx.AsyncClient, headers: dict[str, str], status: int
) -> httpx.Response:
    # The CLI is another process: its broadcast arrives through Redis. Far shorter than
    # the cache's TTL (30 s), so only the broadcast can make this pass.
    deadline = time.monotonic() + 5
    while True:
        r = await _chat(http, headers)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


async def test_the_cli_removing_a_member_stops_their_key_in_the_server(
    server, tenant, sessionmaker
):
    member = await _person(sessionmaker, tenant, Role.member, [Scope.gateway])
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        assert (await _chat(http, member.headers)).status_code == 200
        done = await asyncio.to_thread(
            _cli, "members", "remove", tenant.slug, str(member.membership_id)
        )
        assert done.returncode == 0, done.stderr
        r = await _until_status(http, member.headers, 401)
        assert r.status_code == 401, r.text
        assert (await _search(http, member.headers)).status_code == 401
