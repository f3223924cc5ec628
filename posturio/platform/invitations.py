"""Invitations: the only way a person who already has an account joins another tenant.

Accounts are global (one person, one password, several tenants), so no tenant may attach
an existing account to itself or choose its password: the tenant's admin creates an
invitation and hands the one-time link to the person; whoever opens it must then sign
in as the invited address (or, when the address has no account yet, choose its
password). Holding the link alone is not enough for an existing account, and knowing an
account's password alone is not enough to join a tenant. Only a hash of the token is
kept; the link is shown to the admin once.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import accounts, audit
from posturio.platform.db import switch_tenant, utcnow
from posturio.platform.errors import Conflict, NotFound, PosturioError
from posturio.platform.models import Invitation, Membership, Role, Tenant, User
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped, scoped
from posturio.platform.security import hash_password, hash_secret

VALID_FOR = timedelta(days=7)
ACCEPT_PATH = "/invite/"


@dataclass(frozen=True, slots=True)
class NewInvitation:
    invitation: Invitation
    token: str  # shown once, never stored

    @property
    def accept_path(self) -> str:
        return ACCEPT_PATH + self.token


async def invite(
    session: AsyncSession,
    principal: Principal,
    email: str,
    role: Role,
    groups: list[str] | None = None,
) -> NewInvitation:
    principal.require(Role.admin)
    if role == Role.owner:
        principal.require(Role.owner)
    email = accounts.normalise_email(email)
    user = await accounts.user_by_email(session, email)
    if user is not None and await _membership(session, principal.tenant_id, user.id):
        raise Conflict(f"{email} is already a member")
    # One open invitation per address: a new one replaces (and disables) the old link.
    await accounts.close_invitations(session, principal.tenant_id, email)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        tenant_id=principal.tenant_id,
        email=email,
        role=role.value,
        groups=sorted(set(groups or [])),
        token_hash=hash_secret(token),
        invited_by=principal.actor,
        expires_at=utcnow() + VALID_FOR,
    )
    session.add(invitation)
    await session.flush()
    await audit.by(
        session,
        principal,
        action="member.invite",
        target_type="invitation",
        target_id=invitation.id,
        data={"email": email, "role": role.value, "groups": invitation.groups},
    )
    return NewInvitation(invitation, token)


async def pending(session: AsyncSession, principal: Principal) -> list[Invitation]:
    principal.require(Role.admin)
    stmt = scoped(Invitation, principal.tenant_id).where(
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > utcnow(),
    )
    return list((await session.scalars(stmt.order_by(Invitation.created_at))).all())


async def revoke(session: AsyncSession, principal: Principal, invitation_id: str) -> None:
    principal.require(Role.admin)
    invitation = await get_scoped(
        session, Invitation, principal.tenant_id, invitation_id, "invitation"
    )
    if not invitation.pending:
        raise Conflict("this invitation is no longer open")
    invitation.revoked_at = utcnow()
    await audit.by(
        session,
        principal,
        action="member.invite_revoke",
        target_type="invitation",
        target_id=invitation.id,
        data={"email": invitation.email},
    )


@dataclass(frozen=True, slots=True)
class OpenInvitation:
    invitation: Invitation
    tenant_name: str
    has_account: bool  # accept by signing in (True) or by choosing a password (False)


async def find(session: AsyncSession, token: str) -> OpenInvitation:
    """The open invitation behind a link, with the session switched to its tenant; the
    same 404 for an unknown, used, revoked or expired link."""
    row = (
        await session.execute(
            text("SELECT id, tenant_id FROM posturio_invitation_by_token(:h)"),
            {"h": hash_secret(token)},
        )
    ).first()
    if row is None:
        raise NotFound("this invitation link is not valid (used, revoked or expired)")
    await switch_tenant(session, row.tenant_id)
    invitation = await session.get(Invitation, row.id)
    if invitation is None or not invitation.pending:
        raise NotFound("this invitation link is not valid (used, revoked or expired)")
    tenant_name = await session.scalar(select(Tenant.name).where(Tenant.id == row.tenant_id))
    user = await accounts.user_by_email(session, invitation.email)
    return OpenInvitation(invitation, tenant_name or "", user is not None and _usable(user))


def _usable(user: User) -> bool:
    return user.password_hash is not None


class WrongCredentials(PosturioError):
    def __init__(self) -> None:
        super().__init__(
            "Wrong password for this address.", code="invalid_credentials", status_code=401
        )


async def accept(session: AsyncSession, found: OpenInvitation, password: str) -> User:
    """Join the tenant as the invited address. An existing account proves itself with its
    own password; an address without an account (or one that never had a password set)
    gets the password chosen here. Single use: the link is spent on success."""
    invitation = found.invitation
    user = await accounts.user_by_email(session, invitation.email)
    if user is not None and _usable(user):
        if await accounts.authenticate(session, invitation.email, password) is None:
            raise WrongCredentials()
    else:
        accounts.check_password(password)
        hashed = await asyncio.to_thread(hash_password, password)
        if user is None:
            user = User(email=invitation.email, password_hash=hashed)
            session.add(user)
            await session.flush()
        elif await accounts.memberships_of(session, user.id, inactive=True):
            # An account some tenant created without a password: only the operator may
            # give it one, or another tenant's link could take over that membership.
            raise Conflict(
                "this account has no password yet: ask your administrator to set one",
                code="account_needs_password",
            )
        else:
            user.password_hash = hashed
    if await _membership(session, invitation.tenant_id, user.id):
        raise Conflict(f"{invitation.email} is already a member")
    membership = Membership(
        tenant_id=invitation.tenant_id,
        user_id=user.id,
        role=invitation.role,
        groups=list(invitation.groups),
    )
    session.add(membership)
    invitation.accepted_at = utcnow()
    await session.flush()  # before closing the address's other links: this one is spent
    await accounts.close_invitations(session, invitation.tenant_id, invitation.email)
    await audit.record(
        session,
        invitation.tenant_id,
        actor=f"user:{user.id}",
        action="member.accept",
        target_type="membership",
        target_id=membership.id,
        data={"email": user.email, "role": invitation.role, "invitation": str(invitation.id)},
    )
    return user


async def _membership(session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    stmt = scoped(Membership, tenant_id).where(Membership.user_id == user_id)
    return (await session.scalars(stmt)).first() is not None
