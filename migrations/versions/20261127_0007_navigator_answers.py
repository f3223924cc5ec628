"""navigator answers: each grounded answer with its citations, feedback on answers and
citations, and members' groups (which sources limited to groups a member may read)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("navigator_answers", "navigator_feedback")


def upgrade() -> None:
    op.add_column(
        "memberships",
        sa.Column(
            "groups", pg.ARRAY(sa.String(64)), nullable=False, server_default=sa.text("'{}'")
        ),
    )
    op.create_table(
        "navigator_answers",
        sa.Column("id", pg.UUID(), primary_key=True),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("asked_by", sa.String(200), nullable=False),
        sa.Column("key_id", pg.UUID()),
        # The question as the model saw it: after the policy's redactions, never raw.
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),  # generative | extractive | none
        sa.Column("model", sa.String(200)),
        sa.Column("citations", pg.JSONB(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_navigator_answers_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_navigator_answers_tenant_created", "navigator_answers", ["tenant_id", "created_at"]
    )
    op.create_table(
        "navigator_feedback",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("answer_id", pg.UUID(), nullable=False),
        # 0: the answer as a whole; n: its citation [n].
        sa.Column("citation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_navigator_feedback_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["navigator_answers.id"],
            name="fk_navigator_feedback_answer",
            ondelete="CASCADE",
        ),
        # One vote per person per answer or citation; voting again changes it.
        sa.UniqueConstraint("answer_id", "citation", "actor", name="uq_navigator_feedback_vote"),
    )
    op.create_index(
        "ix_navigator_feedback_tenant_created", "navigator_feedback", ["tenant_id", "created_at"]
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {APP_ROLE}")
    for table in TABLES:
        for statement in tenant_rls_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_column("memberships", "groups")
