"""Who is calling: a tenant, a role, and what they may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from posturio.platform.errors import Forbidden
from posturio.platform.models import ROLE_RANK, Role


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: uuid.UUID
    role: Role
    actor: str  # "user:<id>", "key:<prefix>" or "cli" — as written to the audit log
    user_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, role: Role) -> None:
        if not self.at_least(role):
            raise Forbidden(f"this action needs the {role.value} role (you are {self.role.value})")
