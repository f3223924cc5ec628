"""navigator search: the full-text leg's candidates through selective terms

0013 read back every chunk matching any of the question's terms, so one common word
("use", "file") made the leg read and score a large part of the corpus: at 100k chunks a
question took 1-2 s (bench.search). Here a term matching more than SELECTIVE chunks is
common: it still scores (its df read from the column's statistics, `pg_stats`'
most_common_elem_freqs, which ANALYZE keeps for tsvector lexemes, else the capped
count), but it does not bring candidates. Candidates are the chunks matching any
selective term, every one of them ranked; a question made only of common terms takes
the chunks matching all of them. A chunk left out matches common terms only, so its
score is at most the sum of their small idfs: the ranking above it is unchanged.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

from posturio.platform.db import APP_ROLE, TENANT_GUC

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "posturio_chunk_bm25(tsquery[], uuid[], text[], uuid[], uuid[], integer)"
SELECTIVE = 1000  # a term in more chunks than this brings no candidates of its own

_SCOPE = f"""
    c.tenant_id = NULLIF(current_setting('{TENANT_GUC}', true), '')::uuid
    AND c.source_id = ANY(sources)
    AND (c.model = ANY(models) OR c.source_id = ANY(unversioned))
    AND (documents IS NULL OR c.document_id = ANY(documents))
"""
_TF = "greatest(1.0, 0.6079 / greatest(1 - ts_rank(m.tsv, t.term) / 0.1, 0.001) - 0.5)"
K1, B = 1.2, 0.75


def _function(body: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION posturio_chunk_bm25(
            terms tsquery[], sources uuid[], models text[],
            unversioned uuid[], documents uuid[], lim integer)
        RETURNS TABLE (id bigint, score float8)
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public, pg_temp AS $$ {body} $$"""


# N counts the searched sources' chunks whatever their model (an index-only scan: the
# model is on the heap, and reading the heap of 100k chunks took 200 ms; chunks of an
# older model exist only during a re-index).
_SELECTIVE_BODY = f"""
    WITH t AS (
        SELECT DISTINCT term FROM unnest(terms) term WHERE numnode(term) > 0
    ), n AS (
        SELECT count(*)::float8 AS n FROM navigator_chunks c
        WHERE c.tenant_id = NULLIF(current_setting('{TENANT_GUC}', true), '')::uuid
          AND c.source_id = ANY(sources)
    ), stats AS (
        SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs
        FROM pg_stats
        WHERE schemaname = 'public' AND tablename = 'navigator_chunks' AND attname = 'tsv'
    ), counted AS (
        SELECT t.term, capped.df,
               (SELECT s.freqs[array_position(s.elems, btrim(t.term::text, ''''))]
                FROM stats s WHERE numnode(t.term) = 1) AS freq
        FROM t CROSS JOIN LATERAL (
            SELECT count(*)::float8 AS df FROM (
                SELECT 1 FROM navigator_chunks c WHERE {_SCOPE} AND c.tsv @@ t.term
                LIMIT {SELECTIVE + 1}
            ) hit
        ) capped
        WHERE capped.df > 0
    ), idf AS (
        SELECT c.term, c.df <= {SELECTIVE} AS selective,
               ln(1 + (n.n - d.df + 0.5) / (d.df + 0.5)) AS idf
        FROM counted c CROSS JOIN n CROSS JOIN LATERAL (
            SELECT CASE WHEN c.df <= {SELECTIVE} THEN c.df
                        ELSE least(n.n, greatest(c.df, coalesce(c.freq, 0) * n.n)) END AS df
        ) d
    ), wanted AS (
        SELECT coalesce(
            (SELECT string_agg('(' || term::text || ')', ' | ')::tsquery
             FROM idf WHERE selective),
            (SELECT string_agg('(' || term::text || ')', ' & ')::tsquery FROM idf)
        ) AS q
    ), m AS MATERIALIZED (
        SELECT c.id, c.tsv, length(c.tsv)::float8 AS dl
        FROM navigator_chunks c, wanted w
        WHERE {_SCOPE} AND c.tsv @@ w.q
    ), avgdl AS (
        SELECT greatest(avg(dl), 1) AS avgdl FROM m
    )
    SELECT m.id, sum(
        t.idf * tf * {K1 + 1} / (tf + {K1} * (1 - {B} + {B} * m.dl / avgdl.avgdl))
    ) AS score
    FROM m CROSS JOIN avgdl
    JOIN idf t ON m.tsv @@ t.term
    CROSS JOIN LATERAL (SELECT {_TF} AS tf) f
    GROUP BY m.id
    ORDER BY score DESC, m.id
    LIMIT lim
"""  # noqa: S608 - constant fragments

# 0013's body, for the downgrade.
_EVERY_MATCH_BODY = f"""
    WITH t AS (
        SELECT DISTINCT term FROM unnest(terms) term WHERE numnode(term) > 0
    ), n AS (
        SELECT count(*)::float8 AS n FROM navigator_chunks c WHERE {_SCOPE}
    ), idf AS (
        SELECT t.term, ln(1 + (n.n - df.df + 0.5) / (df.df + 0.5)) AS idf
        FROM t CROSS JOIN n CROSS JOIN LATERAL (
            SELECT count(*)::float8 AS df FROM navigator_chunks c
            WHERE {_SCOPE} AND c.tsv @@ t.term
        ) df
        WHERE df.df > 0
    ), m AS MATERIALIZED (
        SELECT c.id, c.tsv, length(c.tsv)::float8 AS dl
        FROM navigator_chunks c
        WHERE {_SCOPE}
          AND c.tsv @@ (SELECT string_agg('(' || term::text || ')', ' | ')::tsquery FROM idf)
    ), avgdl AS (
        SELECT greatest(avg(dl), 1) AS avgdl FROM m
    )
    SELECT m.id, sum(
        t.idf * tf * {K1 + 1} / (tf + {K1} * (1 - {B} + {B} * m.dl / avgdl.avgdl))
    ) AS score
    FROM m CROSS JOIN avgdl
    JOIN idf t ON m.tsv @@ t.term
    CROSS JOIN LATERAL (SELECT {_TF} AS tf) f
    GROUP BY m.id
    ORDER BY score DESC, m.id
    LIMIT lim
"""  # noqa: S608


def upgrade() -> None:
    op.execute(_function(_SELECTIVE_BODY))
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(_function(_EVERY_MATCH_BODY))
