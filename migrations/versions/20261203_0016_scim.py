"""scim: provisioning from the company's identity provider (SCIM 2.0)

A tenant's provisioning client authenticates with one bearer token per tenant (only its
hash is kept). A SCIM user is the tenant's membership of an account: memberships gain
`active` (a deactivated member keeps the row, so reactivation restores it, but cannot
sign in) and `scim` (the profile the provider sent: name, e-mails, externalId, echoed
back, never the source of identity or access). SCIM groups and their members are kept
per tenant; a member's groups decide their Navigator groups and, through the SSO role
mapping, their role. The sign-in lookup of a person's tenants now says whether each
membership is active.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from posturio.platform.db import APP_ROLE
from posturio.platform.rls import tenant_rls_statements

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEFINER = "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"


def _grant(fn: str) -> None:
    op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _memberships_function(with_active: bool) -> None:
    op.execute("DROP FUNCTION IF EXISTS posturio_user_memberships(uuid)")
    active = ", active boolean" if with_active else ""
    column = ", m.active" if with_active else ""
    op.execute(
        f"""CREATE FUNCTION posturio_user_memberships(p_user_id uuid)
        RETURNS TABLE (tenant_id uuid, role varchar, tenant_name varchar{active})
        {_DEFINER} AS $$
            SELECT m.tenant_id, m.role, t.name{column} FROM memberships m
            JOIN tenants t ON t.id = m.tenant_id
            WHERE m.user_id = p_user_id ORDER BY t.name
        $$"""  # noqa: S608 - constant fragments, no input
    )
    _grant("posturio_user_memberships(uuid)")


def upgrade() -> None:
    op.add_column(
        "memberships",
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "memberships",
        sa.Column("scim", pg.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    _memberships_function(with_active=True)

    op.create_table(
        "scim_tokens",
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_scim_tokens"),
        _tenant_fk("scim_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_scim_tokens_token_hash"),
    )
    op.create_table(
        "scim_groups",
        sa.Column("id", pg.UUID(), nullable=False),
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("external_id", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scim_groups"),
        _tenant_fk("scim_groups"),
    )
    op.create_index(
        "uq_scim_groups_tenant_name",
        "scim_groups",
        ["tenant_id", sa.text("lower(display_name)")],
        unique=True,
    )
    op.create_table(
        "scim_group_members",
        sa.Column("tenant_id", pg.UUID(), nullable=False),
        sa.Column("group_id", pg.UUID(), nullable=False),
        sa.Column("membership_id", pg.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "membership_id", name="pk_scim_group_members"),
        _tenant_fk("scim_group_members"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["scim_groups.id"],
            name="fk_scim_group_members_group_id_scim_groups",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name="fk_scim_group_members_membership_id_memberships",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_scim_group_members_membership_id", "scim_group_members", ["membership_id"])
    for table in ("scim_tokens", "scim_groups", "scim_group_members"):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        for statement in tenant_rls_statements(table):
            op.execute(statement)
    # A SCIM request carries only its token: find the tenant before any tenant context.
    op.execute(
        f"""CREATE FUNCTION posturio_scim_token(p_hash bytea)
        RETURNS TABLE (tenant_id uuid, prefix varchar)
        {_DEFINER} AS $$
            SELECT tenant_id, prefix FROM scim_tokens WHERE token_hash = p_hash
        $$"""  # noqa: S608 - constant fragments, no input
    )
    _grant("posturio_scim_token(bytea)")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS posturio_scim_token(bytea)")
    op.drop_table("scim_group_members")
    op.drop_table("scim_groups")
    op.drop_table("scim_tokens")
    _memberships_function(with_active=False)
    op.drop_column("memberships", "scim")
    op.drop_column("memberships", "active")
