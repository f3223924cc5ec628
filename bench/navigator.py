"""Navigator on a real documentation corpus (the Python 3.11 HTML documentation from
Debian's python3.11-doc package), two measurements:

`index` (default): the indexing pipeline against the raw `model.encode` speed on the same
chunks in the same run. Target: the pipeline at >= 80 % of raw encoding (parsing,
chunking and storage must not be the bottleneck), with bounded memory.

`answers`: extractive answers on a search-quality index (bench/search_quality.py's
corpora), each answerable question with the phrases an answer must state:
answer-phrase-in-answer (target >= 0.60), abstentions on those answerable questions
(<= 5 %) and on the off-topic ones (>= 90 %), computed with the product's own retrieval,
relevance floor, evidence check and extractive writer. Python: the questions and
off-topic ones of bench/data/python_docs_answers.json (the relevance threshold was chosen
on them); git: the answer phrases of git_docs_questions.json and the off-topic questions
of git_docs_answers.json, which no setting was tuned on.

Run: apt-get install -y python3.11-doc; .venv/bin/python -m bench.navigator [--docs 120]
     .venv/bin/python -m bench.navigator answers [--corpus python|git]
        [--keep .posturio/bench-answers] [--show]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

CORPUS = Path("/usr/share/doc/python3.11/html")


def corpus(limit: int, into: Path) -> list[Path]:
    pages = sorted(p for p in (CORPUS / "library").glob("*.html") if p.stat().st_size > 4000)
    chosen = pages[:limit]
    for page in chosen:
        shutil.copy(page, into / page.name)
    return chosen


async def run(root: Path, docs: int) -> None:
    from posturio.config import load_settings

    settings = load_settings()
    from posturio.navigator import grants, sources
    from posturio.navigator.chunking import chunk_document
    from posturio.navigator.indexing import SourceSync, embedder
    from posturio.navigator.parsing import parse
    from posturio.platform import accounts
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
    from posturio.platform.models import Role
    from posturio.platform.principal import Principal

    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        tenant = await accounts.create_tenant(session, "Docs", actor="bench")
    await grants.grant_as_operator(settings, tenant.id, str(root), "bench")
    async with tenant_session(sessionmaker, tenant.id) as session:
        operator = Principal(tenant.id, Role.owner, "cli")
        source = await sources.propose(
            session,
            operator,
            settings,
            sources.SourceIn("python-docs", "directory", {"path": str(root)}),
        )
        await sources.transition(session, operator, str(source.id), sources.TransitionIn("approve"))
    model = embedder(settings.navigator_model)  # loaded before the clock starts
    model.encode(["warm up"])
    started = time.perf_counter()
    result = await SourceSync(settings, sessionmaker, tenant.id, source.id).run()
    pipeline_s = time.perf_counter() - started
    rss_after_pipeline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def chunk_texts() -> list[str]:
        texts = []
        for path in sorted(root.iterdir()):
            parsed = parse(path.read_bytes(), filename=path.name)
            texts += [c.embedding_text for c in chunk_document(parsed)]
        return texts

    texts = chunk_texts()
    started = time.perf_counter()
    model.encode(texts)
    raw_s = time.perf_counter() - started
    await engine.dispose()

    chunks = result["chunks"]
    print(f"\nNavigator pipeline on {docs} pages of the Python 3.11 library documentation")
    print(f"  documents indexed {result['indexed']}, failed {result['failed']}, chunks {chunks}")
    print(
        f"  pipeline: {pipeline_s:.1f} s -> {result['indexed'] / pipeline_s:.2f} documents/s, "
        f"{chunks / pipeline_s:.1f} chunks/s (discover, read, parse, chunk, embed, store)"
    )
    print(f"  raw model.encode on the same {len(texts)} chunks: {len(texts) / raw_s:.1f} chunks/s")
    print(f"  pipeline / raw encode = {(chunks / pipeline_s) / (len(texts) / raw_s):.2f}")
    print(f"  peak RSS {rss_after_pipeline:.0f} MB")


DATA = Path(__file__).parent / "data"


def answer_set(corpus: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(question, phrases an answer must state) pairs and off-topic questions."""
    if corpus == "python":
        data = json.loads((DATA / "python_docs_answers.json").read_text())
        return [(q["question"], q["answer"]) for q in data["answerable"]], data["off_topic"]
    questions = json.loads((DATA / "git_docs_questions.json").read_text())
    off_topic = json.loads((DATA / "git_docs_answers.json").read_text())["off_topic"]
    return [(q["question"], [q["answer"]]) for q in questions], off_topic


def _said(answer: str, phrases: list[str]) -> bool:
    flat = " ".join(answer.lower().split())
    return any(" ".join(p.lower().split()) in flat for p in phrases)


