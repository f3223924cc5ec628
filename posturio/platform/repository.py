"""The one scoping helper: every query on a tenant-owned table goes through here."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Delete, Select, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform.errors import NotFound

M = TypeVar("M")


def scoped(model: type[M], tenant_id: uuid.UUID) -> Select[M]:
    """SELECT model rows of one tenant (RLS enforces the same thing again)."""
    return select(model).where(model.tenant_id == tenant_id)  # type: ignore[attr-defined]


def scoped_update(model: type[Any], tenant_id: uuid.UUID) -> Update:
    return update(model).where(model.tenant_id == tenant_id)


def scoped_delete(model: type[Any], tenant_id: uuid.UUID) -> Delete:
    return delete(model).where(model.tenant_id == tenant_id)


async def get_scoped(
    session: AsyncSession, model: type[M], tenant_id: uuid.UUID, object_id: Any, what: str
) -> M:
    """One row of the tenant's by id; another tenant's id is indistinguishable from none."""
    try:
        object_id = uuid.UUID(str(object_id))
    except ValueError:
        raise NotFound(f"{what} not found") from None
    row = (
        await session.scalars(scoped(model, tenant_id).where(model.id == object_id))  # type: ignore[attr-defined]
    ).first()
    if row is None:
        raise NotFound(f"{what} not found")
    return row
