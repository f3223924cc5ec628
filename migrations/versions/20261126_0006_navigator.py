"""navigator: approved sources, their documents and uploads, and the chunk index
(pgvector HNSW + generated tsvector)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("navigator_sources", "navigator_documents", "navigator_uploads", "navigator_chunks")


def _tenant(table: str) -> list[sa.Column[object] | sa.ForeignKeyConstraint]:
    return [
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
    ]


def _source_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["source_id"], ["navigator_sources.id"], name=f"fk_{table}_source", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "navigator_sources",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("navigator_sources"),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("config", pg.JSONB(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("groups", pg.ARRAY(sa.String(64))),
        sa.Column("sync_interval_s", sa.Integer()),
        sa.Column("proposed_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("progress", pg.JSONB(), nullable=False, server_default="{}"),
        sa.Column("last_sync_at", sa.DateTime(timezone=True)),
        sa.Column("embedding_model", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_navigator_sources"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_navigator_sources_tenant_name"),
    )
    op.create_table(
        "navigator_documents",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("navigator_documents"),
        sa.Column("source_id", pg.UUID(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("title", sa.Text()),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("chunks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_navigator_documents"),
        _source_fk("navigator_documents"),
        sa.UniqueConstraint("source_id", "uri", name="uq_navigator_documents_source_uri"),
    )
    op.create_table(
        "navigator_uploads",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("navigator_uploads"),
        sa.Column("source_id", pg.UUID(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("media_type", sa.String(200)),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_navigator_uploads"),
        _source_fk("navigator_uploads"),
        sa.UniqueConstraint("source_id", "filename", name="uq_navigator_uploads_source_file"),
    )
    op.create_table(
        "navigator_chunks",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        *_tenant("navigator_chunks"),
        sa.Column("source_id", pg.UUID(), nullable=False),
        sa.Column("document_id", pg.UUID(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("heading_path", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer()),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_navigator_chunks"),
        _source_fk("navigator_chunks"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["navigator_documents.id"],
            name="fk_navigator_chunks_document",
            ondelete="CASCADE",
        ),
    )
    # Full text over the heading path and the text, kept by Postgres itself.
    op.execute(
        "ALTER TABLE navigator_chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
        "(to_tsvector('english', heading_path || ' ' || content)) STORED"
    )
    op.execute(
        "CREATE INDEX ix_navigator_chunks_embedding ON navigator_chunks "
        "USING hnsw (embedding vector_cosine_ops)"
    )
    op.create_index("ix_navigator_chunks_tsv", "navigator_chunks", ["tsv"], postgresql_using="gin")
    op.create_index(
        "ix_navigator_chunks_tenant_source", "navigator_chunks", ["tenant_id", "source_id"]
    )
    op.create_index("ix_navigator_chunks_document", "navigator_chunks", ["document_id"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {APP_ROLE}")
    for table in TABLES:
        for statement in tenant_rls_statements(table):
            op.execute(statement)
    # The scheduler's sweep across tenants: only ids of sources due for a sync.
    op.execute(
        """CREATE FUNCTION posturio_due_sources() RETURNS TABLE (tenant_id uuid, id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT tenant_id, id FROM navigator_sources
            WHERE status = 'approved' AND sync_interval_s IS NOT NULL
              AND (last_sync_at IS NULL
                   OR last_sync_at + make_interval(secs => sync_interval_s) <= now())
        $$"""
    )
    op.execute("REVOKE ALL ON FUNCTION posturio_due_sources() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION posturio_due_sources() TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION posturio_due_sources()")
    for table in reversed(TABLES):
        op.drop_table(table)
