"""Platform jobs: API key last-use, audit chain verification (scheduled)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import structlog

from posturio.platform import accounts, audit, keys
from posturio.platform.jobs.actors import system_actor, tenant_actor
from posturio.platform.jobs.runtime import resources, unit_of_work

log = structlog.get_logger("posturio.tasks")
AUDIT_REPORT_KEY = "posturio:audit:last_verification"


@tenant_actor(max_retries=3)
async def touch_api_key(tenant_id: str, key_id: str, used_at: str) -> None:
    async with unit_of_work(tenant_id) as session:
        await keys.touch_last_used(
            session, uuid.UUID(tenant_id), uuid.UUID(key_id), datetime.fromisoformat(used_at)
        )


@tenant_actor(max_retries=3)
async def verify_audit_chain(tenant_id: str) -> None:
    async with unit_of_work(tenant_id) as session:
        report = await audit.verify_chain(session, uuid.UUID(tenant_id))
    result = {**report.as_dict(), "verified_at": datetime.now().astimezone().isoformat()}
    await resources().redis.hset(AUDIT_REPORT_KEY, tenant_id, json.dumps(result))
    if report.ok:
        log.info("audit_chain_ok", tenant_id=tenant_id, checked=report.checked)
    else:
        log.error("audit_chain_broken", **report.as_dict())


@system_actor()
async def verify_all_audit_chains() -> None:
    """Scheduled: fan out one verification job per tenant."""
    async with unit_of_work(None) as session:
        tenants = await accounts.list_tenants(session)
    for tenant in tenants:
        verify_audit_chain.send(str(tenant.id))
