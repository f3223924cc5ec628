"""Every table with a tenant_id is under row-level security for the application role, in
the migrated database itself: a new tenant table whose migration forgets
`tenant_rls_statements` fails here, not in a cross-tenant leak."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from posturio.platform.db import APP_ROLE

# Each ordinary or partitioned table of the schema that has a tenant_id column, with its
# row-level security flags and the policies that bind the application role (a policy for
# PUBLIC binds it too) and both read and write rows by tenant_id.
_TENANT_TABLES = text(
    """
    SELECT c.relname AS name,
           c.relrowsecurity AS enabled,
           c.relforcerowsecurity AS forced,
           (SELECT count(*)
              FROM pg_policy p
             WHERE p.polrelid = c.oid
               AND (p.polroles && ARRAY[0::oid, r.oid])
               AND pg_get_expr(p.polqual, p.polrelid) LIKE '%tenant_id%'
               AND (p.polcmd <> '*'
                    OR pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%tenant_id%')
           ) AS app_policies,
           c.relowner = r.oid OR pg_has_role(r.oid, c.relowner, 'MEMBER') AS app_owns
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                         AND NOT a.attisdropped
      CROSS JOIN pg_roles r
     WHERE n.nspname = current_schema()
       AND c.relkind IN ('r', 'p')
       AND r.rolname = :app_role
     ORDER BY c.relname
    """
)


@dataclass(frozen=True)
class TenantTable:
    name: str
    enabled: bool
    forced: bool
    app_policies: int
    app_owns: bool

    @property
    def protected(self) -> bool:
        """RLS applies to the app role (it does not own the table, so FORCE is not what
        binds it) and a tenant_id policy filters what it reads and writes."""
        return self.enabled and self.app_policies > 0 and not self.app_owns


async def _tenant_tables(conn: AsyncConnection) -> list[TenantTable]:
    rows = await conn.execute(_TENANT_TABLES, {"app_role": APP_ROLE})
    return [TenantTable(**row._mapping) for row in rows]


async def test_every_tenant_table_is_under_row_level_security(owner_engine: AsyncEngine) -> None:
    async with owner_engine.connect() as conn:
        tables = await _tenant_tables(conn)
    names = {t.name for t in tables}
    # The query sees the schema (a typo in it would make this test pass on nothing).
    assert {"api_keys", "memberships", "audit_events", "navigator_chunks"} <= names, names
    unprotected = [t for t in tables if not t.protected]
    assert not unprotected, f"tenant tables without row-level security: {unprotected}"


async def test_the_application_role_cannot_bypass_row_level_security(
    owner_engine: AsyncEngine,
) -> None:
    async with owner_engine.connect() as conn:
        role = (
            await conn.execute(
                text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"),
                {"r": APP_ROLE},
            )
        ).one()
    assert (role.rolsuper, role.rolbypassrls) == (False, False)


async def test_a_tenant_table_without_row_level_security_is_caught(
    owner_engine: AsyncEngine,
) -> None:
    """What a migration that forgets RLS leaves behind fails the check above."""
    async with owner_engine.connect() as conn:
        transaction = await conn.begin()
        try:
            await conn.execute(text("CREATE TABLE rls_forgotten (id int, tenant_id uuid)"))
            forgotten = [t for t in await _tenant_tables(conn) if t.name == "rls_forgotten"]
            assert [t.protected for t in forgotten] == [False]
            await conn.execute(text("ALTER TABLE rls_forgotten ENABLE ROW LEVEL SECURITY"))
            enabled_only = [t for t in await _tenant_tables(conn) if t.name == "rls_forgotten"]
            assert [t.protected for t in enabled_only] == [False]  # no policy: not enough
        finally:
            await transaction.rollback()
