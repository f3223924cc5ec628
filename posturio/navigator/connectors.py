"""Where a source's documents come from: discover the items, then fetch each one's bytes.
Directory sources stay inside their folder, which must still be granted to the tenant at
every read; uploads are read from Postgres."""

from __future__ import annotations

import asyncio
import fnmatch
import os
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.config import Settings
from posturio.navigator.grants import granted_directory
from posturio.navigator.models import Source, Upload
from posturio.navigator.sources import check_git_url
from posturio.platform.db import tenant_session
from posturio.platform.errors import PosturioError
from posturio.platform.repository import scoped

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Item:
    uri: str
    size: int
    media_type: str | None = None
    refused: str | None = None  # why this item cannot be read (recorded as its failure)


class Connector(Protocol):
    async def discover(self) -> list[Item]: ...

    async def fetch(self, item: Item) -> bytes: ...


class SourceUnavailable(Exception):
    """The whole source cannot be read now (a repository that does not exist, …): the
    sync records the reason and stops, without retrying."""


def walk(root: Path, include: list[str], exclude: list[str]) -> list[Item]:
    """Files under `root` (hidden ones skipped) matching the globs; a symlink that leads
    outside the root is an item refused with its reason, never read."""

    def wanted(relative: str) -> bool:
        return any(fnmatch.fnmatch(relative, p) for p in include) and not any(
            fnmatch.fnmatch(relative, p) for p in exclude
        )

    items = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if not wanted(relative):
                continue
            resolved = path.resolve()
            if root not in resolved.parents:
                items.append(Item(relative, 0, refused="a symlink leading outside the root"))
                continue
            try:
                items.append(Item(relative, resolved.stat().st_size))
            except OSError as exc:
                items.append(Item(relative, 0, refused=f"unreadable: {exc.strerror}"))
    return items


def read_under(root: Path, item: Item) -> bytes:
    path = (root / item.uri).resolve()
    if root not in path.parents:  # replaced by a link since discovery
        raise PermissionError("a symlink leading outside the root")
    return path.read_bytes()


async def recheck(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    check: Callable[[AsyncSession], Awaitable[T]],
) -> T:
    """A source's location checked again before it is read: refused now (its folder's
    grant revoked, the roots narrowed, an address no longer allowed), the sync stops
    with the reason and reads nothing."""
    async with tenant_session(sessionmaker, tenant_id) as session:
        try:
            return await check(session)
        except PosturioError as exc:
            raise SourceUnavailable(exc.message) from None


class DirectoryConnector:
    def __init__(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], source: Source
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._tenant = source.tenant_id
        self._path = str(source.config.get("path", ""))
        self.include = list(source.config.get("include") or ["*"])
        self.exclude = list(source.config.get("exclude") or [])

    async def _root(self) -> Path:
        return await recheck(
            self._sessionmaker,
            self._tenant,
            lambda s: granted_directory(s, self._settings, self._tenant, self._path),
        )

    async def discover(self) -> list[Item]:
        return await asyncio.to_thread(walk, await self._root(), self.include, self.exclude)

    async def fetch(self, item: Item) -> bytes:
        return await asyncio.to_thread(read_under, await self._root(), item)


class GitConnector:
    """A repository (https URL or a local path in a folder granted to the tenant) at one
    branch, kept as a shallow working copy in the state directory and refreshed at each
    sync. The location is checked again before each clone or fetch (the only reads of
    it); items are then read from Posturio's own working copy."""

    def __init__(
        self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], source: Source
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._tenant = source.tenant_id
        self._url = str(source.config.get("url", ""))
        self.branch = source.config.get("branch") or None
        self.include = list(source.config.get("include") or ["*"])
        self.exclude = list(source.config.get("exclude") or [])
        self.root = (settings.state_dir / "navigator" / "git" / str(source.id)).resolve()

    def _git(self, *args: str, cwd: Path | None = None) -> None:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
        # No redirects: a redirect could lead to an address the guard refused.
        command = ["git", "-c", "http.followRedirects=false"]
        try:
            subprocess.run(  # noqa: S603 - fixed program, arguments are not a shell line
                [*command, *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=300
            )
        except subprocess.CalledProcessError as exc:
            reason = exc.stderr.decode(errors="replace").strip().splitlines()
            raise SourceUnavailable(
                f"git {args[0]} failed: {reason[-1] if reason else exc}"
            ) from None
        except subprocess.TimeoutExpired:
            raise SourceUnavailable(f"git {args[0]} timed out") from None

    def _checkout(self, url: str) -> list[Item]:
        branch = ["--branch", self.branch] if self.branch else []
        if not (self.root / ".git").is_dir():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            self._git("clone", "--depth", "1", "--single-branch", *branch, url, str(self.root))
        else:
            self._git(
                "fetch",
                "--depth",
                "1",
                "origin",
                *([self.branch] if self.branch else []),
                cwd=self.root,
            )
            self._git("reset", "--hard", "FETCH_HEAD", cwd=self.root)
            self._git("clean", "-fdx", cwd=self.root)
        return walk(self.root, self.include, self.exclude)

    async def discover(self) -> list[Item]:
        url = await recheck(
            self._sessionmaker,
            self._tenant,
            lambda s: check_git_url(s, self._settings, self._tenant, self._url),
        )
        return await asyncio.to_thread(self._checkout, url)

    async def fetch(self, item: Item) -> bytes:
        return await asyncio.to_thread(read_under, self.root, item)


class UploadConnector:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], source: Source) -> None:
        self._sessionmaker = sessionmaker
        self._tenant = source.tenant_id
        self._source = source.id

    async def discover(self) -> list[Item]:
        async with tenant_session(self._sessionmaker, self._tenant) as session:
            rows = (
                await session.execute(
                    scoped(Upload, self._tenant)
                    .where(Upload.source_id == self._source)
                    .with_only_columns(Upload.filename, Upload.media_type, Upload.sha256)
                )
            ).all()
        # Size is not needed up front: uploads were size-checked when they arrived.
        return [Item(r.filename, 0, r.media_type) for r in rows]

    async def fetch(self, item: Item) -> bytes:
        async with tenant_session(self._sessionmaker, self._tenant) as session:
            content = await session.scalar(
                scoped(Upload, self._tenant)
                .where(Upload.source_id == self._source, Upload.filename == item.uri)
                .with_only_columns(Upload.content)
            )
        if content is None:
            raise FileNotFoundError(item.uri)
        return bytes(content)


def connector_for(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], source: Source
) -> Connector:
    if source.kind == "directory":
        return DirectoryConnector(settings, sessionmaker, source)
    if source.kind == "upload":
        return UploadConnector(sessionmaker, source)
    if source.kind == "git":
        return GitConnector(settings, sessionmaker, source)
    if source.kind == "web":
        from posturio.navigator.crawl import WebConnector  # it imports this module

        return WebConnector(settings, source)
    raise NotImplementedError(f"{source.kind} sources are not available yet")
