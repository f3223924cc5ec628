"""console: investigations (links, notes, saved views), review assignment, attempt logs,
decision counts in the daily rollup, request-log indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "investigations",
    "investigation_links",
    "investigation_notes",
    "saved_views",
    "usage_findings_daily",
)
DECISION_COUNTS = ("blocked", "redacted", "rerouted", "flagged")


def _tenant(table: str) -> list[sa.Column[object] | sa.ForeignKeyConstraint]:
    return [
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("attempt_log", pg.JSONB()))
    # Finding categories of each request: the log filters on them (GIN), and a daily rollup
    # per category feeds the overview without touching the request rows.
    op.add_column("usage_events", sa.Column("finding_types", pg.ARRAY(sa.String(40))))
    op.create_index(
        "ix_usage_events_finding_types",
        "usage_events",
        ["finding_types"],
        postgresql_using="gin",
    )
    op.create_table(
        "usage_findings_daily",
        *_tenant("usage_findings_daily"),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("findings", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "category", name="pk_usage_findings_daily"),
    )
    for column in DECISION_COUNTS:
        op.add_column(
            "usage_daily", sa.Column(column, sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_index(
        "ix_usage_events_tenant_time_id", "usage_events", ["tenant_id", "occurred_at", "id"]
    )
    op.create_index(
        "ix_usage_events_tenant_decision_time",
        "usage_events",
        ["tenant_id", "decision", "occurred_at"],
    )
    op.add_column("policy_decisions", sa.Column("assignee_id", pg.UUID()))

    op.create_table(
        "investigations",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("investigations"),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("assignee_id", pg.UUID()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_investigations"),
    )
    op.create_index(
        "ix_investigations_tenant_status", "investigations", ["tenant_id", "status", "updated_at"]
    )
    op.create_table(
        "investigation_links",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("investigation_links"),
        sa.Column("investigation_id", pg.UUID(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_investigation_links"),
        sa.ForeignKeyConstraint(
            ["investigation_id"],
            ["investigations.id"],
            name="fk_investigation_links_investigation",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "investigation_id", "request_id", name="uq_investigation_links_case_request"
        ),
    )
    op.create_table(
        "investigation_notes",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("investigation_notes"),
        sa.Column("investigation_id", pg.UUID(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),  # note | event
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_investigation_notes"),
        sa.ForeignKeyConstraint(
            ["investigation_id"],
            ["investigations.id"],
            name="fk_investigation_notes_investigation",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_investigation_notes_case", "investigation_notes", ["investigation_id", "created_at"]
    )
    op.create_table(
        "saved_views",
        sa.Column("id", pg.UUID(), nullable=False),
        *_tenant("saved_views"),
        sa.Column("investigation_id", pg.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("filters", pg.JSONB(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_saved_views"),
        sa.ForeignKeyConstraint(
            ["investigation_id"],
            ["investigations.id"],
            name="fk_saved_views_investigation",
            ondelete="CASCADE",
        ),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {APP_ROLE}")
    for table in TABLES:
        for statement in tenant_rls_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_index("ix_usage_events_finding_types", "usage_events")
    op.drop_column("usage_events", "finding_types")
    op.drop_column("policy_decisions", "assignee_id")
    op.drop_index("ix_usage_events_tenant_decision_time", "usage_events")
    op.drop_index("ix_usage_events_tenant_time_id", "usage_events")
    for column in DECISION_COUNTS:
        op.drop_column("usage_daily", column)
    op.drop_column("usage_events", "attempt_log")
