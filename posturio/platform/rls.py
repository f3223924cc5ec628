"""SQL that migrations use to put a tenant-owned table under row-level security."""

from __future__ import annotations

from posturio.platform.db import APP_ROLE, TENANT_GUC

# NULLIF: with no tenant context set, current_setting(..., true) is '' and matches nothing.
_CURRENT_TENANT = f"NULLIF(current_setting('{TENANT_GUC}', true), '')::uuid"


def tenant_rls_statements(table: str) -> list[str]:
    """Enable RLS on `table` so the app role only ever sees the current tenant's rows."""
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
        f"USING (tenant_id = {_CURRENT_TENANT}) WITH CHECK (tenant_id = {_CURRENT_TENANT})",
    ]
