"""ORM models of Navigator: sources (and their approval state), the server folders the
operator granted each tenant, documents, uploaded files, and the chunk index."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from posturio.platform.db import Base, utcnow

DIMENSION = 384


def _uuid() -> uuid.UUID:
    return uuid.uuid4()


class Source(Base):
    """An internal source a member proposed; only approved ones are indexed and answer."""

    __tablename__ = "navigator_sources"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # upload | directory | git | web
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))  # proposed | approved | paused | revoked
    groups: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))  # None: whole tenant
    sync_interval_s: Mapped[int | None] = mapped_column(Integer)
    proposed_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    embedding_model: Mapped[str | None] = mapped_column(String(200))


class FolderGrant(Base):
    """A server folder the operator granted to one tenant. The operator's roots are shared
    by every tenant, so a tenant's directory and local git sources must lie in one of its
    grants. The application only reads grants; the operator writes them (CLI)."""

    __tablename__ = "navigator_folder_grants"
    __table_args__ = (UniqueConstraint("tenant_id", "path"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # absolute, symlinks resolved when granted
    granted_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Document(Base):
    __tablename__ = "navigator_documents"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("navigator_sources.id", ondelete="CASCADE")
    )
    uri: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # indexed | failed
    error: Mapped[str | None] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Upload(Base):
    """A file uploaded into an upload source (kept so a re-sync or a new model can re-read it)."""

    __tablename__ = "navigator_uploads"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("navigator_sources.id", ondelete="CASCADE")
    )
    filename: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Chunk(Base):
    __tablename__ = "navigator_chunks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("navigator_sources.id", ondelete="CASCADE")
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("navigator_documents.id", ondelete="CASCADE")
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    heading_path: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(200))
    embedding: Mapped[Any] = mapped_column(Vector(DIMENSION))


class Answer(Base):
    """One grounded answer: who asked, what the model was shown (after the policy's
    redactions) and which passages it could cite, so feedback can be read in context."""

    __tablename__ = "navigator_answers"

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=_uuid)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    asked_by: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[uuid.UUID | None] = mapped_column(UUID)
    question: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(20))  # generative | extractive | none
    model: Mapped[str | None] = mapped_column(String(200))
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Feedback(Base):
    __tablename__ = "navigator_feedback"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    answer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("navigator_answers.id", ondelete="CASCADE")
    )
    citation: Mapped[int] = mapped_column(Integer, default=0)  # 0: the whole answer
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Settings(Base):
    """A tenant's Navigator choices."""

    __tablename__ = "navigator_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    answer_model: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))
