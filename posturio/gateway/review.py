"""The review queue's actions on decision records: confirm, false positive (optionally
allowlisting the values' fingerprints as a new policy version), assign."""

from __future__ import annotations

import uuid

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import Policy, PolicyDecision
from posturio.gateway.policy import store
from posturio.gateway.policy.schema import decode, to_builtins
from posturio.platform import audit
from posturio.platform.errors import PosturioError
from posturio.platform.models import Membership, Role
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped

QUEUE_ACTIONS = ("block", "flag")


async def queue(
    session: AsyncSession, principal: Principal, *, mine: bool = False, limit: int = 100
) -> list[PolicyDecision]:
    """Open blocked and flagged items (and shadow matches), oldest first: a queue."""
    principal.require(Role.reviewer)
    stmt = scoped(PolicyDecision, principal.tenant_id).where(
        PolicyDecision.status == "open",
        or_(PolicyDecision.action.in_(QUEUE_ACTIONS), PolicyDecision.shadow.is_(True)),
    )
    if mine:
        stmt = stmt.where(PolicyDecision.assignee_id == principal.user_id)
    return list(
        (await session.scalars(stmt.order_by(PolicyDecision.occurred_at).limit(limit))).all()
    )


async def confirm(session: AsyncSession, principal: Principal, decision_id: str) -> PolicyDecision:
    return await store.review(session, principal, decision_id, "confirmed")


async def false_positive(
    session: AsyncSession, principal: Principal, decision_id: str, *, allowlist: bool
) -> tuple[PolicyDecision, Policy | None]:
    """Dismiss as a false positive; with `allowlist`, the flagged values' fingerprints join
    the policy's allowlist in a new version (an admin's decision: it changes the policy)."""
    row = await store.review(session, principal, decision_id, "false_positive")
    if not allowlist:
        return row, None
    principal.require(Role.admin)
    fingerprints = sorted(
        {
            f["fingerprint"]
            for f in row.findings
            if f.get("fingerprint") and f.get("action") not in (None, "allow")
        }
    )
    if not fingerprints:
        raise PosturioError("this decision has no value to allowlist", code="nothing_to_allowlist")
    _, current = await store.in_force(session, principal.tenant_id)
    doc = decode(to_builtins(current))  # a copy: the default policy is shared
    known = set(doc.allowlist.fingerprints)
    doc.allowlist.fingerprints = [
        *doc.allowlist.fingerprints,
        *(f for f in fingerprints if f not in known),
    ]
    version = await store.save(
        session, principal, doc, f"allowlist after false positive on request {row.request_id}"
    )
    return row, version


async def assign(
    session: AsyncSession, principal: Principal, decision_id: str, user_id: uuid.UUID | None
) -> PolicyDecision:
    row = await store.decision(session, principal, decision_id)
    if user_id is not None:
        member = (
            await session.scalars(
                scoped(Membership, principal.tenant_id).where(Membership.user_id == user_id)
            )
        ).first()
        if member is None or Role(member.role) == Role.member:
            raise PosturioError("assign to a reviewer, admin or owner of this tenant")
    row.assignee_id = user_id
    await audit.record(
        session,
        principal.tenant_id,
        actor=principal.actor,
        action="decision.assign",
        target_type="policy_decision",
        target_id=str(row.id),
        data={"assignee": str(user_id) if user_id else None},
    )
    return row
