"""Navigator search quality on two real documentation corpora of different kinds:
recall@5, recall@10, MRR@10, few-shared-words recall@5 and answer@5 of hybrid search,
full text only and vectors only, measured in the same run on the same index. The issue's
bar: hybrid beats vectors alone on every metric, on both corpora.

Corpora (Debian packages; install them first with
`sudo apt-get install python3.11-doc git-doc`), each copied into a folder and indexed by
the product's own pipeline (a directory source proposed, approved and synced by
`SourceSync`: discover, parse, chunk, embed, store) into an embedded PostgreSQL with
pgvector, one tenant per corpus:

- "python": the Python 3.11 HTML documentation (Sphinx), a subset (`_PYTHON_PAGES`: the
  tutorial, the user-facing HOWTOs and about 80 library pages a programmer asks about
  most). Questions: `bench/data/python_docs_questions.json`.
- "git": git's manual pages and guides in HTML (AsciiDoc: option lists as <dl>, sections
  as h2/h3), every page of git-doc but the contributor guides, the file-format and
  protocol specifications, the user manual (one 270 kB page) and the foreign-SCM bridges.
  Questions: `bench/data/git_docs_questions.json`.

A question is {"question", "relevant": [document uris relative to the source root],
"kind", optional "answer"}. "paraphrase" questions share few or no content words with the
wording of the page that answers them ("make my script wait a few seconds" for
time.sleep; the few-shared-words figure is their recall@5); "keyword" questions use the
page's own terms; "identifier" questions are what a developer pastes (an API name, an
option, a setting), labelled with every page that defines it. Every label was checked
against the page. "answer" is a phrase of the passage that answers (e.g. `--amend`):
answer@5 is the share of the questions that have one whose phrase appears (case and
spacing aside) in one of the top 5 chunks.

Scoring counts pages, not chunks: each query retrieves `--chunks` (30) chunks with
`hybrid_search(..., mode=...)`, the hits are deduplicated by document uri keeping the
first (best) position, and a question's rank is the position of the first page in its
relevant set among those distinct pages. recall@k = share of questions with rank <= k;
MRR@10 = mean of 1/rank, 0 when rank > 10.

Run:  .venv/bin/python -m bench.search_quality [--corpus python|git|all]
      [--keep .posturio/bench-search-quality] [--show-misses]
`--keep DIR` keeps the corpus copies and the embedded services' data in DIR; a later run
with the same DIR and the same page lists skips indexing (a few minutes per corpus here).
Without it everything lives in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
MODES = ("hybrid", "text", "vector")
KINDS = ("paraphrase", "keyword", "identifier")
FEW_SHARED_WORDS = "paraphrase"

_TUTORIAL = (
    "appendix appetite classes controlflow datastructures errors floatingpoint index "
    "inputoutput interactive interpreter introduction modules stdlib stdlib2 venv whatnow"
)
# The HOWTOs for Python programmers (not the C-level ones: clinic, cporting, isolating
# extensions, instrumentation); the logging cookbook is left out for size.
_HOWTO = (
    "annotations argparse enum functional index ipaddress logging pyporting regex "
    "sockets sorting unicode urllib2"
)
_LIBRARY = (
    "argparse asyncio-task atexit base64 bisect calendar collections concurrent.futures "
    "configparser contextlib copy csv dataclasses datetime decimal difflib email.examples "
    "enum filecmp fnmatch fractions functions functools getpass glob gzip hashlib heapq "
    "http.server io itertools json logging math operator os os.path pathlib pdb pickle "
    "pprint profile queue random re sched secrets shelve shutil signal smtplib sqlite3 "
    "statistics stdtypes string subprocess sys tarfile tempfile textwrap threading time "
    "timeit traceback unittest urllib.parse urllib.request uuid venv warnings webbrowser "
    "zipfile zoneinfo"
)
_PYTHON_PAGES = tuple(
    [f"tutorial/{n}.html" for n in _TUTORIAL.split()]
    + [f"howto/{n}.html" for n in _HOWTO.split()]
    + [f"library/{n}.html" for n in _LIBRARY.split()]
)
# git-doc pages left out: contributor guides, file formats and wire protocols, the
# one-page user manual, bridges to other version control systems, internal helpers.
_GIT_LEFT_OUT = re.compile(
    r"^(MyFirst|Reviewing|Submitting|ToolsFor|git-bisect-lk|user-manual|gitformat-|"
    r"gitprotocol-|git-sh-|git-mergetool--lib|git-cvs|git-archimport|git-svn|"
    r"git-credential-cache--|git-fsmonitor--|git-remote-helpers|howto-index|index\.)"
)


@dataclass(frozen=True)
class Corpus:
    name: str
    title: str
    docs: Path
    package: str  # the Debian package that installs `docs`
    questions: Path
    pages: tuple[str, ...] | None  # None: every top-level page not matched by left_out
    left_out: re.Pattern[str] | None = None

    def page_list(self) -> tuple[str, ...]:
        if self.pages is not None:
            return self.pages
        return tuple(
            sorted(
                p.name
                for p in self.docs.glob("*.html")
                if not (self.left_out and self.left_out.match(p.name))
            )
        )


CORPORA = {
    "python": Corpus(
        "python",
        "Python 3.11 docs subset (Sphinx)",
        Path("/usr/share/doc/python3.11/html"),
        "python3.11-doc",
        DATA / "python_docs_questions.json",
        _PYTHON_PAGES,
    ),
    "git": Corpus(
        "git",
        "git manual pages and guides (AsciiDoc)",
        Path("/usr/share/doc/git-doc"),
        "git-doc",
        DATA / "git_docs_questions.json",
        None,
        _GIT_LEFT_OUT,
    ),
}
# The Python set's file before there were two corpora (bench.search_fusion's default).
QUESTIONS = CORPORA["python"].questions


def copy_corpus(corpus: Corpus, into: Path) -> None:
    for page in corpus.page_list():
        target = into / page
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus.docs / page, target)


@contextmanager
def services(keep: Path | None) -> Iterator[Path]:
    """Embedded PostgreSQL + Redis with migrations applied; yields the working folder
    (kept under `keep`, else temporary), from which directory sources may be read."""
    from bench.services import embedded_services

    with embedded_services(keep) as settings:
        work = settings.state_dir.parent
        os.environ["POSTURIO_NAVIGATOR_ROOTS"] = json.dumps([str(work)])
        yield work


def fingerprint(corpus: Corpus) -> str:
    return hashlib.sha256("\n".join(corpus.page_list()).encode()).hexdigest()[:16]


async def index(work: Path, corpus: Corpus = CORPORA["python"]) -> dict[str, Any]:
    """The index described by work/index-<corpus>.json when it matches the corpus's page
    list, else a new tenant with a directory source over a fresh copy of the pages,
    synced now."""
    from posturio.config import load_settings
    from posturio.navigator import grants, sources
    from posturio.navigator.indexing import SourceSync, embedder
    from posturio.platform import accounts
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
    from posturio.platform.models import Role
    from posturio.platform.principal import Principal

    marker = work / f"index-{corpus.name}.json"
    if marker.exists():
        state = json.loads(marker.read_text())
        if state.get("pages") == fingerprint(corpus):
            state["reused"] = True
            return state

    folder = work / f"corpus-{corpus.name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copy_corpus(corpus, folder)
    pages = len(corpus.page_list())
    settings = load_settings()
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    owner = create_engine(settings, as_owner=True)
    try:
        async with sessionmaker() as session, session.begin():
            tenant = await accounts.create_tenant(
                session, f"Docs {corpus.name} {uuid.uuid4().hex[:6]}", actor="bench"
            )
        # The operator grants the folder (only the owner connection writes grants).
        async with create_sessionmaker(owner)() as session, session.begin():
            await grants.grant(session, settings, tenant.id, str(folder), "bench")
        async with tenant_session(sessionmaker, tenant.id) as session:
            operator = Principal(tenant.id, Role.owner, "cli")
            source = await sources.propose(
                session,
                operator,
                settings,
                sources.SourceIn(f"{corpus.name}-docs", "directory", {"path": str(folder)}),
            )
            await sources.transition(
                session, operator, str(source.id), sources.TransitionIn("approve")
            )
        embedder(settings.navigator_model).encode(["warm up"])  # load before the clock
        print(f"indexing {pages} {corpus.name} pages through SourceSync ...", flush=True)
        started = time.perf_counter()
        result = await SourceSync(settings, sessionmaker, tenant.id, source.id).run()
        seconds = time.perf_counter() - started
    finally:
        await owner.dispose()
        await engine.dispose()
    if result.get("failed"):
        print(f"warning: {result['failed']} documents failed to index", file=sys.stderr)
    state = {
        "pages": fingerprint(corpus),
        "tenant_id": str(tenant.id),
        "source_id": str(source.id),
        "documents": result.get("indexed"),
        "failed": result.get("failed"),
        "chunks": result.get("chunks"),
        "seconds": round(seconds, 1),
    }
    marker.write_text(json.dumps(state, indent=1))
    state["reused"] = False
    return state


def rank_of(uris: list[str], relevant: set[str]) -> int | None:
    """1-based rank of the first relevant page among the distinct pages, in hit order."""
    pages: list[str] = []
    for uri in uris:
        if uri not in pages:
            pages.append(uri)
    for position, uri in enumerate(pages, start=1):
        if uri in relevant:
            return position
    return None


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def answered(contents: list[str], answer: str | None) -> bool | None:
    """Whether the answer phrase is in one of the top 5 passages (None: not labelled)."""
    if not answer:
        return None
    phrase = _squash(answer)
    return any(phrase in _squash(c) for c in contents[:5])


@dataclass
class Outcome:
    rank: int | None  # of the first relevant page, None when not among the hits
    pages: list[str]  # distinct pages, best first
    answer: bool | None  # answer phrase in the top 5 chunks (None: no phrase labelled)


async def evaluate(
    tenant_id: uuid.UUID, questions: list[dict[str, Any]], chunks: int
) -> dict[str, list[Outcome]]:
    """Per mode, each question's outcome."""
    from posturio.config import load_settings
    from posturio.navigator.indexing import embedder
    from posturio.navigator.search import hybrid_search
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session

    settings = load_settings()
    model = embedder(settings.navigator_model)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    results: dict[str, list[Outcome]] = {m: [] for m in MODES}
    try:
        for q in questions:
            for mode in MODES:
                async with tenant_session(sessionmaker, tenant_id) as session:
                    hits = await hybrid_search(
                        session,
                        tenant_id,
                        q["question"],
                        model,
                        k=chunks,
                        candidates=max(50, chunks),
                        mode=mode,
                    )
                uris = [h.uri for h in hits]
                results[mode].append(
                    Outcome(
                        rank_of(uris, set(q["relevant"])),
                        list(dict.fromkeys(uris)),
                        answered([h.content for h in hits], q.get("answer")),
                    )
                )
    finally:
        await engine.dispose()
    return results


