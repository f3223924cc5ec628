"""Server folders the operator granted to each tenant.

The operator's roots (POSTURIO_NAVIGATOR_ROOTS) are shared by every tenant, so they
cannot say which tenant may read what: a tenant's directory source (or local git
repository) must lie in a folder granted to that tenant, and the grant itself under a
root. Checked when the source is proposed and again at every read, so a revoked grant
or a narrowed root stops the next sync. Tenants read their grants; only the operator
writes them (the CLI, on the owner connection: the app's role may only SELECT)."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings
from posturio.navigator.models import FolderGrant
from posturio.platform import audit
from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
from posturio.platform.errors import Forbidden, NotFound, PosturioError
from posturio.platform.repository import scoped, scoped_delete


def resolve(path: str) -> Path:
    """`path` absolute with `..` and symlinks resolved; a path that cannot be one is bad
    input, not a server error."""
    try:
        return Path(path).resolve()
    except (ValueError, OSError, RuntimeError) as exc:  # NUL bytes, symlink loops
        raise PosturioError(f"not a usable path: {exc}", code="invalid_source") from None


def embedded_roots(settings: Settings) -> Settings:
    """`posturio up` makes <state>/documents the root when the operator names none, in
    its children's environment only: the same default for the operator's own commands
    (the CLI, the first start's bootstrap)."""
    if settings.navigator_roots:
        return settings
    documents = settings.state_dir.resolve() / "documents"
    return settings.model_copy(update={"navigator_roots": [documents]})


def within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def under_roots(settings: Settings, folder: Path) -> bool:
    return any(within(folder, Path(root).resolve()) for root in settings.navigator_roots)


async def listing(session: AsyncSession, tenant_id: uuid.UUID) -> list[FolderGrant]:
    return list(
        (await session.scalars(scoped(FolderGrant, tenant_id).order_by(FolderGrant.path))).all()
    )


async def granted_directory(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID, path: str
) -> Path:
    """The directory, resolved, if it lies in a folder granted to this tenant that is
    still under the operator's roots. Whether a path exists is told only inside one."""
    if not path:
        raise PosturioError("a directory source needs config.path", code="invalid_source")
    resolved = resolve(path)
    folders = [resolve(g.path) for g in await listing(session, tenant_id)]
    if not any(within(resolved, f) and under_roots(settings, f) for f in folders):
        raise Forbidden(
            f"{path} is not in a folder the operator granted to this tenant "
            "(GET /api/navigator/folders lists them)",
            code="path_not_allowed",
        )
    if not resolved.is_dir():
        raise PosturioError(f"{path} is not a directory", code="invalid_source")
    return resolved


async def grant(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID, path: str, actor: str
) -> FolderGrant:
    """Grant a folder under the operator's roots to one tenant (again: the same grant)."""
    folder = resolve(path)
    if not under_roots(settings, folder):
        raise PosturioError(
            f"{path} is not under a root the operator allows (POSTURIO_NAVIGATOR_ROOTS)",
            code="path_not_allowed",
        )
    if not folder.is_dir():
        raise PosturioError(f"{path} is not a directory", code="invalid_source")
    existing = (
        await session.scalars(scoped(FolderGrant, tenant_id).where(FolderGrant.path == str(folder)))
    ).first()
    if existing is not None:
        return existing
    row = FolderGrant(tenant_id=tenant_id, path=str(folder), granted_by=actor)
    session.add(row)
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        actor=actor,
        action="navigator.folder_grant",
        target_type="navigator_folder",
        target_id=str(row.id),
        data={"path": row.path},
    )
    return row


async def grant_as_operator(
    settings: Settings, tenant_id: uuid.UUID, path: str, actor: str
) -> FolderGrant:
    """grant() in a transaction of its own on the owner connection (the app's role cannot
    write grants): for the operator's start-up and tools outside the CLI."""
    engine = create_engine(settings, as_owner=True)
    try:
        async with tenant_session(create_sessionmaker(engine), None) as session:
            return await grant(session, settings, tenant_id, path, actor)
    finally:
        await engine.dispose()


async def revoke(session: AsyncSession, tenant_id: uuid.UUID, path: str, actor: str) -> None:
    """Withdraw a grant: the sources in it fail their next sync without reading a file.
    The folder may be gone already, so the path is matched as given or resolved."""
    candidates = {path, str(resolve(path))}
    result = await session.execute(
        scoped_delete(FolderGrant, tenant_id)
        .where(FolderGrant.path.in_(candidates))
        .returning(FolderGrant.id, FolderGrant.path)
    )
    removed = result.all()
    if not removed:
        raise NotFound(f"{path} is not granted to this tenant")
    for row in removed:
        await audit.record(
            session,
            tenant_id,
            actor=actor,
            action="navigator.folder_revoke",
            target_type="navigator_folder",
            target_id=str(row.id),
            data={"path": row.path},
        )
