"""Where a source's documents come from: discover the items, then fetch each one's bytes.
Directory sources stay inside their allowlisted root; uploads are read from Postgres."""

from __future__ import annotations

import asyncio
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.config import Settings
from posturio.navigator.models import Source, Upload
from posturio.navigator.sources import directory_root
from posturio.platform.db import tenant_session
from posturio.platform.repository import scoped


@dataclass(frozen=True, slots=True)
class Item:
    uri: str
    size: int
    media_type: str | None = None
    refused: str | None = None  # why this item cannot be read (recorded as its failure)


class Connector(Protocol):
    async def discover(self) -> list[Item]: ...

    async def fetch(self, item: Item) -> bytes: ...


class DirectoryConnector:
    def __init__(self, settings: Settings, source: Source) -> None:
        # Checked again at every sync: the operator may have narrowed the roots since.
        self.root = directory_root(settings, str(source.config.get("path", "")))
        self.include = list(source.config.get("include") or ["*"])
        self.exclude = list(source.config.get("exclude") or [])

    def _wanted(self, relative: str) -> bool:
        return any(fnmatch.fnmatch(relative, p) for p in self.include) and not any(
            fnmatch.fnmatch(relative, p) for p in self.exclude
        )

    def _walk(self) -> list[Item]:
        items = []
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(folder) / name
                relative = path.relative_to(self.root).as_posix()
                if not self._wanted(relative):
                    continue
                resolved = path.resolve()
                if self.root not in resolved.parents:
                    items.append(Item(relative, 0, refused="a symlink leading outside the root"))
                    continue
                try:
                    items.append(Item(relative, resolved.stat().st_size))
                except OSError as exc:
                    items.append(Item(relative, 0, refused=f"unreadable: {exc.strerror}"))
        return items

    async def discover(self) -> list[Item]:
        return await asyncio.to_thread(self._walk)

    async def fetch(self, item: Item) -> bytes:
        path = (self.root / item.uri).resolve()
        if self.root not in path.parents:  # replaced by a link since discovery
            raise PermissionError("a symlink leading outside the root")
        return await asyncio.to_thread(path.read_bytes)


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
        return DirectoryConnector(settings, source)
    if source.kind == "upload":
        return UploadConnector(sessionmaker, source)
    raise NotImplementedError(f"{source.kind} sources are not available yet")
