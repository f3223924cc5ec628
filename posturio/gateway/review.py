"""The review queue's actions on decision records: confirm, false positive, assign; and
allowlisting a decision's values, an admin's explicit choice that changes the policy:
it is planned first (which fingerprints, which rules they silence), then saved as a new
version that one restore undoes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.inspection.engine import Finding
from posturio.gateway.models import Policy, PolicyDecision
from posturio.gateway.policy import store
from posturio.gateway.policy.evaluate import REVIEWED, rules_acting_on
from posturio.gateway.policy.schema import PolicyDoc, decode, to_builtins
from posturio.platform import audit
from posturio.platform.errors import Conflict, PosturioError
from posturio.platform.models import Membership, Role
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped

MAX_PROVENANCE = 500  # allowlist entries traced back to the reviews that added them


def _needs_review() -> Any:
    """A record the queue holds: a rule flagged or blocked one of its findings (whatever
    the request's overall action: a flagged injection beside a redacted e-mail is still
    reviewed), or a shadow rule matched."""
    return or_(
        PolicyDecision.action.in_(REVIEWED),
        PolicyDecision.shadow.is_(True),
        *(PolicyDecision.findings.contains([{"action": a}]) for a in sorted(REVIEWED)),
    )


async def queue(
    session: AsyncSession, principal: Principal, *, mine: bool = False, limit: int = 100
) -> list[PolicyDecision]:
    """Open records that need a reviewer, oldest first: a queue."""
    principal.require(Role.reviewer)
    stmt = scoped(PolicyDecision, principal.tenant_id).where(
        PolicyDecision.status == "open", _needs_review()
    )
    if mine:
        stmt = stmt.where(PolicyDecision.assignee_id == principal.user_id)
    return list(
        (await session.scalars(stmt.order_by(PolicyDecision.occurred_at).limit(limit))).all()
    )


async def confirm(session: AsyncSession, principal: Principal, decision_id: str) -> PolicyDecision:
    return await store.review(session, principal, decision_id, "confirmed")


# ---------------------------------------------------------------- allowlisting


@dataclass(frozen=True, slots=True)
class Silenced:
    policy_rule: str
    action: str
    direction: str
    shadow: bool


@dataclass(slots=True)
class Entry:
    """One value a decision could allowlist: what it is, and the rules it would silence."""

    fingerprint: str
    category: str
    rule: str  # the detector's rule, e.g. injection.ignore_instructions
    preview: str
    where: str
    silences: list[Silenced] = field(default_factory=list)
    request_id: str | None = None  # where it was found (for the allowlist view)
    reviewed_by: str | None = None


@dataclass(slots=True)
class Plan:
    decision: PolicyDecision
    policy_version: int  # the version the plan was made against
    entries: list[Entry]


def _finding(f: dict[str, Any]) -> Finding:
    start, end = f.get("span") or (0, 0)
    return Finding(
        detector=str(f.get("detector", "")),
        rule=str(f.get("rule", "")),
        category=str(f.get("category", "")),
        start=int(start),
        end=int(end),
        score=float(f.get("score", 0.0)),
        evidence=str(f.get("evidence", "")),
        fingerprint=str(f.get("fingerprint", "")),
        preview=str(f.get("preview", "")),
    )


def _entry(f: dict[str, Any], doc: PolicyDoc) -> Entry:
    rules = rules_acting_on(doc, _finding(f))
    return Entry(
        fingerprint=f["fingerprint"],
        category=str(f.get("category", "")),
        rule=str(f.get("rule", "")),
        preview=str(f.get("preview", "")),
        where=str(f.get("where", "")),
        silences=[Silenced(r.id, r.action, r.match.direction, r.shadow) for r in rules],
    )


async def allowlist_plan(session: AsyncSession, principal: Principal, decision_id: str) -> Plan:
    """What allowlisting this decision's values would change, before anything changes:
    each value a rule acted on (or a shadow rule matched), with the rules it silences."""
    principal.require(Role.admin)
    row = await store.decision(session, principal, decision_id)
    current, doc = await store.in_force(session, principal.tenant_id)
    known = set(doc.allowlist.fingerprints)
    entries: dict[str, Entry] = {}
    for f in row.findings:
        fp = f.get("fingerprint")
        acted = f.get("action") not in (None, "allow") or f.get("shadow")
        if fp and acted and fp not in known and fp not in entries:
            entries[fp] = _entry(f, doc)
    return Plan(row, current.version if current else 0, list(entries.values()))


async def false_positive(
    session: AsyncSession,
    principal: Principal,
    decision_id: str,
    *,
    allowlist: list[str] | None = None,
    policy_version: int | None = None,
) -> tuple[PolicyDecision, Policy | None]:
    """Dismiss as a false positive. Only the fingerprints named in `allowlist` (from the
    decision's plan) join the policy's allowlist, in a new version; `policy_version`, when
    given, is the version the admin saw the plan against (another change since: 409)."""
    if not allowlist:
        return await store.review(session, principal, decision_id, "false_positive"), None
    plan = await allowlist_plan(session, principal, decision_id)
    planned = {e.fingerprint for e in plan.entries}
    unknown = sorted(set(allowlist) - planned)
    if unknown:
        raise PosturioError(
            f"not a value of this decision that can be allowlisted: {', '.join(unknown)}",
            code="invalid_allowlist",
        )
    if policy_version is not None and policy_version != plan.policy_version:
        raise Conflict(
            f"the policy changed since (version {plan.policy_version} is in force, not "
            f"{policy_version}); look at the values again"
        )
    _, current = await store.in_force(session, principal.tenant_id)
    doc = decode(to_builtins(current))  # a copy: the default policy is shared
    doc.allowlist.fingerprints = [
        *doc.allowlist.fingerprints,
        *(e.fingerprint for e in plan.entries if e.fingerprint in allowlist),
    ]
    added = ", ".join(
        f"{e.category} {e.preview}" for e in plan.entries if e.fingerprint in allowlist
    )
    version = await store.save(
        session,
        principal,
        doc,
        f"allowlist after false positive on request {plan.decision.request_id}: {added}",
    )
    row = await store.review(session, principal, decision_id, "false_positive")
    return row, version


async def allowlisted(session: AsyncSession, principal: Principal, doc: PolicyDoc) -> list[Entry]:
    """The policy's allowlisted fingerprints, each traced to the review that added it
    (what was found, where, by whom) and the rules it silences under `doc`."""
    principal.require(Role.reviewer)
    fingerprints = doc.allowlist.fingerprints[:MAX_PROVENANCE]
    if not fingerprints:
        return []
    rows = await session.scalars(
        scoped(PolicyDecision, principal.tenant_id)
        .where(
            PolicyDecision.status == "false_positive",
            or_(*(PolicyDecision.findings.contains([{"fingerprint": fp}]) for fp in fingerprints)),
        )
        .order_by(PolicyDecision.reviewed_at)
    )
    found: dict[str, Entry] = {}
    for row in rows:
        for f in row.findings:
            fp = f.get("fingerprint")
            if fp in fingerprints and fp not in found:
                found[fp] = _entry(f, doc)
                found[fp].request_id, found[fp].reviewed_by = row.request_id, row.reviewed_by
    return [
        found.get(fp) or Entry(fp, "?", "?", "(added in the policy document)", "")
        for fp in fingerprints
    ]


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
    await audit.by(
        session,
        principal,
        action="decision.assign",
        target_type="policy_decision",
        target_id=str(row.id),
        data={"assignee": str(user_id) if user_id else None},
    )
    return row
