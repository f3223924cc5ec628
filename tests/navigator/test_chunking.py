# ruff: noqa: RUF001  (Cyrillic, Japanese and typographic text on purpose)
"""Chunking against the model's real tokenizer: every chunk fits the 256 word-piece
window, structure is respected, neighbours overlap, and the output is deterministic."""

from __future__ import annotations

import hashlib
import itertools
import random
import re

import pytest
from transformers import AutoTokenizer

from posturio.navigator.chunking import Chunk, Chunker, TokenCounter, chunk_document
from posturio.navigator.embedding import resolve_model_dir
from posturio.navigator.parsing import ParsedDocument, Section, parse

WINDOW = 256  # all-MiniLM-L6-v2's max_seq_length, [CLS] and [SEP] included


@pytest.fixture(scope="module")
def model_tokenizer():
    # Loaded independently of chunking.py, through transformers: this is the tokenizer
    # sentence-transformers itself runs in front of the model.
    return AutoTokenizer.from_pretrained(str(resolve_model_dir()), local_files_only=True)


def _assert_fits(chunks: list[Chunk], tokenizer) -> None:
    for chunk in chunks:
        ids = tokenizer(chunk.embedding_text, truncation=False)["input_ids"]
        assert len(ids) <= WINDOW, (len(ids), chunk.embedding_text[:80])
        assert chunk.token_count == len(ids) - 2


def _prose(rng: random.Random, sentences: int) -> str:
    words = (
        "gateway policy tenant prompt inspection redaction upstream provider route usage "
        "navigator source approval index chunk embedding citation answer audit reviewer "
        "administrator request latency throughput quota secret token"
    ).split()
    out = []
    for _ in range(sentences):
        n = rng.randint(6, 22)
        sentence = " ".join(rng.choice(words) for _ in range(n))
        out.append(sentence.capitalize() + rng.choice([".", ".", "?", "!"]))
    return " ".join(out)


def test_counter_reads_the_model_window() -> None:
    counter = TokenCounter.for_model()
    assert counter.max_seq_length == WINDOW
    assert counter.max_tokens == WINDOW - 2
    assert TokenCounter.for_model() is counter  # loaded once per process
    # The shipped tokenizer.json pads/truncates to 128; counting must not.
    assert counter.count("word " * 600) == 600


def test_long_markdown_respects_window_headings_and_overlap(model_tokenizer) -> None:
    rng = random.Random(11)
    parts = ["# Handbook", _prose(rng, 3)]
    for chapter in range(3):
        parts.append(f"## Chapter {chapter}")
        for _ in range(4):
            parts.append(_prose(rng, rng.randint(2, 12)))  # paragraphs
        parts.append(f"### Details {chapter}")
        parts.append(_prose(rng, 60))  # one paragraph far over the window
    doc = parse("\n\n".join(parts).encode(), filename="handbook.md")
    chunks = chunk_document(doc)
    _assert_fits(chunks, model_tokenizer)
    assert [c.index for c in chunks] == list(range(len(chunks)))

    # Chunks never straddle sections, and carry their section's heading path.
    for section in doc.sections:
        own = [c for c in chunks if c.heading_path == section.heading_path]
        assert own, section.heading_path
        for chunk in own:
            assert chunk.text.replace("\n\n", " ") in section.text.replace("\n\n", " ")
    assert chunks[0].context == "Handbook"
    assert any(c.context == "Handbook › Chapter 1 › Details 1" for c in chunks)

    # Nothing is lost: every sentence of the source appears in some chunk.
    all_text = " ".join(c.text for c in chunks)
    for section in doc.sections:
        for sentence in re.split(r"(?<=[.!?])\s+", section.text):
            assert sentence.strip() in all_text

    # Consecutive chunks of one long paragraph share a small overlap.
    details = [c for c in chunks if c.heading_path[-1:] == ("Details 0",)]
    assert len(details) >= 3
    for before, after in itertools.pairwise(details):
        first_sentence = re.split(r"(?<=[.!?])\s+", after.text)[0]
        assert before.text.endswith(first_sentence)
        assert 0 < len(model_tokenizer.tokenize(first_sentence)) <= 32


