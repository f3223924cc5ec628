"""API key authentication for the hot path: an in-process cache in front of Postgres.

A hit costs one hash and a dict lookup. Entries live `ttl` seconds; a revocation is
broadcast on Redis and drops the entry in every process at once. Last-use times are
written by a background job at most once a minute per key, never inline.

A key is worth no more than its creator's current membership: the lookup reads the
creator's role in the key's tenant, a removed creator's key is refused and the scopes are
cut to what that role may hold (a role change or removal broadcasts ALL_KEYS). Keys the
operator made (no creator) keep their own scopes.

Without Postgres, a known key is served from the cache past its TTL (up to
STALE_IF_ERROR_S); revocations still arrive through Redis. An unknown key raises the
database error, which the error handlers answer with 503 and Retry-After.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from litestar.datastructures import Headers
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.platform.db import (
    DB_RETRY_AFTER_S,
    STALE_IF_ERROR_S,
    database_unreachable,
    switch_tenant,
)
from posturio.platform.errors import Unauthorized
from posturio.platform.invalidation import KEYS, publish
from posturio.platform.models import ROLE_RANK, Role, Scope
from posturio.platform.security import secret_matches, split_api_key

log = structlog.get_logger("posturio.keyauth")
LAST_USED_GRANULARITY_S = 60.0
UNKNOWN_PREFIX_TTL_S = 5.0
ALL_KEYS = "*"  # an invalidation of every cached key (a tenant-wide setting changed)

# The creator's current role in the key's tenant (None: no longer a member), read in the
# key's own tenant so row-level security applies.
_CREATOR = text(
    "SELECT k.created_by, m.role FROM api_keys k LEFT JOIN memberships m"
    " ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by WHERE k.id = :id"
)


# The least role that may hold each scope; on /api a scope acts with that role.
_SCOPE_ROLE = {Scope.gateway: Role.member, Scope.review: Role.reviewer, Scope.admin: Role.admin}


def scopes_for_role(role: Role) -> frozenset[str]:
    """The scopes a member in `role` may hold: the admin scope needs admin or owner, the
    review scope a reviewer or above."""
    return frozenset(
        s.value for s, least in _SCOPE_ROLE.items() if ROLE_RANK[role] >= ROLE_RANK[least]
    )


def role_for_scopes(scopes: frozenset[str]) -> Role | None:
    """The role a key acts with on /api: the highest its scopes say (None: no /api role)."""
    roles = [least for s, least in _SCOPE_ROLE.items() if s is not Scope.gateway and s in scopes]
    return max(roles, key=ROLE_RANK.__getitem__, default=None)


@dataclass(slots=True)
class CachedKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    prefix: str
    secret_hash: bytes
    scopes: frozenset[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    allowed_models: frozenset[str] | None
    rpm_limit: int | None
    tpm_limit: int | None
    monthly_budget_usd: Decimal | None
    limits_fail_open: bool
    loaded_at: float
    tags: frozenset[str] = frozenset()
    plan: str = "standard"  # the tenant's plan (demo tenants come from public signup)
    creator_removed: bool = False  # made by someone who is no longer a member


def bearer_or_key(authorization: str | None, api_key: str | None) -> str | None:
    """OpenAI-style `Authorization: Bearer`, else Azure's `api-key` / `x-api-key`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    return api_key or None


def token_from_headers(headers: Headers) -> str | None:
    return bearer_or_key(
        headers.get("authorization"), headers.get("api-key") or headers.get("x-api-key")
    )


