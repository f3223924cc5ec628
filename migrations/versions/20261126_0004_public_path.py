"""public evaluation path: tenant plans, the email outbox, signups

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOOKUP = """CREATE FUNCTION posturio_api_key_by_prefix(p_prefix text)
    RETURNS TABLE (id uuid, tenant_id uuid, secret_hash bytea, scopes varchar[],
                   expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
                   allowed_models varchar[], rpm_limit int, tpm_limit int,
                   monthly_budget_usd numeric, limits_fail_open boolean, tags varchar[]{plan_type})
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
        SELECT k.id, k.tenant_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at,
               k.last_used_at, k.allowed_models, k.rpm_limit, k.tpm_limit,
               k.monthly_budget_usd, t.limits_fail_open, k.tags{plan_col}
        FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.prefix = p_prefix
    $$"""


def _key_lookup(*, with_plan: bool) -> None:
    op.execute("DROP FUNCTION posturio_api_key_by_prefix(text)")
    op.execute(
        LOOKUP.format(
            plan_type=", plan varchar" if with_plan else "",
            plan_col=", t.plan" if with_plan else "",
        )
    )
    op.execute("REVOKE ALL ON FUNCTION posturio_api_key_by_prefix(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION posturio_api_key_by_prefix(text) TO {APP_ROLE}")


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("plan", sa.String(20), nullable=False, server_default="standard"),
    )
    op.create_table(
        "email_outbox",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("user_id", pg.UUID()),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_email_outbox"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_email_outbox_tenant_id_tenants",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_email_outbox_pending", "email_outbox", ["sent_at", "created_at"])
    op.create_index("ix_email_outbox_token", "email_outbox", ["token_hash"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON email_outbox TO {APP_ROLE}")
    for statement in tenant_rls_statements("email_outbox"):
        op.execute(statement)
    # Email verification happens before any tenant context: one narrow definer function.
    op.execute(
        """CREATE FUNCTION posturio_confirm_email(p_token_hash bytea) RETURNS text
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS $$
            UPDATE email_outbox SET confirmed_at = coalesce(confirmed_at, now())
            WHERE token_hash = p_token_hash AND kind = 'verify_email'
            RETURNING to_address
        $$"""
    )
    op.execute("REVOKE ALL ON FUNCTION posturio_confirm_email(bytea) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION posturio_confirm_email(bytea) TO {APP_ROLE}")
    _key_lookup(with_plan=True)


def downgrade() -> None:
    op.execute("DROP FUNCTION posturio_confirm_email(bytea)")
    _key_lookup(with_plan=False)
    op.drop_table("email_outbox")
    op.drop_column("tenants", "plan")
