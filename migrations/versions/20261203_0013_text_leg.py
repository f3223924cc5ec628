"""navigator search: the full-text leg ranks every match by a BM25-like score

posturio_chunk_matches (0008) took `cap` matching chunks in no order and only then
ranked them, so a question whose words match thousands of chunks was ranked among
whichever were stored first. posturio_chunk_bm25 ranks every chunk that matches any of
the query's terms, with corpus statistics:

    score = sum over terms t of  idf(t) * tf(t) * (k1 + 1) / (tf(t) + k1 * (1 - b + b * dl / avgdl))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

N and df(t) are counted over the chunks the caller may search (the tenant's, narrowed
the same way as the match), df through the GIN index. A term is a word or a phrase (an
identifier such as `pg_dump` is the phrase 'pg' <-> 'dump', so it is matched whole). tf
is read back from ts_rank of the single term (sum of 1/j^2 over its j positions, a
function of the count alone for one weight), which costs no unnest of the tsvector; dl
is the chunk's number of distinct lexemes and avgdl their mean over the matches.
Runs as the owner for the reason 0008 gives (the GIN index under row-level security),
applying the tenant of the current transaction itself.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from posturio.platform.db import APP_ROLE, TENANT_GUC

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "posturio_chunk_bm25(tsquery[], uuid[], text[], uuid[], uuid[], integer)"

# The chunks a caller may search: the same condition as 0008's.
_SCOPE = f"""
    c.tenant_id = NULLIF(current_setting('{TENANT_GUC}', true), '')::uuid
    AND c.source_id = ANY(sources)
    AND (c.model = ANY(models) OR c.source_id = ANY(unversioned))
    AND (documents IS NULL OR c.document_id = ANY(documents))
"""

# ts_rank of one term at weight D (0.1) with tf positions is 0.1 * H(tf) / zeta(2), where
# H(tf) = sum of 1/j^2 for j <= tf; 1 - H(tf)/zeta(2) is close to 1/(zeta(2) * (tf + 0.5)),
# hence tf = 0.608 / (1 - s) - 0.5 (exact to +-0.05 for tf 1..50).
_TF = "greatest(1.0, 0.6079 / greatest(1 - ts_rank(m.tsv, t.term) / 0.1, 0.001) - 0.5)"
K1, B = 1.2, 0.75


def upgrade() -> None:
    op.execute(
        f"""CREATE FUNCTION posturio_chunk_bm25(
                terms tsquery[], sources uuid[], models text[],
                unversioned uuid[], documents uuid[], lim integer)
            RETURNS TABLE (id bigint, score float8)
            LANGUAGE sql STABLE SECURITY DEFINER
            SET search_path = pg_catalog, public, pg_temp AS $$
                WITH t AS (
                    SELECT DISTINCT term FROM unnest(terms) term WHERE numnode(term) > 0
                ), n AS (
                    SELECT count(*)::float8 AS n FROM navigator_chunks c WHERE {_SCOPE}
                ), idf AS (
                    SELECT t.term,
                           ln(1 + (n.n - df.df + 0.5) / (df.df + 0.5)) AS idf
                    FROM t CROSS JOIN n CROSS JOIN LATERAL (
                        SELECT count(*)::float8 AS df FROM navigator_chunks c
                        WHERE {_SCOPE} AND c.tsv @@ t.term
                    ) df
                    WHERE df.df > 0
                ), m AS MATERIALIZED (
                    SELECT c.id, c.tsv, length(c.tsv)::float8 AS dl
                    FROM navigator_chunks c
                    WHERE {_SCOPE}
                      AND c.tsv @@ (SELECT string_agg('(' || term::text || ')', ' | ')::tsquery
                                    FROM idf)
                ), avgdl AS (
                    SELECT greatest(avg(dl), 1) AS avgdl FROM m
                )
                SELECT m.id, sum(
                    t.idf * tf * {K1 + 1}
                    / (tf + {K1} * (1 - {B} + {B} * m.dl / avgdl.avgdl))
                ) AS score
                FROM m CROSS JOIN avgdl
                JOIN idf t ON m.tsv @@ t.term
                CROSS JOIN LATERAL (SELECT {_TF} AS tf) f
                GROUP BY m.id
                ORDER BY score DESC, m.id
                LIMIT lim
            $$"""  # noqa: S608 - constant fragments
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
