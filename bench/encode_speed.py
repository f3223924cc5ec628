"""Raw embedding speed on this machine: the baseline for Navigator's indexing target.

Issue 7 asks the indexing pipeline to reach at least 80 % of raw `model.encode` speed on
the same chunks. This script measures that baseline on about 500 realistic chunks: the
long descriptions (README text, Markdown or reStructuredText) of the packages installed
in this virtualenv, parsed and chunked by Navigator's own parser and chunker, so chunk
lengths are the ones the pipeline produces. Figures are printed, never asserted.

    .venv/bin/python -m bench.encode_speed [--chunks 500] [--batch-size 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.metadata
import statistics
import time

from posturio.navigator.chunking import Chunk, Chunker, TokenCounter
from posturio.navigator.embedding import DEFAULT_MODEL, Embedder, load_model
from posturio.navigator.parsing import ParseError, parse


def corpus_chunks(limit: int, chunker: Chunker) -> tuple[list[Chunk], int, float]:
    """Chunks from installed packages' descriptions; also documents used and seconds."""
    chunks: list[Chunk] = []
    documents = 0
    seconds = 0.0
    dists = sorted(importlib.metadata.distributions(), key=lambda d: d.metadata["Name"] or "")
    for dist in dists:
        raw = dist.read_text("METADATA")
        if not raw:
            continue
        message = email.parser.Parser().parsestr(raw)
        body = message.get_payload()
        if not isinstance(body, str) or len(body) < 2000:
            continue  # a one-line description is not documentation
        name = f"{message['Name']}.md"
        started = time.perf_counter()
        try:
            doc = parse(body.encode("utf-8"), filename=name)
        except ParseError:
            continue
        found = chunker.chunk(doc)
        seconds += time.perf_counter() - started
        documents += 1
        chunks.extend(found)
        if len(chunks) >= limit:
            break
    return chunks[:limit], documents, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    model = load_model(args.model)
    counter = TokenCounter.for_model(args.model)
    print(f"model {args.model}: loaded in {time.perf_counter() - started:.1f} s")

    chunker = Chunker(counter)
    chunks, documents, parse_seconds = corpus_chunks(args.chunks, chunker)
    texts = [c.embedding_text for c in chunks]
    tokens = [c.token_count for c in chunks]
    print(
        f"corpus: {len(chunks)} chunks from {documents} package descriptions; "
        f"word pieces per chunk: mean {statistics.mean(tokens):.0f}, "
        f"median {statistics.median(tokens):.0f}, max {max(tokens)}"
    )
    print(
        f"parse + chunk: {parse_seconds:.2f} s, "
        f"{len(chunks) / parse_seconds:,.0f} chunks/s (single thread)"
    )

    embedder = Embedder(args.model, batch_size=args.batch_size)
    model.encode(texts[: args.batch_size], batch_size=args.batch_size)  # warm-up
    # Alternate the two and keep each one's best round: the first pass over new input
    # shapes is slower, and neighbours on a shared machine add noise.
    raw = wrapped = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True)
        raw = min(raw, time.perf_counter() - started)
        started = time.perf_counter()
        embedder.encode(texts)
        wrapped = min(wrapped, time.perf_counter() - started)
    print(
        f"raw model.encode: {raw:.1f} s, {len(texts) / raw:.1f} chunks/s "
        f"(batch {args.batch_size}, best of {args.rounds})"
    )
    print(
        f"Embedder.encode: {wrapped:.1f} s, {len(texts) / wrapped:.1f} chunks/s "
        f"({100 * raw / wrapped:.0f} % of raw)"
    )
    share = parse_seconds / (parse_seconds + raw)
    print(f"parse + chunk would be {100 * share:.1f} % of a serial parse-chunk-embed run")


if __name__ == "__main__":
    main()