async def answers(tenant_id: str, corpus: str, show: bool) -> None:
    """Every question through retrieval, the relevance floor, the evidence check and the
    extractive writer, as Navigator's answers run them (answers.py)."""
    import uuid

    from posturio.config import load_settings
    from posturio.navigator.grounding import (
        NOTHING_FOUND,
        coverage,
        extractive_reply,
        grounded_messages,
        relevant,
        terms,
        weak_evidence,
    )
    from posturio.navigator.indexing import embedder
    from posturio.navigator.search import hybrid_search
    from posturio.platform.db import create_engine, create_sessionmaker, tenant_session

    settings = load_settings()
    model = embedder(settings.navigator_model)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    answerable, off_topic = answer_set(corpus)
    limit = settings.navigator_answer_passages
    rows: list[dict[str, object]] = []
    asked: list[tuple[str, list[str] | None]] = [*answerable, *((q, None) for q in off_topic)]
    started = time.perf_counter()
    try:
        for question, phrases in asked:
            async with tenant_session(sessionmaker, uuid.UUID(tenant_id)) as session:
                hits = await hybrid_search(
                    session, uuid.UUID(tenant_id), question, model, k=limit * 2
                )
            passages = relevant(hits, settings.navigator_min_similarity, limit)
            abstained = weak_evidence(question, passages)
            text = NOTHING_FOUND
            if not abstained:
                messages = grounded_messages([{"role": "user", "content": question}], passages)
                text = extractive_reply(messages, model)
            best = max((p.hit.similarity or 0.0 for p in passages), default=0.0)
            cover = max(
                (coverage(terms(question), terms(p.content)) for p in passages[:3]), default=0.0
            )
            rows.append(
                {
                    "question": question,
                    "phrases": phrases,
                    "abstained": abstained,
                    "said": phrases is not None and not abstained and _said(text, phrases),
                    "in_passages": phrases is not None
                    and any(_said(p.content, phrases) for p in passages),
                    "similarity": best,
                    "coverage": cover,
                    "answer": text,
                }
            )
    finally:
        await engine.dispose()
    seconds = time.perf_counter() - started
    answerable = [r for r in rows if r["phrases"] is not None]
    off = [r for r in rows if r["phrases"] is None]
    n = len(answerable)
    print(
        f"\nExtractive answers: {n} answerable and {len(off)} off-topic questions ({seconds:.1f} s)"
    )

    def share(flag: str, among: list[dict[str, object]]) -> float:
        return sum(bool(r[flag]) for r in among) / max(1, len(among))

    print(f"  answer phrase in the answer:         {share('said', answerable):.3f}")
    print(f"  answer phrase in the given passages: {share('in_passages', answerable):.3f}")
    print(f"  answerable questions abstained:      {share('abstained', answerable):.3f}")
    print(f"  off-topic questions abstained:       {share('abstained', off):.3f}")
    if show:
        for r in rows:
            mark = "OFF " if r["phrases"] is None else ("ok  " if r["said"] else "MISS")
            print(
                f"{mark} abst={int(bool(r['abstained']))} sim={r['similarity']:.3f} "
                f"cov={r['coverage']:.2f} {r['question']!r}"
            )
            if r["phrases"] is not None and not r["said"] and not r["abstained"]:
                print(
                    "      wants", r["phrases"], "got:", str(r["answer"])[27:400].replace("\n", " ")
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", nargs="?", choices=("index", "answers"), default="index")
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--corpus", choices=("python", "git"), default="python", help="answers")
    parser.add_argument("--keep", type=Path, help="answers: keep (and reuse) the index here")
    parser.add_argument("--show", action="store_true", help="answers: each question's result")
    args = parser.parse_args()
    if args.what == "answers":
        from bench.search_quality import CORPORA, index, load_questions, services

        load_questions(CORPORA[args.corpus])  # the corpus is installed
        with services(args.keep) as work:
            state = asyncio.run(index(work, CORPORA[args.corpus]))
            asyncio.run(answers(str(state["tenant_id"]), args.corpus, args.show))
        return
    if not CORPUS.exists():
        raise SystemExit("install the corpus first: apt-get install -y python3.11-doc")
    with tempfile.TemporaryDirectory(prefix="posturio-docs-") as tmp:
        root = Path(tmp)
        chosen = corpus(args.docs, root)
        os.environ["POSTURIO_NAVIGATOR_ROOTS"] = json.dumps([str(root)])
        from bench.services import embedded_services

        with embedded_services():  # migrations run their own event loop: outside ours
            asyncio.run(run(root, len(chosen)))


if __name__ == "__main__":
    main()
