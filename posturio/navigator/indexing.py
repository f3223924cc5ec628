"""The indexing pipeline of one source: discover → fetch → parse → chunk → embed → store.

Incremental: a content hash per document; unchanged documents are skipped, changed ones
replaced, vanished ones deleted. Embedding is batched across documents. Each batch is
stored in one transaction that re-checks, under a row lock, that the source is still
approved: a worker killed mid-source leaves whole documents or nothing, and the next run
picks up exactly what is missing (no duplicate chunks); a source revoked mid-sync gets
no new chunks after the revocation commits."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.config import Settings
from posturio.navigator.chunking import Chunk as TextChunk
from posturio.navigator.chunking import chunk_document
from posturio.navigator.connectors import Item, SourceUnavailable, connector_for
from posturio.navigator.embedding import Embedder
from posturio.navigator.models import Chunk, Document, Source
from posturio.navigator.parsing import ParseError, parse
from posturio.platform.db import tenant_session, utcnow
from posturio.platform.repository import scoped, scoped_delete

log = structlog.get_logger("posturio.navigator")
BATCH_CHUNKS = 256  # chunks embedded together (and stored in one transaction)
MAX_FAILURES_SHOWN = 50
# The source's progress is written at most this often while a sync runs (and after every
# stored batch): one small UPDATE, so a reader sees the counters move.
REPORT_EVERY_S = 2.0

_embedders: dict[str, Embedder] = {}


def embedder(model: str) -> Embedder:
    if model not in _embedders:
        _embedders[model] = Embedder(model)
    return _embedders[model]


@dataclass(slots=True)
class Pending:
    item: Item
    digest: str
    size: int
    title: str
    chunks: list[TextChunk]


@dataclass(slots=True)
class Progress:
    discovered: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    chunks: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    reported: float = 0.0  # when the progress was last written

    def fail(self, uri: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_SHOWN:
            self.failures.append({"uri": uri, "reason": reason})

    def eta_s(self) -> float | None:
        """Time left at the rate so far (documents done per second), once there is one."""
        done = self.indexed + self.skipped + self.failed
        elapsed = time.monotonic() - self.started
        if not done or not self.discovered or elapsed <= 0:
            return None
        return round(max(0, self.discovered - done) * elapsed / done, 1)

    def as_dict(self, state: str) -> dict[str, Any]:
        return {
            "state": state,
            "discovered": self.discovered,
            "indexed": self.indexed,
            "skipped": self.skipped,
            "failed": self.failed,
            "deleted": self.deleted,
            "chunks": self.chunks,
            "failures": self.failures,
            "duration_s": round(time.monotonic() - self.started, 2),
            "eta_s": self.eta_s() if state == "running" else None,
            "updated_at": utcnow().isoformat(),
        }


class SourceSync:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        tenant_id: uuid.UUID,
        source_id: uuid.UUID,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.tenant_id = tenant_id
        self.source_id = source_id
        self.progress = Progress()
        self.model = settings.navigator_model
        self.reembed = False
        self.done_in_new_model: set[uuid.UUID] = set()

    def session(self) -> Any:
        return tenant_session(self.sessionmaker, self.tenant_id)

    async def _source(self, session: AsyncSession, *, lock: bool = False) -> Source | None:
        stmt = scoped(Source, self.tenant_id).where(Source.id == self.source_id)
        return (await session.scalars(stmt.with_for_update(read=True) if lock else stmt)).first()

    async def _report(self, state: str, error: str | None = None, **extra: Any) -> None:
        """The source's progress as of now (with why it stopped, if it did)."""
        self.progress.reported = time.monotonic()
        progress = self.progress.as_dict(state)
        if error is not None:
            progress["error"] = error[:500]
        async with self.session() as session:
            source = await self._source(session)
            if source is not None:
                source.progress = progress
                for name, value in extra.items():
                    setattr(source, name, value)

    async def _tick(self) -> None:
        if time.monotonic() - self.progress.reported >= REPORT_EVERY_S:
            await self._report("running")

    async def run(self) -> dict[str, Any]:
        try:
            return await self._run()
        except SourceUnavailable as exc:
            log.warning("source_unavailable", source_id=str(self.source_id), reason=str(exc))
            await self._report("error", str(exc))
            return {"state": "error", "reason": str(exc)}
        except asyncio.CancelledError:
            # The worker stopping (or the job's time limit): say so, not "running" forever.
            await asyncio.shield(
                self._report(
                    "error", "the sync was interrupted (the worker stopped); it is retried"
                )
            )
            raise
        except Exception as exc:
            # Visible in the source's progress; the job is retried by the worker.
            log.exception("source_sync_failed", source_id=str(self.source_id))
            await self._report("error", f"{type(exc).__name__}: {exc}")
            raise

    async def _run(self) -> dict[str, Any]:
        async with self.session() as session:
            source = await self._source(session)
            if source is None or source.status != "approved":
                return {"state": "skipped", "reason": "not approved"}
            connector = connector_for(self.settings, self.sessionmaker, source)
            # A new embedding model: every document is embedded again beside the old
            # vectors, which keep answering until the new index is complete (then swapped).
            self.reembed = source.embedding_model not in (None, self.model)
            self.done_in_new_model = set()
            if self.reembed:
                self.done_in_new_model = set(
                    (
                        await session.scalars(
                            scoped(Chunk, self.tenant_id)
                            .where(Chunk.source_id == self.source_id, Chunk.model == self.model)
                            .with_only_columns(Chunk.document_id)
                            .distinct()
                        )
                    ).all()
                )
            known = {
                d.uri: d
                for d in (
                    await session.scalars(
                        scoped(Document, self.tenant_id).where(Document.source_id == self.source_id)
                    )
                ).all()
            }
        await self._report("running")
        items = await connector.discover()
        self.progress.discovered = len(items)
        await self._report("running")
        pending: list[Pending] = []
        for item in items:
            prepared = await self._prepare(connector, item, known.get(item.uri))
            await self._tick()
            if prepared is None:
                continue
            pending.append(prepared)
            if sum(len(p.chunks) for p in pending) >= BATCH_CHUNKS:
                if not await self._store(pending):
                    return await self._stopped()
                pending = []
        if pending and not await self._store(pending):
            return await self._stopped()
        vanished = [d.id for uri, d in known.items() if uri not in {i.uri for i in items}]
        if vanished:
            async with self.session() as session:
                await session.execute(
                    scoped_delete(Document, self.tenant_id).where(Document.id.in_(vanished))
                )
            self.progress.deleted = len(vanished)
        if self.reembed:
            async with self.session() as session:
                await session.execute(
                    scoped_delete(Chunk, self.tenant_id).where(
                        Chunk.source_id == self.source_id, Chunk.model != self.model
                    )
                )
        await self._report("idle", last_sync_at=utcnow(), embedding_model=self.model)
        log.info("source_synced", source_id=str(self.source_id), **self.progress.as_dict("idle"))
        return self.progress.as_dict("idle")

    async def _stopped(self) -> dict[str, Any]:
        async with self.session() as session:
            source = await self._source(session)
            status = source.status if source is not None else "deleted"
        reason = f"stopped: the source was {status} during the sync"
        await self._report("stopped", reason)
        return {"state": "stopped", "reason": reason}

    async def _prepare(self, connector: Any, item: Item, known: Document | None) -> Pending | None:
        if item.refused:
            await self._failed(item, known, item.refused)
            return None
        if item.size > self.settings.navigator_max_file_bytes:
            await self._failed(item, known, f"file too large: {item.size:,} bytes over the limit")
            return None
        try:
            data = await connector.fetch(item)
        except (OSError, PermissionError) as exc:
            await self._failed(item, known, f"cannot read: {exc}")
            return None
        digest = hashlib.sha256(data).hexdigest()
        unchanged = known is not None and known.content_hash == digest and known.status == "indexed"
        if unchanged and known and (not self.reembed or known.id in self.done_in_new_model):
            self.progress.skipped += 1
            return None
        try:
            parsed = await asyncio.to_thread(
                parse,
                data,
                filename=item.uri,
                media_type=item.media_type,
                max_bytes=self.settings.navigator_max_file_bytes,
            )
            chunks = await asyncio.to_thread(chunk_document, parsed, model_name=self.model)
        except ParseError as exc:
            await self._failed(item, known, exc.reason, digest)
            return None
        return Pending(item, digest, len(data), parsed.title, chunks)

    async def _failed(
        self, item: Item, known: Document | None, reason: str, digest: str | None = None
    ) -> None:
        """The document's failure is recorded (and its old chunks, if any, removed)."""
        self.progress.fail(item.uri, reason)
        async with self.session() as session:
            if known is not None:
                await session.execute(
                    scoped_delete(Chunk, self.tenant_id).where(Chunk.document_id == known.id)
                )
                document = (
                    await session.scalars(
                        scoped(Document, self.tenant_id).where(Document.id == known.id)
                    )
                ).first()
                if document is not None:
                    document.status, document.error, document.chunks = "failed", reason, 0
                    document.content_hash, document.updated_at = digest, utcnow()
            else:
                session.add(
                    Document(
                        tenant_id=self.tenant_id,
                        source_id=self.source_id,
                        uri=item.uri,
                        status="failed",
                        error=reason,
                        content_hash=digest,
                        bytes=item.size,
                    )
                )

    async def _store(self, pending: list[Pending]) -> bool:
        texts = [c.embedding_text for p in pending for c in p.chunks]
        vectors = await asyncio.to_thread(embedder(self.model).encode, texts)
        async with self.session() as session:
            source = await self._source(session, lock=True)
            if source is None or source.status != "approved":
                return False
            at = 0
            for p in pending:
                document = (
                    await session.scalars(
                        scoped(Document, self.tenant_id).where(
                            Document.source_id == self.source_id, Document.uri == p.item.uri
                        )
                    )
                ).first()
                if document is None:
                    document = Document(
                        tenant_id=self.tenant_id,
                        source_id=self.source_id,
                        uri=p.item.uri,
                        status="indexed",
                    )
                    session.add(document)
                    await session.flush()
                else:
                    stale = Chunk.document_id == document.id
                    if self.reembed:  # the old model's vectors answer until the swap
                        stale = stale & (Chunk.model == self.model)
                    await session.execute(scoped_delete(Chunk, self.tenant_id).where(stale))
                document.title, document.content_hash = p.title, p.digest
                document.status, document.error = "indexed", None
                document.bytes, document.chunks, document.updated_at = (
                    p.size,
                    len(p.chunks),
                    utcnow(),
                )
                rows = [
                    {
                        "tenant_id": self.tenant_id,
                        "source_id": self.source_id,
                        "document_id": document.id,
                        "ordinal": c.index,
                        "heading_path": " > ".join(c.heading_path),
                        "page": c.page,
                        "content": c.text,
                        "content_hash": c.content_hash,
                        "model": self.model,
                        "embedding": vectors[at + i],
                    }
                    for i, c in enumerate(p.chunks)
                ]
                at += len(p.chunks)
                if rows:
                    await session.execute(insert(Chunk), rows)
                self.progress.indexed += 1
                self.progress.chunks += len(rows)
        await self._report("running")  # a stored batch is worth showing at once
        return True


async def purge(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, source_id: uuid.UUID
) -> int:
    """Delete a revoked source's index (documents, chunks, uploads stay for the record)."""
    async with tenant_session(sessionmaker, tenant_id) as session:
        source = (
            await session.scalars(scoped(Source, tenant_id).where(Source.id == source_id))
        ).first()
        if source is None or source.status != "revoked":
            return 0
        result = await session.execute(
            scoped_delete(Document, tenant_id).where(Document.source_id == source_id)
        )
        source.progress = {**(source.progress or {}), "state": "purged"}
        return int(getattr(result, "rowcount", 0) or 0)  # a CursorResult for a DELETE