def test_short_document_is_one_chunk_with_hash() -> None:
    doc = parse(b"Posturio keeps an audit log.", filename="one.txt")
    [chunk] = chunk_document(doc)
    assert chunk.text == "Posturio keeps an audit log."
    assert chunk.context == "one.txt"
    assert chunk.embedding_text == "one.txt\n\nPosturio keeps an audit log."
    assert chunk.content_hash == hashlib.sha256(chunk.embedding_text.encode()).hexdigest()


def test_deterministic_output() -> None:
    rng = random.Random(5)
    text = "\n\n".join(_prose(rng, rng.randint(1, 30)) for _ in range(20))
    doc = ParsedDocument("Doc", "text", (Section(("A",), text), Section(("B",), text)))
    first = chunk_document(doc)
    second = Chunker(TokenCounter.for_model()).chunk(doc)
    assert first == second
    # Equal text under another heading is another chunk: the breadcrumb is embedded.
    a = [c.content_hash for c in first if c.heading_path == ("A",)]
    b = [c.content_hash for c in first if c.heading_path == ("B",)]
    assert len(a) == len(b) and not set(a) & set(b)


def test_text_without_breaks_is_cut_into_token_windows(model_tokenizer) -> None:
    rng = random.Random(2)
    blob = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(20000))
    words = " ".join(f"identifier_{i}_value" for i in range(1500))
    doc = ParsedDocument("min.js", "code", (Section((), blob), Section((), words)))
    chunks = chunk_document(doc)
    _assert_fits(chunks, model_tokenizer)
    assert len(chunks) > 10
    # Word boundaries are kept where words fit: no identifier is cut in two.
    word_chunks = [c for c in chunks if "identifier_" in c.text]
    for chunk in word_chunks:
        assert re.fullmatch(r"(identifier_\d+_value ?)+", chunk.text)


def test_code_is_split_on_blank_lines_then_lines(model_tokenizer) -> None:
    functions = []
    for i in range(40):
        body = "\n".join(f"    total += compute_step_{i}_{j}(value, factor={j})" for j in range(6))
        functions.append(f"def function_{i}(value):\n    total = 0\n{body}\n    return total")
    source = "\n\n\n".join(functions)
    doc = parse(source.encode(), filename="pkg/steps.py")
    chunks = chunk_document(doc)
    _assert_fits(chunks, model_tokenizer)
    assert all(c.context == "pkg/steps.py" for c in chunks)
    # Whole functions stay together when they fit.
    assert chunks[0].text.startswith("def function_0(value):\n    total = 0\n")
    for chunk in chunks:
        for number in re.findall(r"def function_(\d+)", chunk.text):
            assert f"compute_step_{number}_5(value, factor=5)\n    return total" in chunk.text


def test_cjk_without_spaces_and_pages_are_kept(model_tokenizer) -> None:
    sentence = "ナビゲーターは承認された社内の情報源だけから回答し、必ず出典を示します。"
    doc = ParsedDocument(
        "報告書",
        "pdf",
        (Section((), sentence * 40, page=3), Section((), "短い。", page=4)),
    )
    chunks = chunk_document(doc)
    _assert_fits(chunks, model_tokenizer)
    assert {c.page for c in chunks} == {3, 4}
    assert len([c for c in chunks if c.page == 3]) > 1
    assert all(c.text.endswith("。") for c in chunks)
    assert not any(" " in c.text for c in chunks)  # no spaces invented between sentences


def test_line_breaks_between_sentences_survive(model_tokenizer) -> None:
    items = "\n".join(f"- Step {i}: restart the worker and check the queue." for i in range(80))
    chunks = chunk_document(ParsedDocument("Runbook", "markdown", (Section((), items),)))
    _assert_fits(chunks, model_tokenizer)
    assert len(chunks) > 1
    for chunk in chunks:
        assert all(line.startswith("- Step ") for line in chunk.text.split("\n"))


def test_smaller_limit_and_long_breadcrumb(model_tokenizer) -> None:
    rng = random.Random(9)
    long_heading = "Very long heading " * 40
    doc = ParsedDocument(
        "Title", "markdown", (Section(("Part", long_heading.strip()), _prose(rng, 40)),)
    )
    chunks = chunk_document(doc, max_tokens=100)
    _assert_fits(chunks, model_tokenizer)
    assert all(c.token_count <= 100 for c in chunks)
    assert all(len(model_tokenizer.tokenize(c.context)) <= 25 for c in chunks)