def metrics(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks) or 1
    r5 = sum(1 for r in ranks if r is not None and r <= 5) / n
    r10 = sum(1 for r in ranks if r is not None and r <= 10) / n
    mrr = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return r5, r10, mrr


METRICS = ("recall@5", "recall@10", "MRR@10", "few-words r@5", "answer@5")


def summary(questions: list[dict[str, Any]], outcomes: list[Outcome]) -> tuple[float | None, ...]:
    """The five figures of METRICS over all questions (answer@5 None when unlabelled)."""
    r5, r10, mrr = metrics([o.rank for o in outcomes])
    few = [
        o.rank for q, o in zip(questions, outcomes, strict=True) if q["kind"] == FEW_SHARED_WORDS
    ]
    labelled = [o.answer for o in outcomes if o.answer is not None]
    return (
        r5,
        r10,
        mrr,
        metrics(few)[0] if few else None,
        sum(labelled) / len(labelled) if labelled else None,
    )


def _cell(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"


def report(questions: list[dict[str, Any]], results: dict[str, list[Outcome]]) -> bool:
    """Prints the figures; True when hybrid beats vectors alone on every metric."""
    print(f"\n{'':<16}{'mode':<8}" + "".join(f"{m:>15}" for m in METRICS))
    figures = {mode: summary(questions, results[mode]) for mode in MODES}
    for mode in MODES:
        print(f"{'all':<16}{mode:<8}" + "".join(_cell(v, 15) for v in figures[mode]))
    for kind in KINDS:
        idx = [i for i, q in enumerate(questions) if q["kind"] == kind]
        label = f"{kind} ({len(idx)})"
        for mode in MODES:
            r5, r10, mrr = metrics([results[mode][i].rank for i in idx])
            print(f"{label:<16}{mode:<8}" + "".join(_cell(v, 15) for v in (r5, r10, mrr)))
            label = ""
    hybrid, vector = figures["hybrid"], figures["vector"]
    pairs = [(h, v) for h, v in zip(hybrid, vector, strict=True) if h is not None and v is not None]
    beats = all(h > v for h, v in pairs)
    ties = all(h >= v for h, v in pairs)
    verdict = "yes" if beats else ("ties at best" if ties else "NO")
    print(f"\nhybrid beats vectors alone on every metric: {verdict}")
    # Paired, per question: a difference of a few hundredths on ~50 questions is a handful
    # of questions, which this shows.
    for mode in ("text", "vector"):
        better = worse = 0
        for h, o in zip(results["hybrid"], results[mode], strict=True):
            hr = h.rank if h.rank and h.rank <= 10 else 99
            orank = o.rank if o.rank and o.rank <= 10 else 99
            better += hr < orank
            worse += hr > orank
        same = len(questions) - better - worse
        print(
            f"  hybrid vs {mode}, rank within 10 per question: better on {better}, "
            f"worse on {worse}, same on {same}"
        )
    return beats


def show_misses(questions: list[dict[str, Any]], results: dict[str, list[Outcome]]) -> None:
    print("\nquestions whose answer is not in hybrid's top 5 (ranks: hybrid / text / vector):")
    for i, q in enumerate(questions):
        ranks = [results[m][i].rank for m in MODES]
        if ranks[0] is None or ranks[0] > 5:
            shown = " / ".join("-" if r is None else str(r) for r in ranks)
            top = ", ".join(results["hybrid"][i].pages[:3])
            print(f"  [{q['kind'][:4]}] {shown:>12}  {q['question']!r} -> {q['relevant']}")
            print(f"  {'':>19}hybrid top 3: {top}")


def load_questions(corpus: Corpus) -> list[dict[str, Any]]:
    """The corpus's questions, after checking its pages are installed and labelled."""
    if not corpus.docs.is_dir():
        raise SystemExit(
            f"{corpus.docs} is missing: install the corpus first with "
            f"`sudo apt-get install {corpus.package}`"
        )
    pages = corpus.page_list()
    missing = [p for p in pages if not (corpus.docs / p).is_file()]
    if missing:
        raise SystemExit(f"pages missing from {corpus.docs}: {', '.join(missing)}")
    questions: list[dict[str, Any]] = json.loads(corpus.questions.read_text())
    unknown = sorted({u for q in questions for u in q["relevant"]} - set(pages))
    if unknown:
        raise SystemExit(f"questions label pages outside the corpus: {', '.join(unknown)}")
    return questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=[*CORPORA, "all"], default="all")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the indexes in this folder")
    parser.add_argument("--chunks", type=int, default=30, help="chunks retrieved per query")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    chosen = list(CORPORA.values()) if args.corpus == "all" else [CORPORA[args.corpus]]
    asked = {c.name: load_questions(c) for c in chosen}

    verdicts = {}
    with services(args.keep) as work:
        for corpus in chosen:
            questions = asked[corpus.name]
            state = asyncio.run(index(work, corpus))
            started = time.perf_counter()
            results = asyncio.run(evaluate(uuid.UUID(state["tenant_id"]), questions, args.chunks))
            search_s = time.perf_counter() - started
            kinds = {k: sum(1 for q in questions if q["kind"] == k) for k in KINDS}
            print(
                f"\n== {corpus.title}: {len(corpus.page_list())} pages -> "
                f"{state['documents']} documents, {state['chunks']} chunks "
                + (
                    "(index reused)"
                    if state["reused"]
                    else f"(indexed in {state['seconds']:.0f} s, "
                    f"{state['chunks'] / state['seconds']:.1f} chunks/s)"
                )
            )
            print(
                f"{len(questions)} questions ("
                + ", ".join(f"{n} {k}" for k, n in kinds.items())
                + f"; {sum(1 for q in questions if q.get('answer'))} with an answer phrase), "
                f"{args.chunks} chunks per query deduplicated by page; "
                f"{len(questions) * len(MODES)} searches in {search_s:.1f} s"
            )
            verdicts[corpus.name] = report(questions, results)
            if args.show_misses:
                show_misses(questions, results)
    print(
        "\nhybrid beats vectors alone on every metric: "
        + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in verdicts.items())
    )


if __name__ == "__main__":
    main()
