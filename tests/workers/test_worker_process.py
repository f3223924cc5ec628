"""Jobs run through a real `posturio worker` process against the real Redis and Postgres."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis as redis_sync
from sqlalchemy import text

from posturio.platform.db import tenant_session
from posturio.platform.jobs.outbox import defer
from posturio.platform.tasks import AUDIT_REPORT_KEY, verify_audit_chain
from posturio.workers.broker import setup_broker
from tests.eventually import eventually


@pytest.fixture(scope="module")
def worker(settings):
    setup_broker(settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "posturio.cli", "worker", "--threads", "2", "--no-scheduler"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def rds(settings):
    client = redis_sync.Redis.from_url(settings.redis_url)
    yield client
    client.close()


async def _wait_for_report(rds, tenant_id, within_s=30.0):
    async def report():
        return rds.hget(AUDIT_REPORT_KEY, str(tenant_id))

    return json.loads(await eventually(report, bool, within_s=within_s, what="an audit report"))


async def test_enqueued_after_commit_runs_in_worker(worker, rds, sessionmaker, make_tenant):
    committed, rolled_back = await make_tenant(), await make_tenant()

    with pytest.raises(RuntimeError):
        async with tenant_session(sessionmaker, rolled_back.id) as session:
            defer(session, verify_audit_chain, str(rolled_back.id))
            raise RuntimeError("the unit of work fails: its job must not be sent")

    async with tenant_session(sessionmaker, committed.id) as session:
        defer(session, verify_audit_chain, str(committed.id))
        # Not sent yet: the transaction has not committed.
        await asyncio.sleep(0.3)
        assert rds.hget(AUDIT_REPORT_KEY, str(committed.id)) is None

    report = await _wait_for_report(rds, committed.id)
    assert report["ok"] is True and report["checked"] >= 3
    await asyncio.sleep(0.5)
    assert rds.hget(AUDIT_REPORT_KEY, str(rolled_back.id)) is None


async def test_worker_reports_a_broken_chain(worker, rds, make_tenant, owner_engine):
    t = await make_tenant()
    async with owner_engine.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(
            text("UPDATE audit_events SET actor = 'someone' WHERE tenant_id = :t AND seq = 1"),
            {"t": t.id},
        )
    verify_audit_chain.send(str(t.id))
    report = await _wait_for_report(rds, t.id)
    assert report["ok"] is False and report["broken_seq"] == 1


async def test_key_use_is_recorded_by_the_worker(worker, client, make_tenant):
    t = await make_tenant()
    keys = (await client.get("/api/keys", headers=t.admin_headers)).json()
    admin = next(k for k in keys if k["name"] == "admin")
    deadline = time.monotonic() + 30
    last_used = None
    while time.monotonic() < deadline and last_used is None:
        await asyncio.sleep(0.2)
        last_used = (await client.get(f"/api/keys/{admin['id']}", headers=t.admin_headers)).json()[
            "last_used_at"
        ]
    assert last_used is not None


def test_tenant_actor_requires_tenant_id(settings):
    setup_broker(settings)
    with pytest.raises(TypeError, match="tenant_id"):
        verify_audit_chain.message()
    assert verify_audit_chain.message(str(uuid.uuid4())).args
