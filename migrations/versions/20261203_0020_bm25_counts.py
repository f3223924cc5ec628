"""navigator search: the full-text leg scores textbook BM25 from counts

0013/0018 approximated BM25: tf read back from ts_rank, dl the number of distinct
lexemes, avgdl their mean over the matching chunks (so a chunk's score depended on which
other chunks matched), and idf ln(1 + ...), under which a word in half the chunks still
weighs ln 2 (Robertson's idf, rank_bm25's, next to nothing). Measured against
rank_bm25 over the same chunks (bench.search_fusion), the Python docs set's recall@5 was
0.766 against 0.802. Here:

    score = sum over terms t of  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
    idf(t) = max(ln((N - df + 0.5) / (df + 0.5)), IDF_FLOOR)          (Robertson's idf)

- tf is the count of the term in the chunk. For a word it is read from ts_rank exactly
  (_TF_OF_RANK: a function of the count alone, inverted and rounded; 0013 used the same
  inverse unrounded, and for phrases too, where ts_rank measures proximity). For a
  phrase such as pg <-> dump it is the fewest positions of its words: they are marked
  with weight A and filtered out of the chunk's tsvector (setweight + ts_filter, in C),
  so only their few positions are unnested, not the whole tsvector.
- dl is the chunk's number of tokens (stop words aside): ts_rank's normalisation 2
  divides by it, so it is ts_rank / ts_rank(..., 2), with no unnest either (checked
  equal to posturio_tsv_tokens on the same 90,143 pairs).
- avgdl is the mean token count over the corpus, read from the statistics ANALYZE keeps
  on posturio_tsv_tokens(tsv) (an expression statistics object: no cost on writes, no
  column to fill); like the df of common terms it is over the whole table. Until the
  first ANALYZE it is the mean over the matching chunks, as before.
- N, the searched sources' chunks, was counted through an index (about 10 ms at 100k
  chunks, the leg's largest single cost); a source among the most common values of
  source_id in the column's statistics now counts as its frequency x the table's rows
  (ANALYZE's estimate, within a few percent, which moves idf by hundredths); the other
  sources, small by definition, are still counted.
- k1 = 1.5, b = 0.4 (chosen on both corpora; chunks are cut to similar lengths, and a
  low b keeps the ranking insensitive to the avgdl estimate).

The candidates are 0018's (selective terms; a common term still scores). Measured with
bench.search_fusion, text leg recall@5: Python docs 0.802 (rank_bm25 0.802), git-doc
0.625 (0.607).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

from posturio.platform.db import APP_ROLE, TENANT_GUC

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _revision(filename: str) -> ModuleType:
    """An earlier revision's module (loaded by path: the versions folder is no package)."""
    spec = importlib.util.spec_from_file_location(filename, Path(__file__).with_name(filename))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# 0018's function header, scope and candidates are kept; its body is the downgrade.
_0018 = _revision("20261203_0018_bm25_selective.py")
SIGNATURE: str = _0018.SIGNATURE
SELECTIVE: int = _0018.SELECTIVE
_SCOPE: str = _0018._SCOPE
K1, B = 1.5, 0.4
IDF_FLOOR = 0.01  # a word in more than half the chunks still orders chunks that tie
STATISTICS = "posturio_chunk_tokens"
# A single word's count from ts_rank (all positions weigh 0.1, the default): the rank is
# 0.1 x sum of 1/j^2 over its j = 1..tf positions, over pi^2/6, and sum(1/j^2, j <= tf)
# = pi^2/6 - 1/(tf + 0.5) within 0.03, so the rounded inverse is the count itself
# (checked against unnest on 90,143 chunk-word pairs of the bench corpora, tf <= 31).
_TF_OF_RANK = "greatest(round(0.6079 / greatest(1 - x.rank / 0.1, 0.001) - 0.5), 1)::float8"

# A tsvector's tokens: the positions of its lexemes (one for a lexeme stored without).
_TOKENS = """CREATE OR REPLACE FUNCTION posturio_tsv_tokens(v tsvector) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT coalesce(sum(greatest(cardinality(u.positions), 1)), 0)::integer
            FROM unnest(v) u)"""

