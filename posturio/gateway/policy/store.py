"""Policy versions (the admin service; never commits), the loader that compiles a
tenant's policy in force for the gateway, and the decision records' queries."""

from __future__ import annotations

import difflib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import hyperscan
import re2
import structlog
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import Policy, PolicyDecision
from posturio.gateway.policy.evaluate import CompiledPolicy, compile_detectors, fingerprint_key
from posturio.gateway.policy.schema import DEFAULT_POLICY, PolicyDoc, decode, to_builtins, validate
from posturio.gateway.routes import list_routes
from posturio.gateway.routing import BUILTINS
from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import Conflict, NotFound, PosturioError
from posturio.platform.models import Role
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped, scoped

REVIEW_STATUSES = ("open", "confirmed", "false_positive", "dismissed", "escalated")
log = structlog.get_logger("posturio.policy")


async def latest(session: AsyncSession, tenant_id: uuid.UUID) -> Policy | None:
    return (
        await session.scalars(scoped(Policy, tenant_id).order_by(Policy.version.desc()).limit(1))
    ).first()


async def in_force(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[Policy | None, PolicyDoc]:
    """The newest version, or the built-in default (version 0) for a tenant with none."""
    row = await latest(session, tenant_id)
    return (row, decode(row.document)) if row else (None, DEFAULT_POLICY)


async def versions(session: AsyncSession, tenant_id: uuid.UUID) -> list[Policy]:
    return list(
        (await session.scalars(scoped(Policy, tenant_id).order_by(Policy.version.desc()))).all()
    )


async def version(session: AsyncSession, tenant_id: uuid.UUID, number: int) -> Policy:
    row = (await session.scalars(scoped(Policy, tenant_id).where(Policy.version == number))).first()
    if row is None:
        raise NotFound(f"no policy version {number}")
    return row


async def aliases(session: AsyncSession, tenant_id: uuid.UUID) -> set[str]:
    return set(BUILTINS) | {r.alias for r, _d, _c in await list_routes(session, tenant_id)}


async def save(
    session: AsyncSession, principal: Principal, doc: PolicyDoc, comment: str = ""
) -> Policy:
    """Every change is a new, immutable version; the audit log names who and what."""
    principal.require(Role.admin)
    validate(doc, await aliases(session, principal.tenant_id))
    compile_detectors(doc)
    current = (
        await session.scalar(
            scoped(Policy, principal.tenant_id).with_only_columns(func.max(Policy.version))
        )
    ) or 0
    row = Policy(
        tenant_id=principal.tenant_id,
        version=current + 1,
        document=to_builtins(doc),
        comment=comment[:1000],
        created_by=principal.actor,
    )
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("the policy changed meanwhile; reload and try again") from None
    await audit.by(
        session,
        principal,
        action="policy.update",
        target_type="policy",
        target_id=str(row.id),
        data={
            "version": row.version,
            "comment": row.comment,
            "rules": [r.id for r in doc.rules],
            "detectors": [d.id for d in doc.detectors],
            "allowlist": {
                "fingerprints": len(doc.allowlist.fingerprints),
                "patterns": len(doc.allowlist.patterns),
            },
        },
    )
    return row


async def rollback_to(
    session: AsyncSession, principal: Principal, number: int, *, expect: int | None = None
) -> Policy:
    """Make an old version current again, as a new version (history stays linear).
    `expect`: the version the caller saw in force (an undo must not also undo a change
    someone made since); version 0 is the built-in default."""
    principal.require(Role.admin)
    row, _ = await in_force(session, principal.tenant_id)
    now = row.version if row else 0
    if expect is not None and expect != now:
        raise Conflict(f"the policy changed since: version {now} is in force, not {expect}")
    old = await version(session, principal.tenant_id, number) if number else None
    return await save(session, principal, decode(document(old)), f"rollback to version {number}")


def document(row: Policy | None) -> dict[str, object]:
    return row.document if row else to_builtins(DEFAULT_POLICY)


def canonical(doc: dict[str, object]) -> str:
    """The document as the schema writes it (field order, defaults left out), whatever
    order its keys were stored in: the text that diffs and the editor show."""
    return json.dumps(to_builtins(decode(doc)), indent=2, ensure_ascii=False)


def diff(old: dict[str, object], new: dict[str, object], a: str, b: str) -> list[str]:
    """Unified diff of two documents' canonical texts: only what changed."""
    return list(
        difflib.unified_diff(
            canonical(old).splitlines(), canonical(new).splitlines(), a, b, lineterm=""
        )
    )


PolicyLoader = Callable[[AsyncSession, uuid.UUID], Awaitable[CompiledPolicy]]


def loader(secret: bytes) -> PolicyLoader:
    async def load(session: AsyncSession, tenant_id: uuid.UUID) -> CompiledPolicy:
        row, doc = await in_force(session, tenant_id)
        key = fingerprint_key(secret, tenant_id)
        try:
            return CompiledPolicy(row.id if row else None, row.version if row else 0, doc, key)
        except (PosturioError, hyperscan.error, re2.error) as exc:
            # A stored version that no longer compiles (e.g. after an upgrade) must not
            # take the tenant's traffic down: the default policy still blocks secrets.
            log.error("policy_unusable_default_applies", tenant_id=str(tenant_id), error=str(exc))
            return CompiledPolicy(None, 0, DEFAULT_POLICY, key)

    return load


# ---------------------------------------------------------------- decision records


async def decisions(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[PolicyDecision]:
    principal.require(Role.reviewer)
    stmt = scoped(PolicyDecision, principal.tenant_id)
    if status:
        stmt = stmt.where(PolicyDecision.status == status)
    if action:
        stmt = stmt.where(PolicyDecision.action == action)
    if since:
        stmt = stmt.where(PolicyDecision.occurred_at >= since)
    return list(
        (await session.scalars(stmt.order_by(PolicyDecision.occurred_at.desc()).limit(limit))).all()
    )


async def decision(session: AsyncSession, principal: Principal, decision_id: str) -> PolicyDecision:
    principal.require(Role.reviewer)
    return await get_scoped(session, PolicyDecision, principal.tenant_id, decision_id, "decision")


async def review(
    session: AsyncSession, principal: Principal, decision_id: str, status: str
) -> PolicyDecision:
    if status not in REVIEW_STATUSES:
        raise PosturioError(f"status must be one of {', '.join(REVIEW_STATUSES)}")
    row = await decision(session, principal, decision_id)
    row.status = status
    row.reviewed_by = principal.actor
    row.reviewed_at = utcnow()
    await audit.by(
        session,
        principal,
        action="decision.review",
        target_type="policy_decision",
        target_id=str(row.id),
        data={"status": status, "request_id": row.request_id},
    )
    return row
