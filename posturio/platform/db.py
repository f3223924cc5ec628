"""Database engine, sessions and the tenant context that row-level security reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
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

# Without Postgres: callers are told to retry after this long, and the hot path's caches
# (keys, routes, policies) keep serving what they hold for up to STALE_IF_ERROR_S past
# their TTL, trying the database again at most every DB_RETRY_AFTER_S.
DB_RETRY_AFTER_S = 5
STALE_IF_ERROR_S = 600.0
# SQLSTATEs of a server that is gone, going or refusing connections: class 08
# (connection exception), shutdown / crash / starting up, too many connections.
_OUTAGE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}

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


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (refused, reset, timed out, shut
    down, pool exhausted), as opposed to a bad query: a 503 to retry, never a 500."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        if isinstance(link, OSError | TimeoutError | PoolTimeoutError):
            return True
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, asyncpg.PostgresError):
            state = link.sqlstate or ""
            if state.startswith("08") or state in _OUTAGE_SQLSTATES:
                return True
        if isinstance(link, asyncpg.InterfaceError) and "closed" in str(link):
            return True  # "connection is closed": the server went away under it
        pending += [link.__cause__, link.__context__, getattr(link, "orig", None)]
    return False


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
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            # The server's statement_timeout ends a slow query; this one bounds a query
            # whose server stopped answering (no reset), so no request waits forever.
            "command_timeout": settings.db_statement_timeout_ms / 1000 + 5,
            "server_settings": server_settings,
        },
    )


AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "posturio_after_commit"


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once this session's transaction commits through `commit` (never on
    rollback): cache invalidations, jobs to enqueue, sessions to end. The one after-commit
    mechanism of requests, the CLI and workers alike."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run what waited for it. A failed commit raises before any callback."""
    await session.commit()
    for callback in session.info.pop(_AFTER_COMMIT, []):
        await callback()


async def rollback(session: AsyncSession) -> None:
    """Roll back, dropping what waited for a commit."""
    session.info.pop(_AFTER_COMMIT, None)
    await session.rollback()


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
        try:
            yield session
        except BaseException:
            await rollback(session)
            raise
        await commit(session)
