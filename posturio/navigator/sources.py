"""Sources and their approval workflow: any member proposes, an admin approves, pauses,
resumes or revokes; each transition is audited with who and why. Only approved sources
are indexed and answer; a revoked one stops answering at once (every query joins the
live status) and is purged in the background."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy import String, cast, func, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings
from posturio.navigator.models import Source, Upload
from posturio.navigator.netguard import Allowlist, FetchError, check_url
from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import Conflict, PosturioError
from posturio.platform.models import Role
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped, scoped
from posturio.platform.schemas import Group

Kind = Literal["upload", "directory", "git", "web"]
Action = Literal["approve", "pause", "resume", "revoke"]
# From which states each action may be taken, and the state it leads to.
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "approve": ({"proposed"}, "approved"),
    "pause": ({"approved"}, "paused"),
    "resume": ({"paused"}, "approved"),
    "revoke": ({"proposed", "approved", "paused"}, "revoked"),
}


class SourceIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    kind: Kind
    config: dict[str, Any] = {}
    groups: Annotated[list[Group], msgspec.Meta(max_length=50)] | None = None
    sync_interval_s: Annotated[int, msgspec.Meta(ge=300, le=30 * 86400)] | None = None


class TransitionIn(msgspec.Struct, forbid_unknown_fields=True):
    action: Action
    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""


def directory_root(settings: Settings, path: str) -> Path:
    """The directory, resolved, if it lies under an allowlisted root (symlinks resolved:
    a link leading outside is refused like `..`)."""
    if not path:
        raise PosturioError("a directory source needs config.path", code="invalid_source")
    resolved = Path(path).resolve()
    roots = [Path(r).resolve() for r in settings.navigator_roots]
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise PosturioError(
            f"{path} is not under a root the operator allows (POSTURIO_NAVIGATOR_ROOTS)",
            code="path_not_allowed",
        )
    if not resolved.is_dir():
        raise PosturioError(f"{path} is not a directory", code="invalid_source")
    return resolved


def check_git_url(settings: Settings, url: str) -> str:
    """An https repository on an address the SSRF guard accepts, or a local repository
    under an allowed root. Other transports (ssh, git://, file://) are refused."""
    if not url:
        raise PosturioError("a git source needs config.url", code="invalid_source")
    if url.startswith(("https://", "http://")):
        try:
            check_url(url, Allowlist.parse(settings.navigator_url_allowlist))
        except FetchError as exc:
            raise PosturioError(f"refused: {exc}", code="url_not_allowed") from None
        return url
    if "://" in url or url.startswith(("git@", "-")):
        raise PosturioError("use an https URL or a local path", code="invalid_source")
    return str(directory_root(settings, url))


def check_config(settings: Settings, data: SourceIn) -> dict[str, Any]:
    config = dict(data.config)
    if data.kind == "directory":
        config["path"] = str(directory_root(settings, str(config.get("path", ""))))
    elif data.kind == "git":
        config["url"] = check_git_url(settings, str(config.get("url", "")))
    elif data.kind == "web":
        urls = [str(u) for u in config.get("start_urls") or []]
        if config.get("sitemap"):
            urls.append(str(config["sitemap"]))
        if not urls:
            raise PosturioError("a web source needs start_urls or a sitemap", code="invalid_source")
        allow = Allowlist.parse(settings.navigator_url_allowlist)
        for url in urls:
            if not url.startswith(("https://", "http://")):
                raise PosturioError(f"{url!r} is not an http(s) URL", code="invalid_source")
            try:
                check_url(url, allow)
            except FetchError as exc:
                raise PosturioError(f"refused: {exc}", code="url_not_allowed") from None
        for name, bound in (("max_depth", 10), ("max_pages", 10_000)):
            value = config.get(name)
            if value is not None and not (isinstance(value, int) and 0 <= value <= bound):
                raise PosturioError(
                    f"{name} must be an integer from 0 to {bound}", code="invalid_source"
                )
    return config


async def propose(
    session: AsyncSession, principal: Principal, settings: Settings, data: SourceIn
) -> Source:
    principal.require(Role.member)
    config = check_config(settings, data)
    exists = (
        await session.scalars(scoped(Source, principal.tenant_id).where(Source.name == data.name))
    ).first()
    if exists is not None:
        raise Conflict(f"a source named {data.name!r} exists")
    source = Source(
        tenant_id=principal.tenant_id,
        name=data.name,
        kind=data.kind,
        config=config,
        status="proposed",
        groups=data.groups,
        sync_interval_s=data.sync_interval_s,
        proposed_by=principal.actor,
        progress={},
    )
    session.add(source)
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        actor=principal.actor,
        action="source.propose",
        target_type="navigator_source",
        target_id=str(source.id),
        data={"name": source.name, "kind": source.kind, "config": config},
    )
    return source


