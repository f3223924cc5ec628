"""navigator folder grants: the server folders the operator granted to each tenant

Directory sources and local git repositories were checked only against the operator's
roots, which every tenant shares: one tenant could propose another's folder (or the root
itself) and search its text. A tenant's folder source must now lie in a folder granted to
that tenant. The application reads grants (row-level security) but cannot write them:
only the operator does (`posturio navigator grant`, on the owner connection).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "navigator_folder_grants",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        # Absolute and resolved (symlinks followed) when granted.
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_navigator_folder_grants"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_navigator_folder_grants_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("tenant_id", "path", name="uq_navigator_folder_grants_tenant_id_path"),
    )
    op.execute(f"GRANT SELECT ON navigator_folder_grants TO {APP_ROLE}")
    for statement in tenant_rls_statements("navigator_folder_grants"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("navigator_folder_grants")
