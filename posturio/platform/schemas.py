"""Request and response bodies of the platform's admin API (msgspec: strict, fast)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from posturio.platform.models import Role, Scope

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
# A group of members (e.g. "finance"): Navigator sources limited to groups answer only them.
Group = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Groups = Annotated[list[Group], msgspec.Meta(max_length=50)]


class TenantOut(msgspec.Struct):
    id: str
    name: str
    slug: str
    created_at: datetime
    limits_fail_open: bool


class TenantUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    # When Redis (rate limits, budgets) is unreachable: keep serving (true) or refuse (false).
    limits_fail_open: bool | None = None


class MemberCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = Role.member
    # A new account's first password (min 10 chars); existing accounts are invited instead.
    password: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    groups: Groups = []


class InvitationCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: Role = Role.member
    groups: Groups = []


class InvitationOut(msgspec.Struct):
    id: str
    email: str
    role: str
    groups: list[str]
    invited_by: str
    created_at: datetime
    expires_at: datetime
    # Only in the answer that creates it: the one-time link to hand to the person.
    accept_url: str | None = None


class MemberUpdate(msgspec.Struct, forbid_unknown_fields=True):
    role: Role | None = None
    groups: Groups | None = None


class MemberOut(msgspec.Struct):
    id: str
    user_id: str
    email: str
    role: str
    created_at: datetime
    groups: list[str] = []
    active: bool = True  # False: deactivated through SCIM (cannot sign in, keys stopped)


Alias = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
PerMinute = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Budget = Annotated[float, msgspec.Meta(ge=0, le=10_000_000)]  # USD


class KeyLimits(msgspec.Struct, forbid_unknown_fields=True):
    """Gateway settings of a key: limits (null means unlimited: every alias, no rate or
    budget) and tags that policy rules can match on."""

    allowed_models: list[Alias] | None = None
    rpm_limit: PerMinute | None = None
    tpm_limit: PerMinute | None = None
    monthly_budget_usd: Budget | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] = []


class KeyCreate(KeyLimits, forbid_unknown_fields=True, kw_only=True):
    name: Name
    scopes: list[Scope] = msgspec.field(default_factory=lambda: [Scope.gateway])
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class KeyRevoke(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class KeyOut(msgspec.Struct):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    status: str
    allowed_models: list[str] | None
    rpm_limit: int | None
    tpm_limit: int | None
    monthly_budget_usd: Decimal | None
    tags: list[str]


class KeyCreated(msgspec.Struct):
    key: KeyOut
    # The full key. Shown here once; only a hash is stored.
    secret: str


class AuditEventOut(msgspec.Struct):
    id: int
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    data: dict[str, Any]
    hash: str


class AuditPage(msgspec.Struct):
    items: list[AuditEventOut]
    # Pass as before_seq to get the next (older) page; null at the end.
    next_before_seq: int | None


class ChainReportOut(msgspec.Struct):
    tenant_id: str
    ok: bool
    checked: int
    broken_seq: int | None
    broken_id: int | None
    reason: str | None