_BODY = f"""
    WITH t AS (
        SELECT DISTINCT term FROM unnest(terms) term WHERE numnode(term) > 0
    ), estimated AS (
        SELECT sum(f.freq) * max(r.reltuples) AS n, array_agg(f.source) AS known
        FROM pg_stats s, pg_class r,
             unnest(s.most_common_vals::text::uuid[], s.most_common_freqs) f(source, freq)
        WHERE s.schemaname = 'public' AND s.tablename = 'navigator_chunks'
          AND s.attname = 'source_id' AND f.source = ANY(sources)
          AND r.oid = 'public.navigator_chunks'::regclass AND r.reltuples > 0
    ), n AS (
        SELECT coalesce(e.n, 0) + (
            SELECT count(*) FROM navigator_chunks c
            WHERE c.tenant_id = NULLIF(current_setting('{TENANT_GUC}', true), '')::uuid
              AND c.source_id = ANY(ARRAY(
                  SELECT x FROM unnest(sources) x WHERE x <> ALL(coalesce(e.known, '{{}}'))))
        )::float8 AS n
        FROM estimated e
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
               greatest(ln((greatest(n.n, d.df) - d.df + 0.5) / (d.df + 0.5)), {IDF_FLOOR})
               AS idf,
               ARRAY(SELECT replace(x[1], '''''', '''')
                     FROM regexp_matches(c.term::text, $re$'((?:[^']|'')*)'$re$, 'g') x)
               AS lexemes
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
        SELECT c.id, c.tsv FROM navigator_chunks c, wanted w WHERE {_SCOPE} AND c.tsv @@ w.q
    ), sampled AS (
        SELECT e.most_common_vals::text::float8[] AS vals, e.most_common_freqs AS freqs,
               e.histogram_bounds::text::float8[] AS bounds
        FROM pg_stats_ext_exprs e
        WHERE e.statistics_schemaname = 'public' AND e.statistics_name = '{STATISTICS}'
        LIMIT 1
    ), avgdl AS MATERIALIZED (
        SELECT greatest(coalesce(
            (SELECT (coalesce(mcv.weighted, 0) + coalesce(rest.share * hist.mean, 0))
                    / nullif(coalesce(mcv.share, 0) + coalesce(rest.share, 0), 0)
             FROM sampled s
             CROSS JOIN LATERAL (
                 SELECT sum(v * f) AS weighted, sum(f) AS share
                 FROM unnest(s.vals, s.freqs) x(v, f)
             ) mcv
             CROSS JOIN LATERAL (
                 SELECT avg((lo + hi) / 2) AS mean FROM (
                     SELECT b AS lo, lead(b) OVER (ORDER BY i) AS hi
                     FROM unnest(s.bounds) WITH ORDINALITY h(b, i)
                 ) bucket WHERE hi IS NOT NULL
             ) hist
             -- the histogram covers the values not among the most common ones
             CROSS JOIN LATERAL (
                 SELECT CASE WHEN hist.mean IS NOT NULL THEN 1 - coalesce(mcv.share, 0) END
                 AS share
             ) rest),
            (SELECT avg(posturio_tsv_tokens(m.tsv)) FROM m)), 1) AS avgdl
    ), matched AS (
        SELECT m.id, m.tsv, t.term, t.idf, t.lexemes,
               ts_rank(m.tsv, t.term) AS rank, ts_rank(m.tsv, t.term, 2) AS per_token
        FROM m JOIN idf t ON m.tsv @@ t.term
    )
    SELECT x.id, sum(
        x.idf * f.tf * {K1 + 1} / (f.tf + {K1} * (1 - {B} + {B} * f.dl / avgdl.avgdl))
    ) AS score
    FROM matched x CROSS JOIN avgdl
    CROSS JOIN LATERAL (
        SELECT CASE WHEN cardinality(x.lexemes) = 1 THEN {_TF_OF_RANK} ELSE (
                   SELECT greatest(min(cardinality(u.positions)), 1)::float8
                   FROM unnest(ts_filter(setweight(x.tsv, 'A', x.lexemes), '{{a}}')) u
               ) END AS tf,
               coalesce(round(x.rank / nullif(x.per_token, 0)),
                        posturio_tsv_tokens(x.tsv))::float8 AS dl
    ) f
    GROUP BY x.id
    ORDER BY score DESC, x.id
    LIMIT lim
"""  # noqa: S608 - constant fragments


def upgrade() -> None:
    op.execute(_TOKENS)
    op.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} ON (posturio_tsv_tokens(tsv)) "
        "FROM navigator_chunks"
    )
    op.execute("ANALYZE navigator_chunks")  # the corpus's avgdl from now on
    op.execute(_0018._function(_BODY))
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(_0018._function(_0018._SELECTIVE_BODY))
    op.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")
    op.execute("DROP FUNCTION IF EXISTS posturio_tsv_tokens(tsvector)")
