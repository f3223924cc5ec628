"""Request-scoped dependencies: who is calling, and one database session per request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import accounts
from posturio.platform.db import bind_tenant, commit, rollback, switch_tenant
from posturio.platform.errors import Forbidden, Unauthorized
from posturio.platform.keyauth import KeyAuthenticator, role_for_scopes, token_from_headers
from posturio.platform.models import Role, SsoConfig
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped

# Injected by name (Litestar resolves these from the layer's `dependencies`).
Db = NamedDependency[AsyncSession]
Caller = NamedDependency[Principal]


async def _unit_of_work(session: AsyncSession) -> AsyncGenerator[AsyncSession, None]:
    try:
        yield session
    except Exception:
        await rollback(session)
        raise
    # A failed commit propagates: the client gets an error, never a 2xx for lost work.
    await commit(session)


async def provide_db(state: State) -> AsyncGenerator[AsyncSession, None]:
    """A session with no tenant context (login, signup): RLS shows it no tenant rows."""
    async with state.sessionmaker() as session:
        async for s in _unit_of_work(session):
            yield s


async def provide_tenant_db(state: State, principal: Caller) -> AsyncGenerator[AsyncSession, None]:
    async with state.sessionmaker() as session:
        bind_tenant(session, principal.tenant_id)
        async for s in _unit_of_work(session):
            yield s


async def provide_api_principal(request: Request) -> Principal:
    """/api callers: a tenant API key acting with the role its scopes say (`admin` or
    `review`), its scopes already cut to what its creator may hold now."""
    authenticator: KeyAuthenticator = request.app.state.key_authenticator
    key = await authenticator.authenticate(token_from_headers(request.headers))
    role = role_for_scopes(key.scopes)
    if role is None:
        raise Forbidden(
            "this API key lacks the admin scope (or the review scope, to act as a reviewer)"
        )
    return Principal(
        tenant_id=key.tenant_id,
        role=role,
        actor=f"key:{key.prefix}",
        key_id=key.id,
        scopes=key.scopes,
    )


async def _sso_only(db: AsyncSession, tenant_id: uuid.UUID) -> bool:
    stmt = (
        scoped(SsoConfig, tenant_id)
        .where(SsoConfig.enabled.is_(True))
        .with_only_columns(SsoConfig.sso_only)
    )
    return bool(await db.scalar(stmt))


async def provide_console_principal(request: Request, db: Db) -> Principal:
    """Console callers: a signed-in user; the role is read fresh on every request."""
    user_id = request.session.get("user_id") if request.session else None
    tenant_id = request.session.get("tenant_id") if request.session else None
    if not user_id or not tenant_id:
        raise Unauthorized("sign in first", code="login_required")
    access = {a.tenant_id: a for a in await accounts.memberships_of(db, uuid.UUID(user_id))}
    current = access.get(uuid.UUID(tenant_id))
    bound = request.session.get("bound")
    if current is None or (bound and bound != tenant_id):
        request.clear_session()
        raise Unauthorized("your membership has ended; sign in again", code="login_required")
    # The page's session now works in this tenant (row-level security), this transaction
    # and any after a rollback.
    await switch_tenant(db, current.tenant_id)
    if (
        request.session.get("method", "password") == "password"
        and current.role != Role.owner
        and await _sso_only(db, current.tenant_id)
    ):
        request.clear_session()
        raise Unauthorized("this tenant signs in with single sign-on now", code="login_required")
    return Principal(
        tenant_id=current.tenant_id,
        role=current.role,
        actor=f"user:{user_id}",
        user_id=uuid.UUID(user_id),
    )
