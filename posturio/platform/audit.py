"""Append-only audit log; each tenant's rows form a hash chain that `verify` walks."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform.db import utcnow
from posturio.platform.models import AuditEvent
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped

GENESIS = bytes(32)


def _digest(
    *,
    tenant_id: uuid.UUID,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    target_type: str | None,
    target_id: str | None,
    data: dict[str, Any],
    prev_hash: bytes,
) -> bytes:
    canonical = json.dumps(
        [
            str(tenant_id),
            seq,
            occurred_at.isoformat(timespec="microseconds"),
            actor,
            action,
            target_type,
            target_id,
            data,
            prev_hash.hex(),
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).digest()


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (so it commits or rolls back with it)."""
    # One writer per tenant chain at a time; the lock ends with the transaction.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:t, 7))"), {"t": str(tenant_id)}
    )
    last = (
        await session.execute(
            scoped(AuditEvent, tenant_id)
            .with_only_columns(AuditEvent.seq, AuditEvent.hash)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS)
    # JSON round trip now, so what is hashed is exactly what JSONB will give back.
    payload = json.loads(json.dumps(data or {}, default=str))
    event = AuditEvent(
        tenant_id=tenant_id,
        seq=seq,
        occurred_at=utcnow(),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        data=payload,
        prev_hash=prev_hash,
    )
    event.hash = _digest(
        tenant_id=tenant_id,
        seq=seq,
        occurred_at=event.occurred_at,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=event.target_id,
        data=payload,
        prev_hash=prev_hash,
    )
    session.add(event)
    await session.flush()
    return event


# Sign-in events: how (password, sso) and from which client address.
SIGN_IN = "auth.sign_in"
SIGN_IN_FAILED = "auth.sign_in_failed"
SIGN_OUT = "auth.sign_out"
BREAK_GLASS = "auth.break_glass"  # an owner's password into a tenant that is SSO only


async def by(
    session: AsyncSession,
    principal: Principal,
    *,
    action: str,
    target_type: str | None = None,
    target_id: str | uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """`record` of what a principal (a person or a key) did in its own tenant."""
    return await record(
        session,
        principal.tenant_id,
        actor=principal.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        data=data,
    )


async def record_auth(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    action: str,
    user_id: uuid.UUID | str | None,
    method: str,
    client: str,
    **data: Any,
) -> AuditEvent:
    """A sign-in, failed sign-in or sign-out in the tenant it concerns."""
    return await record(
        session,
        tenant_id,
        actor=f"user:{user_id}" if user_id else "anonymous",
        action=action,
        target_type="user" if user_id else None,
        target_id=user_id,
        data={"method": method, "client": client, **data},
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    tenant_id: uuid.UUID
    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.tenant_id),
            "ok": self.ok,
            "checked": self.checked,
            "broken_seq": self.broken_seq,
            "broken_id": self.broken_id,
            "reason": self.reason,
        }


async def verify_chain(session: AsyncSession, tenant_id: uuid.UUID) -> ChainReport:
    """Walk the tenant's chain in order; report the first row whose link does not hold."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    rows = await session.stream_scalars(
        scoped(AuditEvent, tenant_id).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    )
    async for row in rows:
        reason = None
        if row.seq != expected_seq:
            reason = f"sequence gap: expected {expected_seq}, found {row.seq} (a row was removed)"
        elif row.prev_hash != prev_hash:
            reason = "prev_hash does not match the previous row's hash"
        elif row.hash != _digest(
            tenant_id=row.tenant_id,
            seq=row.seq,
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            data=row.data,
            prev_hash=row.prev_hash,
        ):
            reason = "row content does not match its hash (the row was modified)"
        if reason:
            return ChainReport(tenant_id, False, checked, row.seq, row.id, reason)
        prev_hash, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    return ChainReport(tenant_id, True, checked)


async def list_events(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    before_seq: int | None = None,
    action: str | None = None,
    action_prefix: str | None = None,
    actor: str | None = None,
) -> list[AuditEvent]:
    query = scoped(AuditEvent, tenant_id)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    if action:
        query = query.where(AuditEvent.action == action)
    if action_prefix:  # "policy." finds policy.update, policy.restore, …
        query = query.where(AuditEvent.action.startswith(action_prefix, autoescape=True))
    if actor:
        query = query.where(AuditEvent.actor == actor)
    return list((await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit))).all())
