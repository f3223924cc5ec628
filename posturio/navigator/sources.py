"""Sources and their approval workflow: any member proposes, an admin approves, pauses,
resumes or revokes; each transition is audited with who and why. Only approved sources
are indexed and answer; a revoked one stops answering at once (every query joins the
live status) and is purged in the background. A source limited to groups is seen only by
members of one of them (and admins); folders must be granted to the tenant (grants.py)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Select, String, cast, func, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings
from posturio.navigator.grants import granted_directory
from posturio.navigator.models import Source, Upload
from posturio.navigator.netguard import Allowlist, FetchError, check_url
from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import Conflict, Forbidden, NotFound, PosturioError
from posturio.platform.models import ApiKey, Membership, Role, Scope
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


async def check_git_url(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID, url: str
) -> str:
    """An https repository on an address the SSRF guard accepts, or a local repository in
    a folder granted to the tenant. Other transports (ssh, git://, file://) are refused."""
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
    return str(await granted_directory(session, settings, tenant_id, url))


async def check_config(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID, data: SourceIn
) -> dict[str, Any]:
    config = dict(data.config)
    if data.kind == "directory":
        path = str(config.get("path", ""))
        config["path"] = str(await granted_directory(session, settings, tenant_id, path))
    elif data.kind == "git":
        url = str(config.get("url", ""))
        config["url"] = await check_git_url(session, settings, tenant_id, url)
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
    config = await check_config(session, settings, principal.tenant_id, data)
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
    await audit.by(
        session,
        principal,
        action="source.propose",
        target_type="navigator_source",
        target_id=str(source.id),
        data={"name": source.name, "kind": source.kind, "config": config},
    )
    return source


async def get(session: AsyncSession, principal: Principal, source_id: str) -> Source:
    """One source the principal may see; another tenant's, or one limited to groups the
    principal is not in, is indistinguishable from none."""
    source = await get_scoped(session, Source, principal.tenant_id, source_id, "source")
    groups = await principal_groups(session, principal)
    if groups is not None:
        visible = _visible(
            scoped(Source, principal.tenant_id).where(Source.id == source.id), groups
        )
        if await session.scalar(visible.with_only_columns(Source.id)) is None:
            raise NotFound("source not found")
    return source


async def listing(session: AsyncSession, principal: Principal) -> list[Source]:
    """The sources the principal may see, whatever their state."""
    groups = await principal_groups(session, principal)
    stmt = _visible(scoped(Source, principal.tenant_id), groups)
    return list((await session.scalars(stmt.order_by(Source.name))).all())


async def readable(
    session: AsyncSession, tenant_id: Any, groups: tuple[str, ...] | None
) -> list[Source]:
    """The approved sources a reader with `groups` may read (None: every one), by name —
    the rule the search query applies in SQL."""
    stmt = _visible(scoped(Source, tenant_id).where(Source.status == "approved"), groups)
    return list((await session.scalars(stmt.order_by(Source.name))).all())


def _visible(stmt: Select[Source], groups: tuple[str, ...] | None) -> Select[Source]:
    """Sources open to the whole tenant or to one of `groups` (None: every source)."""
    if groups is None:
        return stmt
    return stmt.where(
        or_(
            Source.groups.is_(None),
            func.cardinality(Source.groups) == 0,
            Source.groups.overlap(cast(list(groups), ARRAY(String(64)))),
        )
    )


async def principal_groups(session: AsyncSession, principal: Principal) -> tuple[str, ...] | None:
    """The groups whose sources a console user or an API key may see (None: every one)."""
    if principal.at_least(Role.admin):
        return None
    if principal.user_id is not None:
        return await member_groups(session, principal.tenant_id, principal.user_id)
    if principal.key_id is not None:
        return await viewer_groups(session, principal.tenant_id, principal.key_id, principal.scopes)
    return ()


async def viewer_groups(
    session: AsyncSession, tenant_id: uuid.UUID, key_id: uuid.UUID, scopes: frozenset[str]
) -> tuple[str, ...] | None:
    """The groups whose sources a key's holder may read: its creator's, in this tenant.
    A key nobody in the tenant created (made by the operator's CLI) reads only sources
    open to the whole tenant; an admin key reads all."""
    if Scope.admin.value in scopes:
        return None
    creator = (
        scoped(ApiKey, tenant_id).where(ApiKey.id == key_id).with_only_columns(ApiKey.created_by)
    )
    return await _readable(session, tenant_id, Membership.user_id == creator.scalar_subquery())


async def member_groups(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[str, ...] | None:
    """A signed-in member's groups."""
    return await _readable(session, tenant_id, Membership.user_id == user_id)


async def _readable(
    session: AsyncSession, tenant_id: uuid.UUID, who: ColumnElement[bool]
) -> tuple[str, ...] | None:
    """None (every source) for admins and owners, else the member's groups; () for no
    membership (sources open to the whole tenant only)."""
    member = (await session.scalars(scoped(Membership, tenant_id).where(who))).first()
    if member is None:
        return ()
    return None if member.role in (Role.owner, Role.admin) else tuple(member.groups)


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
    await audit.by(
        session,
        principal,
        action=f"source.{data.action}",
        target_type="navigator_source",
        target_id=str(source.id),
        data={"name": source.name, "from": before, "to": to, "reason": data.reason},
    )
    return source


def too_large(limit: int) -> PosturioError:
    return PosturioError(
        f"the file is over the limit of {limit:,} bytes", code="file_too_large", status_code=413
    )


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
    # A file in an approved (or paused) source is indexed without another approval, so
    # only an admin adds one there: their upload is the approval.
    if source.status != "proposed" and not principal.at_least(Role.admin):
        raise Forbidden(
            f"this source is {source.status}: only an admin uploads to it", code="approval_needed"
        )
    name = Path(filename).name.strip()
    if not name or len(name) > 255 or "\x00" in name:
        raise PosturioError(
            "a file needs a name (at most 255 characters, no NUL)", code="invalid_file"
        )
    if len(content) > settings.navigator_max_file_bytes:
        raise too_large(settings.navigator_max_file_bytes)
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
    await audit.by(
        session,
        principal,
        action="source.upload",
        target_type="navigator_source",
        target_id=str(source.id),
        data={"file": name, "bytes": len(content), "sha256": digest},
    )
    return upload
