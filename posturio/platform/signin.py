"""Signing in, shared by the console's password form, invitations and single sign-on:
the failed-attempt throttle, the audit of each attempt, and the new session on success."""

from __future__ import annotations

import uuid

from litestar import Request
from litestar.response import Redirect
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import audit, sessions
from posturio.platform.db import switch_tenant

# Failed sign-ins allowed per address+email in the window before a pause.
LOGIN_FAILURES_ALLOWED = 10
LOGIN_WINDOW_S = 900


async def too_many_failures(redis: Redis, key: str) -> bool:
    count = await redis.get(key)
    return count is not None and int(count) >= LOGIN_FAILURES_ALLOWED


async def note_failure(redis: Redis, key: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, LOGIN_WINDOW_S)
        await pipe.execute()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sso_only_tenants(db: AsyncSession, tenant_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tenants refuse passwords (single sign-on only)."""
    rows = await db.execute(
        text("SELECT tenant_id FROM posturio_sso_only_tenants(:t)"), {"t": tenant_ids}
    )
    return {r.tenant_id for r in rows}


async def start_session(
    request: Request,
    db: AsyncSession,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    *,
    method: str,
    action: str = audit.SIGN_IN,
) -> Redirect:
    """Signed in: audited, and the session starts under a new id (a session id chosen
    before sign-in, by anyone, is worth nothing after it). An SSO session stays in the
    tenant whose identity provider vouched for it."""
    await switch_tenant(db, tenant_id)
    await audit.record_auth(
        db, tenant_id, action=action, user_id=user_id, method=method, client=client_address(request)
    )
    data = {"user_id": str(user_id), "tenant_id": str(tenant_id), "method": method}
    if method == "sso":
        data["bound"] = str(tenant_id)
    sessions.begin(request, data)
    return Redirect("/console", status_code=303)


async def sign_in_failed(
    request: Request,
    db: AsyncSession,
    tenant_ids: list[uuid.UUID],
    *,
    user_id: uuid.UUID | None,
    method: str,
    reason: str,
    email: str = "",
) -> None:
    """Audited in each tenant concerned (an address nobody has concerns none)."""
    for tenant_id in tenant_ids:
        await switch_tenant(db, tenant_id)
        await audit.record_auth(
            db,
            tenant_id,
            action=audit.SIGN_IN_FAILED,
            user_id=user_id,
            method=method,
            client=client_address(request),
            reason=reason,
            email=email[:320],
        )
