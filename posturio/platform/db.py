"""Database engine, sessions and the tenant context that row-level security reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import MetaData, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction

from posturio.config import Settings

# The role the application runs as. It owns nothing and cannot bypass row-level
# security, whatever login the database URL names (migrations create it).
APP_ROLE = "posturio_app"
TENANT_GUC = "posturio.tenant_id"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(settings: Settings, *, as_owner: bool = False) -> AsyncEngine:
    """The app engine runs every connection as APP_ROLE; `as_owner` is for migrations."""
    server_settings = {
        "application_name": "posturio",
        "statement_timeout": str(settings.db_statement_timeout_ms),
    }
    if not as_owner:
        server_settings["role"] = APP_ROLE
    return create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_timeout=settings.db_connect_timeout_s,
        pool_pre_ping=True,
        connect_args={"timeout": settings.db_connect_timeout_s, "server_settings": server_settings},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# set_config(..., true) is SET LOCAL: it ends with the transaction, so a pooled
# connection never carries one tenant's context into another's request.
_SET_TENANT = text("SELECT set_config(:guc, :tenant, true)")


def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Scope every transaction of this session to one tenant (row-level security)."""
    session.info["tenant_id"] = tenant_id


async def switch_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """bind_tenant, applied to the transaction already open too (e.g. a tenant just created)."""
    bind_tenant(session, tenant_id)
    await session.execute(_SET_TENANT, {"guc": TENANT_GUC, "tenant": str(tenant_id)})


@event.listens_for(Session, "after_begin")
def _set_tenant_guc(session: Session, transaction: SessionTransaction, connection: object) -> None:
    tenant_id = session.info.get("tenant_id")
    if tenant_id is not None:
        connection.execute(  # type: ignore[attr-defined]
            _SET_TENANT, {"guc": TENANT_GUC, "tenant": str(tenant_id)}
        )


@asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID | None
) -> AsyncIterator[AsyncSession]:
    """A unit of work outside a request (CLI, workers): commit on success, rollback on error."""
    async with sessionmaker() as session:
        if tenant_id is not None:
            bind_tenant(session, tenant_id)
        async with session.begin():
            yield session
