"""API keys: shown once, stored hashed, scoped, expiring, revocable at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from posturio.platform.security import split_api_key


async def test_created_key_is_returned_once_and_stored_only_hashed(
    client, make_tenant, owner_engine
):
    t = await make_tenant()
    r = await client.post(
        "/api/keys", json={"name": "ci bot", "scopes": ["gateway"]}, headers=t.admin_headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    secret = body["secret"]
    prefix, raw = split_api_key(secret)
    assert body["key"]["prefix"] == prefix and body["key"]["status"] == "active"

    # Never returned again.
    listed = (await client.get(f"/api/keys/{body['key']['id']}", headers=t.admin_headers)).text
    assert raw not in listed and "secret" not in listed

    # Not stored in plaintext anywhere in the database: search every text-like column.
    async with owner_engine.connect() as conn:
        dump = (
            await conn.execute(
                text(
                    "SELECT string_agg(t::text, '') FROM ("
                    " SELECT row_to_json(k)::text AS t FROM api_keys k"
                    " UNION ALL SELECT row_to_json(a)::text FROM audit_events a"
                    " UNION ALL SELECT row_to_json(u)::text FROM users u"
                    " UNION ALL SELECT row_to_json(m)::text FROM memberships m) s"
                )
            )
        ).scalar_one()
    assert raw not in dump
    assert secret not in dump
    assert t.admin_key.split("_", 2)[2] not in dump
    assert t.owner_password not in dump


async def test_keys_authenticate_with_every_header_form(client, make_tenant):
    t = await make_tenant()
    for headers in (
        {"Authorization": f"Bearer {t.admin_key}"},
        {"api-key": t.admin_key},
        {"x-api-key": t.admin_key},
    ):
        assert (await client.get("/api/tenant", headers=headers)).status_code == 200


async def test_bad_keys_are_401(client, make_tenant):
    t = await make_tenant()
    prefix, raw = split_api_key(t.admin_key)
    wrong_secret = f"pst_{prefix}_{'A' * len(raw)}"
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": "Bearer pst_zzzzzzzz_" + "B" * 43},
    ):
        r = await client.get("/api/tenant", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized"


async def test_gateway_key_cannot_use_admin_api(client, make_tenant):
    t = await make_tenant()
    r = await client.get("/api/keys", headers={"Authorization": f"Bearer {t.gateway_key}"})
    assert r.status_code == 403
    assert "admin scope" in r.json()["error"]["message"]


async def test_revocation_takes_effect_immediately(client, make_tenant):
    t = await make_tenant()
    created = (
        await client.post(
            "/api/keys", json={"name": "temp", "scopes": ["admin"]}, headers=t.admin_headers
        )
    ).json()
    temp = {"Authorization": f"Bearer {created['secret']}"}
    assert (await client.get("/api/tenant", headers=temp)).status_code == 200  # now cached
    r = await client.post(
        f"/api/keys/{created['key']['id']}/revoke",
        json={"reason": "leaked"},
        headers=t.admin_headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await client.get("/api/tenant", headers=temp)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "key_revoked"
    again = await client.post(f"/api/keys/{created['key']['id']}/revoke", headers=t.admin_headers)
    assert again.status_code == 409


async def test_expired_key_is_rejected(client, make_tenant, owner_engine):
    t = await make_tenant()
    created = (
        await client.post(
            "/api/keys",
            json={"name": "short", "scopes": ["admin"], "expires_in_days": 1},
            headers=t.admin_headers,
        )
    ).json()
    expires = datetime.fromisoformat(created["key"]["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(days=1)
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": created["key"]["id"]},
        )
    r = await client.get("/api/tenant", headers={"Authorization": f"Bearer {created['secret']}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "key_expired"
    listed = (await client.get(f"/api/keys/{created['key']['id']}", headers=t.admin_headers)).json()
    assert listed["status"] == "expired"


async def test_key_input_validation(client, make_tenant):
    t = await make_tenant()
    cases = [
        ({"name": "", "scopes": ["gateway"]}, "name"),
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scope"),
        ({"name": 5}, "name"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "extra": True}, "extra"),
    ]
    for body, word in cases:
        r = await client.post("/api/keys", json=body, headers=t.admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert word in r.json()["error"]["message"], (body, r.json())


async def test_made_up_keys_do_not_each_cost_a_query(sessionmaker):
    from posturio.platform.errors import Unauthorized
    from posturio.platform.keyauth import KeyAuthenticator

    opened = 0

    def counting():
        nonlocal opened
        opened += 1
        return sessionmaker()

    auth = KeyAuthenticator(counting, ttl_s=30)  # type: ignore[arg-type]
    token = "pst_abcdefgh_" + "x" * 43
    for _ in range(50):
        with pytest.raises(Unauthorized):  # every attempt refused, none by a query
            await auth.authenticate(token)
    assert opened == 1
