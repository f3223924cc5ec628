"""API keys: create (secret shown once), list, revoke; the service layer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import Conflict, Forbidden, NotFound, PosturioError
from posturio.platform.keyauth import scopes_for_role
from posturio.platform.models import ApiKey, Role, Scope
from posturio.platform.principal import Principal, require_standard_plan
from posturio.platform.repository import get_scoped, scoped, scoped_update
from posturio.platform.schemas import KeyLimits
from posturio.platform.security import generate_api_key

MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: ApiKey
    plaintext: str


def parse_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise PosturioError("a key needs at least one scope", code="invalid_scopes")
    valid = {s.value for s in Scope}
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise PosturioError(
            f"unknown scope(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}",
            code="invalid_scopes",
        )
    return sorted(set(scopes))


async def create_key(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    scopes: list[str],
    expires_in_days: int | None = None,
    limits: KeyLimits | None = None,
) -> CreatedKey:
    name = name.strip()
    if not name or len(name) > 200:
        raise PosturioError("key name must be 1-200 characters", code="invalid_name")
    clean_scopes = parse_scopes(scopes)
    # Members may make gateway keys for themselves; admin keys need an admin.
    principal.require(Role.admin if Scope.admin.value in clean_scopes else Role.member)
    _require_grantable(principal, clean_scopes)
    await require_standard_plan(session, principal, "creating API keys")
    expires_at: datetime | None = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise PosturioError(
                f"expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}", code="invalid_expiry"
            )
        expires_at = utcnow() + timedelta(days=expires_in_days)
    new = generate_api_key()
    key = ApiKey(
        tenant_id=principal.tenant_id,
        name=name,
        prefix=new.prefix,
        secret_hash=new.secret_hash,
        scopes=clean_scopes,
        created_by=await _creator(session, principal),
        expires_at=expires_at,
    )
    _apply_limits(key, limits or KeyLimits())
    session.add(key)
    await session.flush()
    await audit.by(
        session,
        principal,
        action="key.create",
        target_type="api_key",
        target_id=key.id,
        data={
            "name": name,
            "prefix": new.prefix,
            "scopes": clean_scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
            **_limits_record(key),
        },
    )
    return CreatedKey(key, new.plaintext)


def _require_grantable(principal: Principal, scopes: list[str]) -> None:
    """A new key holds no more than its maker: their role's scopes, and a key that mints a
    key only what it holds itself (already cut to its creator's current role)."""
    allowed = scopes_for_role(principal.role)
    if principal.key_id is not None:
        allowed &= principal.scopes
    beyond = sorted(set(scopes) - allowed)
    if beyond:
        raise Forbidden(f"you may not create a key with the scope(s) {', '.join(beyond)}")


async def _creator(session: AsyncSession, principal: Principal) -> uuid.UUID | None:
    """The person a new key answers to: the signed-in user, or the creator of the key that
    made it, so a key minted by a key is bounded by the same membership."""
    if principal.user_id is not None or principal.key_id is None:
        return principal.user_id
    return await session.scalar(
        scoped(ApiKey, principal.tenant_id)
        .where(ApiKey.id == principal.key_id)
        .with_only_columns(ApiKey.created_by)
    )


def key_status(key: ApiKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= utcnow():
        return "expired"
    return "active"


def _visible(principal: Principal, key: ApiKey) -> bool:
    # Members see and manage only the keys they created; admins see all of the tenant's.
    # A key below admin is nobody's user: it sees none (never the operator's, made by no one).
    if principal.at_least(Role.admin):
        return True
    return principal.user_id is not None and key.created_by == principal.user_id


KEY_STATUSES = ("active", "expired", "revoked")


async def list_keys(
    session: AsyncSession,
    principal: Principal,
    *,
    include_revoked: bool = True,
    status: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[ApiKey]:
    """Newest first; optionally one status (as `key_status` computes it), a name or prefix
    substring, and a page (`limit`/`offset`) so the console never loads every key."""
    stmt = scoped(ApiKey, principal.tenant_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    if not principal.at_least(Role.admin):
        if principal.user_id is None:
            return []
        stmt = stmt.where(ApiKey.created_by == principal.user_id)
    now = utcnow()
    lapsed = ApiKey.expires_at.is_not(None) & (ApiKey.expires_at <= now)
    if status == "revoked":
        stmt = stmt.where(ApiKey.revoked_at.is_not(None))
    elif status == "expired":
        stmt = stmt.where(ApiKey.revoked_at.is_(None), lapsed)
    elif status == "active":
        stmt = stmt.where(ApiKey.revoked_at.is_(None), ~lapsed)
    if search:
        stmt = stmt.where(
            ApiKey.name.icontains(search, autoescape=True)
            | ApiKey.prefix.icontains(search, autoescape=True)
        )
    stmt = stmt.order_by(ApiKey.created_at.desc(), ApiKey.id).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt)).all())


async def get_key(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    key = await get_scoped(session, ApiKey, principal.tenant_id, key_id, "API key")
    if not _visible(principal, key):
        raise NotFound("API key not found")
    return key


async def revoke_key(
    session: AsyncSession, principal: Principal, key_id: str, *, reason: str | None = None
) -> ApiKey:
    key = await get_key(session, principal, key_id)
    if key.revoked_at is not None:
        raise Conflict("this key is already revoked")
    await _revoke(session, principal, key, reason)
    return key


async def revoke_keys_of(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, reason: str
) -> list[str]:
    """Revoke every live key a person made in this tenant (their personal keys, when
    they are deprovisioned); the prefixes revoked."""
    stmt = scoped(ApiKey, principal.tenant_id).where(
        ApiKey.created_by == user_id, ApiKey.revoked_at.is_(None)
    )
    keys = (await session.scalars(stmt)).all()
    for key in keys:
        await _revoke(session, principal, key, reason)
    return [key.prefix for key in keys]


async def _revoke(
    session: AsyncSession, principal: Principal, key: ApiKey, reason: str | None
) -> None:
    key.revoked_at = utcnow()
    await audit.by(
        session,
        principal,
        action="key.revoke",
        target_type="api_key",
        target_id=key.id,
        data={"prefix": key.prefix, "reason": reason},
    )


async def extend_key(
    session: AsyncSession, principal: Principal, key_id: str, *, days: int
) -> ApiKey:
    """Push a key's expiry `days` further (from now if it already expired)."""
    principal.require(Role.admin)
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise PosturioError(f"days must be between 1 and {MAX_EXPIRY_DAYS}", code="invalid_expiry")
    key = await get_key(session, principal, key_id)
    before = key.expires_at
    key.expires_at = max(before or utcnow(), utcnow()) + timedelta(days=days)
    await audit.by(
        session,
        principal,
        action="key.extend",
        target_type="api_key",
        target_id=key.id,
        data={
            "prefix": key.prefix,
            "from": before.isoformat() if before else None,
            "to": key.expires_at.isoformat(),
        },
    )
    return key


def _apply_limits(key: ApiKey, limits: KeyLimits) -> None:
    key.allowed_models = (
        sorted(set(limits.allowed_models)) if limits.allowed_models is not None else None
    )
    key.rpm_limit = limits.rpm_limit
    key.tpm_limit = limits.tpm_limit
    key.monthly_budget_usd = (
        None if limits.monthly_budget_usd is None else Decimal(str(limits.monthly_budget_usd))
    )
    key.tags = sorted(set(limits.tags))


def _limits_record(key: ApiKey) -> dict[str, object]:
    return {
        "allowed_models": key.allowed_models,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "monthly_budget_usd": str(key.monthly_budget_usd)
        if key.monthly_budget_usd is not None
        else None,
        "tags": key.tags,
    }


async def set_limits(
    session: AsyncSession, principal: Principal, key_id: str, limits: KeyLimits
) -> ApiKey:
    """Replace a key's gateway limits (admins only: a member cannot lift their own)."""
    principal.require(Role.admin)
    key = await get_key(session, principal, key_id)
    before = _limits_record(key)
    _apply_limits(key, limits)
    await audit.by(
        session,
        principal,
        action="key.limits",
        target_type="api_key",
        target_id=key.id,
        data={"prefix": key.prefix, "from": before, "to": _limits_record(key)},
    )
    return key


async def touch_last_used(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID, used_at: datetime
) -> None:
    """Record use without ever moving last_used_at backwards (jobs may arrive out of order)."""
    await session.execute(
        scoped_update(ApiKey, tenant_id)
        .where(ApiKey.id == key_id)
        .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < used_at))
        .values(last_used_at=used_at)
    )
