"""Who is calling: a tenant, a role, and what they may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform.errors import Forbidden
from posturio.platform.models import ROLE_RANK, Role, Tenant

OPERATOR = "cli"  # the platform operator's actor name (the CLI, on the server)
SIGNUP = "signup"  # public signup issuing a new demo tenant its key


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    role: Role
    actor: str  # "user:<id>", "key:<prefix>" or "cli" — as written to the audit log
    user_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_operator(self) -> bool:
        """The platform operator (CLI, start-up bootstrap), trusted across tenants."""
        return self.actor == OPERATOR or self.actor.startswith("system:")

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, role: Role) -> None:
        if not self.at_least(role):
            raise Forbidden(f"this action needs the {role.value} role (you are {self.role.value})")


async def require_standard_plan(session: AsyncSession, principal: Principal, what: str) -> None:
    """Demo tenants (public signup) get one key and the built-in models: no new keys,
    routes or upstream credentials (a route is an outbound request to any URL). The
    operator may still act on them."""
    if principal.actor in (OPERATOR, SIGNUP):
        return
    plan = await session.scalar(select(Tenant.plan).where(Tenant.id == principal.tenant_id))
    if plan == "demo":
        raise Forbidden(f"{what} is not available on the demo plan", code="demo_plan")
