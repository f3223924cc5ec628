"""navigator search ranking: drop posturio_chunk_matches

The full-text leg ranks every match with posturio_chunk_bm25 (0013); nothing has called
posturio_chunk_matches (0008), which took `cap` matches in no order before ranking them,
since then. Dropping it leaves one way to match chunks as the owner.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from posturio.platform.db import APP_ROLE, TENANT_GUC

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "posturio_chunk_matches(tsquery, tsquery, uuid[], text[], uuid[], uuid[], integer)"


def upgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")


def downgrade() -> None:
    # The function as 0008 created it.
    op.execute(
        f"""CREATE FUNCTION posturio_chunk_matches(
                match tsquery, rank_by tsquery, sources uuid[], models text[],
                unversioned uuid[], documents uuid[], cap integer)
            RETURNS TABLE (id bigint, rank real)
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
                SELECT m.id, ts_rank(m.tsv, rank_by) FROM (
                    SELECT c.id, c.tsv FROM navigator_chunks c
                    WHERE c.tenant_id = NULLIF(current_setting('{TENANT_GUC}', true), '')::uuid
                      AND c.tsv @@ match
                      AND c.source_id = ANY(sources)
                      AND (c.model = ANY(models) OR c.source_id = ANY(unversioned))
                      AND (documents IS NULL OR c.document_id = ANY(documents))
                    LIMIT cap
                ) m
            $$"""  # noqa: S608 - a constant setting name
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")
