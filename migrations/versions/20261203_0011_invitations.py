"""invitations: joining a tenant takes the invited person's own acceptance

An admin no longer attaches an existing account to their tenant: they invite its e-mail
address, and the holder of the one-time link accepts by signing in to that account (or,
for an address with no account yet, by choosing the password). Before, the first tenant
to name an address owned its password and every later tenant's membership with it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("groups", pg.ARRAY(sa.String(64)), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("invited_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_invitations"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_invitations_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_hash", name="uq_invitations_token_hash"),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'reviewer', 'member')", name="ck_invitations_role"
        ),
    )
    op.create_index("ix_invitations_tenant_email", "invitations", ["tenant_id", "email"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO {APP_ROLE}")
    for statement in tenant_rls_statements("invitations"):
        op.execute(statement)
    # The accept page knows only the token: find its tenant before any tenant context.
    op.execute(
        """CREATE FUNCTION posturio_invitation_by_token(p_hash bytea)
        RETURNS TABLE (id uuid, tenant_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
            SELECT id, tenant_id FROM invitations WHERE token_hash = p_hash
        $$"""
    )
    op.execute("REVOKE ALL ON FUNCTION posturio_invitation_by_token(bytea) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION posturio_invitation_by_token(bytea) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS posturio_invitation_by_token(bytea)")
    op.drop_table("invitations")