async def get(session: AsyncSession, principal: Principal, source_id: str) -> Source:
    return await get_scoped(session, Source, principal.tenant_id, source_id, "source")


async def listing(session: AsyncSession, principal: Principal) -> list[Source]:
    return list(
        (await session.scalars(scoped(Source, principal.tenant_id).order_by(Source.name))).all()
    )


async def readable(
    session: AsyncSession, tenant_id: Any, groups: tuple[str, ...] | None
) -> list[Source]:
    """The approved sources a reader with `groups` may read (None: every one), by name —
    the rule the search query applies in SQL."""
    stmt = scoped(Source, tenant_id).where(Source.status == "approved")
    if groups is not None:
        stmt = stmt.where(
            or_(
                Source.groups.is_(None),
                func.cardinality(Source.groups) == 0,
                Source.groups.overlap(cast(list(groups), ARRAY(String(64)))),
            )
        )
    return list((await session.scalars(stmt.order_by(Source.name))).all())


async def transition(
    session: AsyncSession, principal: Principal, source_id: str, data: TransitionIn
) -> Source:
    principal.require(Role.admin)
    source = await get(session, principal, source_id)
    allowed_from, to = TRANSITIONS[data.action]
    if source.status not in allowed_from:
        raise Conflict(f"cannot {data.action} a source that is {source.status}")
    before = source.status
    source.status = to
    source.updated_at = utcnow()
    await audit.record(
        session,
        principal.tenant_id,
        actor=principal.actor,
        action=f"source.{data.action}",
        target_type="navigator_source",
        target_id=str(source.id),
        data={"name": source.name, "from": before, "to": to, "reason": data.reason},
    )
    return source


async def add_upload(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    source_id: str,
    filename: str,
    content: bytes,
    media_type: str | None,
) -> Upload:
    principal.require(Role.member)
    source = await get(session, principal, source_id)
    if source.kind != "upload":
        raise PosturioError("files can be uploaded only to an upload source", code="invalid_source")
    if source.status == "revoked":
        raise Conflict("this source is revoked")
    name = Path(filename).name.strip()
    if not name or len(name) > 255:
        raise PosturioError("a file needs a name (at most 255 characters)", code="invalid_file")
    if len(content) > settings.navigator_max_file_bytes:
        raise PosturioError(
            f"the file is {len(content):,} bytes, over the limit of "
            f"{settings.navigator_max_file_bytes:,}",
            code="file_too_large",
            status_code=413,
        )
    existing = (
        await session.scalars(
            scoped(Upload, principal.tenant_id).where(
                Upload.source_id == source.id, Upload.filename == name
            )
        )
    ).first()
    digest = hashlib.sha256(content).hexdigest()
    if existing is not None:
        existing.content, existing.sha256, existing.media_type = content, digest, media_type
        upload = existing
    else:
        upload = Upload(
            tenant_id=principal.tenant_id,
            source_id=source.id,
            filename=name,
            media_type=media_type,
            content=content,
            sha256=digest,
        )
        session.add(upload)
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        actor=principal.actor,
        action="source.upload",
        target_type="navigator_source",
        target_id=str(source.id),
        data={"file": name, "bytes": len(content), "sha256": digest},
    )
    return upload
