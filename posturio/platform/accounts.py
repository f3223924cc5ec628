"""Tenants, users and memberships: the service layer (stateless, never commits)."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import audit
from posturio.platform.db import switch_tenant, utcnow
from posturio.platform.errors import Conflict, Forbidden, NotFound, PosturioError
from posturio.platform.models import Invitation, Membership, Role, Tenant, User
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped, scoped
from posturio.platform.security import hash_password, verify_password

MIN_PASSWORD = 10


def normalise_email(email: str, *, public: bool = False) -> str:
    """Syntax only (no DNS lookups): the domain lower-cased, the local part kept. Internal
    domains (corp.local, …) are fine for accounts an admin creates; `public` (signup)
    requires an address on the public internet."""
    try:
        return validate_email(
            email.strip(), check_deliverability=False, globally_deliverable=public
        ).normalized
    except EmailNotValidError as exc:
        raise PosturioError(
            f"not a valid email address: {exc} ({email[:80]!r})", code="invalid_email"
        ) from None


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PosturioError(
            f"password must be at least {MIN_PASSWORD} characters", code="weak_password"
        )


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
    return slug or "tenant"


async def create_tenant(
    session: AsyncSession, name: str, *, actor: str, plan: str = "standard"
) -> Tenant:
    name = name.strip()
    if not name or len(name) > 200:
        raise PosturioError("tenant name must be 1-200 characters", code="invalid_name")
    base = slugify(name)
    slug = base
    while (await session.scalar(select(func.count()).where(Tenant.slug == slug))) != 0:
        slug = f"{base}-{secrets.token_hex(3)}"
    tenant = Tenant(id=uuid.uuid4(), name=name, slug=slug, plan=plan)
    session.add(tenant)
    await session.flush()
    await switch_tenant(session, tenant.id)
    await audit.record(
        session,
        tenant.id,
        actor=actor,
        action="tenant.create",
        target_type="tenant",
        target_id=tenant.id,
        data={"name": name, "slug": slug, "plan": plan},
    )
    return tenant


async def update_tenant(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str | None = None,
    limits_fail_open: bool | None = None,
) -> Tenant:
    principal.require(Role.admin)
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    changes: dict[str, object] = {}
    if name is not None and name.strip() != tenant.name:
        changes["name"] = {"from": tenant.name, "to": name.strip()}
        tenant.name = name.strip()
    if limits_fail_open is not None and limits_fail_open != tenant.limits_fail_open:
        changes["limits_fail_open"] = {"from": tenant.limits_fail_open, "to": limits_fail_open}
        tenant.limits_fail_open = limits_fail_open
    if changes:
        await audit.record(
            session,
            tenant.id,
            actor=principal.actor,
            action="tenant.update",
            target_type="tenant",
            target_id=tenant.id,
            data=changes,
        )
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list((await session.scalars(select(Tenant).order_by(Tenant.created_at))).all())


async def get_tenant_by_ref(session: AsyncSession, ref: str) -> Tenant | None:
    """A tenant by id or slug (CLI convenience)."""
    try:
        return await session.get(Tenant, uuid.UUID(ref))
    except ValueError:
        return (await session.scalars(select(Tenant).where(Tenant.slug == ref))).first()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    stmt = select(User).where(func.lower(User.email) == email.strip().lower())
    return (await session.scalars(stmt)).first()


async def ensure_user(session: AsyncSession, email: str, password: str | None) -> User:
    email = normalise_email(email)
    user = await user_by_email(session, email)
    if user is None:
        if password is not None:
            check_password(password)
        hashed = await asyncio.to_thread(hash_password, password) if password else None
        user = User(email=email, password_hash=hashed)
        session.add(user)
        await session.flush()
    return user


async def close_invitations(session: AsyncSession, tenant_id: uuid.UUID, email: str) -> None:
    """Disable every open invitation link of `email` in the tenant (a new one replaces
    them, or the person became a member another way)."""
    stmt = scoped(Invitation, tenant_id).where(
        func.lower(Invitation.email) == email.lower(),
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
    )
    for invitation in (await session.scalars(stmt)).all():
        invitation.revoked_at = utcnow()


@dataclass(frozen=True, slots=True)
class MemberView:
    membership: Membership
    email: str


async def add_member(
    session: AsyncSession, principal: Principal, email: str, role: Role, password: str | None = None
) -> MemberView:
    """Add a member with a new account (created here, `password` its first one). An
    address that already has an account joins only through an invitation it accepts
    (see invitations.py): a tenant never attaches, nor sets the password of, an account
    it does not own. The operator may add existing accounts directly."""
    principal.require(Role.admin)
    if role == Role.owner:
        principal.require(Role.owner)
    email = normalise_email(email)
    user = await user_by_email(session, email)
    if user is not None:
        existing = (
            await session.scalars(
                scoped(Membership, principal.tenant_id).where(Membership.user_id == user.id)
            )
        ).first()
        if existing is not None:
            raise Conflict(f"{user.email} is already a member (role {existing.role})")
        if not principal.is_operator:
            raise Conflict(
                f"{user.email} cannot be added directly: invite them "
                "(POST /api/invitations) and they accept with their own sign-in",
                code="invite_required",
            )
        if password is not None:
            raise Conflict(
                f"{user.email} already has an account: its password is not set here",
                code="account_exists",
            )
    else:
        user = await ensure_user(session, email, password)
    membership = Membership(tenant_id=principal.tenant_id, user_id=user.id, role=role.value)
    session.add(membership)
    await close_invitations(session, principal.tenant_id, user.email)
    await session.flush()
    await audit.by(
        session,
        principal,
        action="member.add",
        target_type="membership",
        target_id=membership.id,
        data={"email": user.email, "role": role.value},
    )
    return MemberView(membership, user.email)


async def list_members(
    session: AsyncSession, principal: Principal, *, limit: int | None = None, offset: int = 0
) -> list[MemberView]:
    principal.require(Role.admin)
    stmt = (
        scoped(Membership, principal.tenant_id)
        .add_columns(User.email)
        .join(User, User.id == Membership.user_id)
        .order_by(Membership.created_at, Membership.id)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)  # a page, for the console
    rows = await session.execute(stmt)
    return [MemberView(m, email) for m, email in rows.all()]


async def member(session: AsyncSession, principal: Principal, membership_id: str) -> MemberView:
    membership = await get_scoped(session, Membership, principal.tenant_id, membership_id, "member")
    user = await session.get(User, membership.user_id)
    assert user is not None
    return MemberView(membership, user.email)


async def owner_count(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """Active owners: a deactivated owner cannot act for the tenant."""
    stmt = scoped(Membership, tenant_id).where(
        Membership.role == Role.owner.value, Membership.active.is_(True)
    )
    return int(await session.scalar(stmt.with_only_columns(func.count())) or 0)


async def change_role(
    session: AsyncSession, principal: Principal, membership_id: str, role: Role
) -> MemberView:
    principal.require(Role.admin)
    view = await member(session, principal, membership_id)
    old = Role(view.membership.role)
    if Role.owner in (old, role):
        principal.require(Role.owner)
    if (
        old == Role.owner
        and role != Role.owner
        and await owner_count(session, principal.tenant_id) <= 1
    ):
        raise Conflict("a tenant needs at least one owner")
    view.membership.role = role.value
    await audit.by(
        session,
        principal,
        action="member.role",
        target_type="membership",
        target_id=view.membership.id,
        data={"email": view.email, "from": old.value, "to": role.value},
    )
    return view


async def set_groups(
    session: AsyncSession, principal: Principal, membership_id: str, groups: list[str]
) -> MemberView:
    principal.require(Role.admin)
    view = await member(session, principal, membership_id)
    old, new = list(view.membership.groups or []), sorted(set(groups))
    view.membership.groups = new
    await audit.by(
        session,
        principal,
        action="member.groups",
        target_type="membership",
        target_id=view.membership.id,
        data={"email": view.email, "from": old, "to": new},
    )
    return view


async def remove_member(session: AsyncSession, principal: Principal, membership_id: str) -> None:
    principal.require(Role.admin)
    view = await member(session, principal, membership_id)
    if view.membership.role == Role.owner.value:
        principal.require(Role.owner)
        if await owner_count(session, principal.tenant_id) <= 1:
            raise Conflict("a tenant needs at least one owner")
    if principal.user_id == view.membership.user_id:
        raise Forbidden("you cannot remove yourself")
    await session.delete(view.membership)
    await audit.by(
        session,
        principal,
        action="member.remove",
        target_type="membership",
        target_id=view.membership.id,
        data={"email": view.email},
    )


@dataclass(frozen=True, slots=True)
class TenantAccess:
    tenant_id: uuid.UUID
    role: Role
    tenant_name: str


async def memberships_of(
    session: AsyncSession, user_id: uuid.UUID, *, inactive: bool = False
) -> list[TenantAccess]:
    """The tenants a user may sign in to (before any tenant context exists: login);
    `inactive` adds those that deactivated them (the account still belongs there)."""
    rows = await session.execute(
        text("SELECT tenant_id, role, tenant_name, active FROM posturio_user_memberships(:u)"),
        {"u": user_id},
    )
    return [
        TenantAccess(r.tenant_id, Role(r.role), r.tenant_name) for r in rows if r.active or inactive
    ]


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    user = await user_by_email(session, email)
    # argon2 costs tens of ms of CPU: off the event loop.
    stored = user.password_hash if user else None
    if not await asyncio.to_thread(verify_password, stored, password):
        return None
    assert user is not None
    user.last_login_at = utcnow()
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    check_password(password)
    user.password_hash = await asyncio.to_thread(hash_password, password)
