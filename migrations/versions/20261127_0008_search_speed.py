"""navigator search speed: the full-text match of chunks through the GIN index

Under row-level security a condition on a function that is not LEAKPROOF is evaluated
only after the policy's condition, so it can never be an index condition. `@@`
(ts_match_vq) is not leakproof: as the app role, `tsv @@ query` scanned every chunk of
the table (a parallel sequential scan, 150-200 ms at 110k chunks) however selective the
query. This function runs as the owner (who is not subject to the policy), applies the
policy's own condition itself (the tenant of the current transaction, from the same
setting, never from an argument, so a caller cannot name another tenant), and so the
match walks the GIN index. It returns at most `cap` matches with their ts_rank by
`rank_by`: ranking costs a heap visit per row, so the caller bounds it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from posturio.platform.db import APP_ROLE, TENANT_GUC

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "posturio_chunk_matches(tsquery, tsquery, uuid[], text[], uuid[], uuid[], integer)"


def upgrade() -> None:
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


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
