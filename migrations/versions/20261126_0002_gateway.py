"""gateway: credentials, routes, deployments, key limits, usage

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("provider_credentials", "routes", "deployments", "usage_events", "usage_daily")


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("limits_fail_open", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("api_keys", sa.Column("allowed_models", pg.ARRAY(sa.String(200))))
    op.add_column("api_keys", sa.Column("rpm_limit", sa.Integer()))
    op.add_column("api_keys", sa.Column("tpm_limit", sa.Integer()))
    op.add_column("api_keys", sa.Column("monthly_budget_usd", sa.Numeric(14, 4)))

    op.create_table(
        "provider_credentials",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provider_credentials"),
        _tenant_fk("provider_credentials"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_provider_credentials_tenant_id_name"),
    )
    op.create_table(
        "routes",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routes"),
        _tenant_fk("routes"),
        sa.UniqueConstraint("tenant_id", "alias", name="uq_routes_tenant_id_alias"),
        sa.CheckConstraint("kind IN ('chat', 'embeddings')", name="ck_routes_kind"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("route_id", pg.UUID(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("base_url", sa.Text()),
        sa.Column("api_version", sa.String(40)),
        sa.Column("credential_id", pg.UUID()),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("input_price_per_1k", sa.Numeric(12, 6), nullable=False),
        sa.Column("output_price_per_1k", sa.Numeric(12, 6), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        _tenant_fk("deployments"),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name="fk_deployments_route_id_routes", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["provider_credentials.id"],
            name="fk_deployments_credential_id_provider_credentials",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("weight >= 0", name="ck_deployments_weight"),
    )
    op.create_index("ix_deployments_route_id", "deployments", ["route_id"])
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", pg.UUID()),
        sa.Column("alias", sa.String(200)),
        sa.Column("deployment", sa.String(300)),
        sa.Column("endpoint", sa.String(40), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(60)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(16, 8), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("overhead_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_events"),
        _tenant_fk("usage_events"),
        sa.UniqueConstraint("request_id", name="uq_usage_events_request_id"),
    )
    op.create_index("ix_usage_events_tenant_time", "usage_events", ["tenant_id", "occurred_at"])
    op.create_index(
        "ix_usage_events_tenant_key_time", "usage_events", ["tenant_id", "key_id", "occurred_at"]
    )
    op.create_table(
        "usage_daily",
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key_id", pg.UUID(), nullable=False),
        sa.Column("alias", sa.String(200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 8), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "key_id", "alias", name="pk_usage_daily"),
        _tenant_fk("usage_daily"),
    )
    tables = ", ".join(TENANT_TABLES)
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    for table in TENANT_TABLES:
        for statement in tenant_rls_statements(table):
            op.execute(statement)

    # The key lookup now also returns the gateway limits and the tenant's fail-open choice.
    op.execute("DROP FUNCTION posturio_api_key_by_prefix(text)")
    op.execute(
        """CREATE FUNCTION posturio_api_key_by_prefix(p_prefix text)
        RETURNS TABLE (id uuid, tenant_id uuid, secret_hash bytea, scopes varchar[],
                       expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
                       allowed_models varchar[], rpm_limit int, tpm_limit int,
                       monthly_budget_usd numeric, limits_fail_open boolean)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
            SELECT k.id, k.tenant_id, k.secret_hash, k.scopes, k.expires_at, k.revoked_at,
                   k.last_used_at, k.allowed_models, k.rpm_limit, k.tpm_limit,
                   k.monthly_budget_usd, t.limits_fail_open
            FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.prefix = p_prefix
        $$"""
    )
    op.execute("REVOKE ALL ON FUNCTION posturio_api_key_by_prefix(text) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION posturio_api_key_by_prefix(text) TO {APP_ROLE}")


def downgrade() -> None:
    for table in ("usage_daily", "usage_events", "deployments", "routes", "provider_credentials"):
        op.drop_table(table)
    for column in ("monthly_budget_usd", "tpm_limit", "rpm_limit", "allowed_models"):
        op.drop_column("api_keys", column)
    op.drop_column("tenants", "limits_fail_open")
