"""Navigator's indexing pipeline on a real documentation corpus (the Python 3.11 HTML
documentation from Debian's python3.11-doc package), against the raw `model.encode` speed
on the same chunks in the same run. Target: the pipeline at >= 80 % of raw encoding
(parsing, chunking and storage must not be the bottleneck), with bounded memory.

Run: apt-get install -y python3.11-doc; .venv/bin/python -m bench.navigator [--docs 120]
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
    from posturio.navigator.parsing import parse
    from posturio.navigator.pipeline import SourceSync, embedder
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=120)
    args = parser.parse_args()
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
