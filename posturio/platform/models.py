"""ORM models of the platform layer: tenants, users, memberships, API keys, audit."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from posturio.platform.db import Base, utcnow


class Role(enum.StrEnum):
    owner = "owner"
    admin = "admin"
    reviewer = "reviewer"
    member = "member"


ROLE_RANK = {Role.member: 0, Role.reviewer: 1, Role.admin: 2, Role.owner: 3}


class Scope(enum.StrEnum):
    """What a key may do. On /api a key acts with the role its scopes say: `admin` as an
    admin, `review` as a reviewer (the review queue, the request log, reading the policy);
    a key with neither is refused there."""

    gateway = "gateway"  # /v1 API (and Navigator's reader API)
    review = "review"  # /api as a reviewer
    admin = "admin"  # /api as an admin


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


class Tenant(Base):
    """The platform's registry of tenants (global table; tenant-owned tables point here)."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When Redis (rate limits, budgets) is unreachable: serve anyway (True) or refuse (False).
    limits_fail_open: Mapped[bool] = mapped_column(default=True)
    plan: Mapped[str] = mapped_column(String(20), default="standard")  # standard | demo


class User(Base):
    """A person; may belong to several tenants through memberships (global table)."""

    __tablename__ = "users"
    __table_args__ = (Index("uq_users_email_lower", func.lower("email"), unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    email: Mapped[str] = mapped_column(String(320))
    # argon2id; None for an invited user who has not set a password yet.
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint("role IN ('owner', 'admin', 'reviewer', 'member')", name="role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Navigator sources limited to groups answer only members of one of them.
    groups: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    # False: deprovisioned (SCIM). The row stays so reactivation restores it, but an
    # inactive member cannot sign in to this tenant.
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # The profile the SCIM client sent (name, e-mails, externalId), echoed back to it;
    # never the source of identity or access.
    scim: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )


class Invitation(Base):
    """An offer to join a tenant, accepted by whoever holds the one-time link and can sign
    in as the invited address (or, with no account yet, chooses its password)."""

    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_tenant_email", "tenant_id", "email"),
        CheckConstraint("role IN ('owner', 'admin', 'reviewer', 'member')", name="role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    groups: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    invited_by: Mapped[str] = mapped_column(String(200))  # the audit actor
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > utcnow()


class ApiKey(Base):
    """A tenant API key: the public prefix identifies it; only a hash of the secret is kept."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Gateway limits; None means unlimited / every alias.
    allowed_models: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)))
    rpm_limit: Mapped[int | None] = mapped_column()
    tpm_limit: Mapped[int | None] = mapped_column()
    monthly_budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 4))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)


class AuditEvent(Base):
    """Append-only; each row holds the hash of its tenant's previous row."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("tenant_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class OutboxEmail(Base):
    """A message the platform would send (email verification, …). No mail server is needed
    to evaluate: the operator sees pending messages with `posturio outbox list`."""

    __tablename__ = "email_outbox"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    to_address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SsoConfig(Base):
    """A tenant's OpenID Connect single sign-on (one per tenant)."""

    __tablename__ = "sso_configs"
    __table_args__ = (
        CheckConstraint("default_role IN ('admin', 'reviewer', 'member')", name="default_role"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(500))
    client_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)  # SecretBox
    email_domains: Mapped[list[str]] = mapped_column(ARRAY(String(253)))
    groups_claim: Mapped[str] = mapped_column(String(100), default="groups")
    role_map: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict)  # IdP group -> role
    # IdP group -> Navigator source groups (memberships.groups)
    group_map: Mapped[dict[str, list[str]]] = mapped_column(JSONB, default=dict)
    default_role: Mapped[str | None] = mapped_column(String(20))  # None: no mapped group, no entry
    sso_only: Mapped[bool] = mapped_column(default=False)
    enabled: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScimToken(Base):
    """A tenant's SCIM bearer token (one per tenant; only its hash is kept)."""

    __tablename__ = "scim_tokens"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    prefix: Mapped[str] = mapped_column(String(16))  # public: names the token in the audit
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_by: Mapped[str] = mapped_column(String(200))  # the audit actor
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScimGroup(Base):
    """A group the identity provider pushes; its members' Navigator groups (and, through
    the SSO role mapping, roles) follow it."""

    __tablename__ = "scim_groups"
    __table_args__ = (
        Index("uq_scim_groups_tenant_name", "tenant_id", text("lower(display_name)"), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScimGroupMember(Base):
    __tablename__ = "scim_group_members"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scim_groups.id", ondelete="CASCADE"), primary_key=True
    )
    membership_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True, index=True
    )