class KeyAuthenticator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float,
        max_entries: int = 20_000,
        on_used: Callable[[CachedKey, datetime], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl_s
        self._max = max_entries
        self._cache: OrderedDict[str, CachedKey] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._on_used = on_used
        # While the database is known to be down, stale entries are served without
        # trying it on every request.
        self._db_retry_at = 0.0

    async def authenticate(self, token: str | None) -> CachedKey:
        if not token:
            raise Unauthorized("missing API key (send Authorization: Bearer <key>)")
        parts = split_api_key(token)
        if parts is None:
            raise Unauthorized("invalid API key")
        prefix, secret = parts
        key = await self._lookup(prefix)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise Unauthorized("invalid API key")
        return self._usable(key)

    async def for_session(self, prefix: str, tenant_id: uuid.UUID) -> CachedKey:
        """A key used on behalf of a signed-in user (the playground): the session is the
        credential, the key is what the request is metered and limited as."""
        key = await self._lookup(prefix)
        if key is None or key.tenant_id != tenant_id:
            raise Unauthorized("the playground key is gone; sign in again")
        return self._usable(key)

    def _usable(self, key: CachedKey) -> CachedKey:
        now = datetime.now(UTC)
        if key.revoked_at is not None:
            raise Unauthorized("this API key has been revoked", code="key_revoked")
        if key.creator_removed:
            raise Unauthorized(
                "the key's creator is no longer a member of this tenant", code="creator_removed"
            )
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthorized("this API key has expired", code="key_expired")
        self._note_use(key, now)
        return key

    async def _lookup(self, prefix: str) -> CachedKey | None:
        now = time.monotonic()
        entry = self._cache.get(prefix)
        if entry is not None and now - entry.loaded_at < self._ttl:
            self._cache.move_to_end(prefix)
            return entry
        missed = self._misses.get(prefix)
        if missed is not None and now - missed < UNKNOWN_PREFIX_TTL_S:
            return None  # a flood of made-up keys must not become a flood of queries
        stale = entry is not None and now - entry.loaded_at < self._ttl + STALE_IF_ERROR_S
        if stale and now < self._db_retry_at:
            return entry
        try:
            loaded = await self._load(prefix)
        except Exception as exc:
            if not (stale and database_unreachable(exc)):
                raise
            self._db_retry_at = now + DB_RETRY_AFTER_S
            log.warning("key_served_stale", key=prefix, error=type(exc).__name__)
            return entry
        if loaded is None:
            self._cache.pop(prefix, None)
            self._misses[prefix] = now
            while len(self._misses) > self._max:
                self._misses.popitem(last=False)
            return None
        self._cache[prefix] = loaded
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return loaded

    async def _load(self, prefix: str) -> CachedKey | None:
        async with self._sessionmaker() as session:
            row = (
                await session.execute(
                    text("SELECT * FROM posturio_api_key_by_prefix(:p)"), {"p": prefix}
                )
            ).first()
            if row is None:
                return None
            await switch_tenant(session, row.tenant_id)
            creator = (await session.execute(_CREATOR, {"id": row.id})).one()
        scopes = frozenset(row.scopes)
        removed = False
        if creator.created_by is not None:  # None: the operator's CLI made it
            removed = creator.role is None
            if not removed:
                scopes &= scopes_for_role(Role(creator.role))
        return CachedKey(
            id=row.id,
            tenant_id=row.tenant_id,
            prefix=prefix,
            secret_hash=bytes(row.secret_hash),
            scopes=scopes,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            allowed_models=None if row.allowed_models is None else frozenset(row.allowed_models),
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
            monthly_budget_usd=row.monthly_budget_usd,
            limits_fail_open=row.limits_fail_open,
            loaded_at=time.monotonic(),
            tags=frozenset(row.tags),
            plan=row.plan,
            creator_removed=removed,
        )

    def _note_use(self, key: CachedKey, now: datetime) -> None:
        if (
            key.last_used_at is not None
            and (now - key.last_used_at).total_seconds() < LAST_USED_GRANULARITY_S
        ):
            return
        key.last_used_at = now
        if self._on_used is not None:
            try:
                self._on_used(key, now)
            except Exception as exc:
                log.warning("last_used_not_recorded", key=key.prefix, error=str(exc))

    def invalidate(self, prefix: str | None = None) -> None:
        if prefix is None or prefix == ALL_KEYS:
            self._cache.clear()
            self._misses.clear()
        else:
            self._cache.pop(prefix, None)
            self._misses.pop(prefix, None)


async def broadcast_key_change(redis: Redis, prefix: str) -> None:
    """Every process drops this key from its cache (revocation, new limits)."""
    await publish(redis, KEYS, prefix)
