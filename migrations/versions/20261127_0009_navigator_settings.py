"""navigator settings per tenant: which of the tenant's chat routes writes grounded answers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "navigator_settings",
        sa.Column("tenant_id", pg.UUID(), primary_key=True),
        # A chat alias of the tenant's routes; NULL: the operator's default, else extractive.
        sa.Column("answer_model", sa.String(200)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_navigator_settings_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON navigator_settings TO {APP_ROLE}")
    for statement in tenant_rls_statements("navigator_settings"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("navigator_settings")
