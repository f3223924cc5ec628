"""identity: OpenID Connect single sign-on per tenant

One row per tenant that signs in through its identity provider: issuer, client id and
the client secret (encrypted by the application, like provider credentials), the e-mail
domains it may assert, the claim carrying groups and how groups map to roles and to
Navigator source groups, and whether passwords are off ("SSO only"; owners keep an
audited break-glass password). Keys need no change: the new `review` scope is a value of
the existing scopes column, and existing keys keep the scopes they have.

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sso_configs",
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("client_id", sa.String(500), nullable=False),
        sa.Column("client_secret_encrypted", sa.LargeBinary()),
        sa.Column("email_domains", pg.ARRAY(sa.String(253)), nullable=False),
        sa.Column("groups_claim", sa.String(100), nullable=False),
        sa.Column("role_map", pg.JSONB(), nullable=False),
        sa.Column("group_map", pg.JSONB(), nullable=False),
        sa.Column("default_role", sa.String(20)),
        sa.Column("sso_only", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_sso_configs"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_sso_configs_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "default_role IN ('admin', 'reviewer', 'member')", name="ck_sso_configs_default_role"
        ),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON sso_configs TO {APP_ROLE}")
    for statement in tenant_rls_statements("sso_configs"):
        op.execute(statement)
    # The sign-in page knows only a slug or an e-mail address: find the tenant(s) whose
    # enabled SSO answers for it, before any tenant context exists.
    op.execute(
        """CREATE FUNCTION posturio_sso_tenants(p_slug text, p_domain text)
        RETURNS TABLE (tenant_id uuid, slug varchar, name varchar)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
            SELECT t.id, t.slug, t.name FROM sso_configs c JOIN tenants t ON t.id = c.tenant_id
            WHERE c.enabled AND (t.slug = p_slug OR p_domain = ANY (c.email_domains))
            ORDER BY t.name
        $$"""
    )
    # Password sign-in: which of a person's tenants refuse passwords.
    op.execute(
        """CREATE FUNCTION posturio_sso_only_tenants(p_tenants uuid[])
        RETURNS TABLE (tenant_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
            SELECT tenant_id FROM sso_configs
            WHERE enabled AND sso_only AND tenant_id = ANY (p_tenants)
        $$"""
    )
    for fn in ("posturio_sso_tenants(text, text)", "posturio_sso_only_tenants(uuid[])"):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS posturio_sso_only_tenants(uuid[])")
    op.execute("DROP FUNCTION IF EXISTS posturio_sso_tenants(text, text)")
    op.drop_table("sso_configs")
