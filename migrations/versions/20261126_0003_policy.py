"""policy: versioned tenant policies, decision records, key tags

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("tags", pg.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
    )
    op.create_table(
        "policies",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", pg.JSONB(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
        _tenant_fk("policies"),
        sa.UniqueConstraint("tenant_id", "version", name="uq_policies_tenant_id_version"),
    )
    op.create_table(
        "policy_decisions",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", pg.UUID()),
        sa.Column("alias", sa.String(200)),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("rule_id", sa.String(200)),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("policy_id", pg.UUID()),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("findings", pg.JSONB(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="open"),
        sa.Column("reviewed_by", sa.String(200)),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_policy_decisions"),
        _tenant_fk("policy_decisions"),
        sa.UniqueConstraint(
            "request_id", "direction", name="uq_policy_decisions_request_id_direction"
        ),
    )
    op.create_index(
        "ix_policy_decisions_tenant_time", "policy_decisions", ["tenant_id", "occurred_at"]
    )
    op.create_index(
        "ix_policy_decisions_tenant_status", "policy_decisions", ["tenant_id", "status"]
    )
    # Policy versions are immutable: a change is a new row, never an update.
    op.execute(f"GRANT SELECT, INSERT ON policies TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON policy_decisions TO {APP_ROLE}")
    for table in ("policies", "policy_decisions"):
        for statement in tenant_rls_statements(table):
            op.execute(statement)

    # The key lookup also returns the key's tags (policy rules can match on them).
    _key_lookup(with_tags=True)


def _key_lookup(*, with_tags: bool) -> None:
    tags_type, tags_col = (", tags varchar[]", ", k.tags") if with_tags else ("", "")
    op.execute("DROP FUNCTION posturio_api_key_by_prefix(text)")
    op.execute(
        f"""CREATE FUNCTION posturio_api_key_by_prefix(p_prefix text)
        RETURNS TABLE (id uuid, tenant_id uuid, secret_hash bytea, scopes varchar[],
                       expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
                       allowed_models varchar[], rpm_limit int, tpm_limit int,
                       monthly_budget_usd numeric, limits_fail_open boolean{tags_type})
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT k.id, k.tenant_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at,
                   k.last_used_at, k.allowed_models, k.rpm_limit, k.tpm_limit,
                   k.monthly_budget_usd, t.limits_fail_open{tags_col}
            FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.prefix = p_prefix
        $$"""  # noqa: S608 - constant fragments, no input
    )
    op.execute("REVOKE ALL ON FUNCTION posturio_api_key_by_prefix(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION posturio_api_key_by_prefix(text) TO {APP_ROLE}")


def downgrade() -> None:
    _key_lookup(with_tags=False)
    op.drop_table("policy_decisions")
    op.drop_table("policies")
    op.drop_column("api_keys", "tags")
