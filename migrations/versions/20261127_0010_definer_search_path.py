"""security definer functions: pg_temp named last in their search path

A SECURITY DEFINER function should list pg_temp explicitly, and last: unlisted, it is
searched first, so a caller's temporary table could shadow the table the function means
to read with its owner's rights. Applies to every posturio_* definer function.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set(search_path: str) -> None:
    op.execute(
        f"""DO $$
        DECLARE f regprocedure;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'public' AND p.prosecdef
                       AND p.proname LIKE 'posturio\\_%'
            LOOP
                EXECUTE format('ALTER FUNCTION %s SET search_path = {search_path}', f);
            END LOOP;
        END $$"""  # noqa: S608 - the two constant paths below
    )


def upgrade() -> None:
    _set("pg_catalog, public, pg_temp")


def downgrade() -> None:
    _set("public")
