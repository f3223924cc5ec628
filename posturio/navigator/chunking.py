"""Split parsed documents into chunks the embedding model reads whole.

all-MiniLM-L6-v2 reads at most 256 word pieces, [CLS] and [SEP] included, and silently
drops the rest: a chunk that is too long is indexed by its beginning only. So lengths are
measured with the model's own tokenizer (the Rust "fast" tokenizer from its
tokenizer.json when there is one), never estimated from characters or words.

Splitting follows the document's structure, coarsest first: sections (headings), then
paragraphs, then sentences, then lines, and only as a last resort fixed token windows.
Consecutive chunks of one section share a small overlap so that a sentence cut at a
boundary is still found. Each chunk's embedded text starts with a breadcrumb (title and
heading path), which gives short chunks the context their own words lack; the budget
counts it. Everything here is a pure function of its input: the same document always
gives the same chunks and hashes, which incremental indexing relies on.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posturio.navigator.embedding import DEFAULT_MODEL, resolve_model_dir
from posturio.navigator.parsing import ParsedDocument

__all__ = ["DEFAULT_OVERLAP_TOKENS", "Chunk", "Chunker", "TokenCounter", "chunk_document"]

DEFAULT_OVERLAP_TOKENS = 32
# A breadcrumb longer than this loses its outer parts: the innermost headings say most.
DEFAULT_BREADCRUMB_TOKENS = 48
_BREADCRUMB_SEPARATOR = " \u203a "  # a single right-pointing angle quote: rare in headings


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int  # position within the document, from 0
    heading_path: tuple[str, ...]
    page: int | None
    text: str  # the chunk's own text, as shown in citations
    context: str  # breadcrumb: the title and heading path, embedded with the text
    token_count: int  # word pieces of embedding_text, without [CLS]/[SEP]
    content_hash: str  # sha256 hex of embedding_text: equal hash, equal vector

    @property
    def embedding_text(self) -> str:
        return f"{self.context}\n\n{self.text}" if self.context else self.text


class TokenCounter:
    """Counts word pieces exactly as the embedding model will see them."""

    def __init__(self, tokenizer: Any, max_seq_length: int, special_tokens: int = 2) -> None:
        self._tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        # Room for text: the model's window minus the [CLS] and [SEP] it always adds.
        self.max_tokens = max_seq_length - special_tokens

    @classmethod
    def for_model(cls, model_name: str = DEFAULT_MODEL) -> TokenCounter:
        """The counter for a model, loaded once per process (offline, from disk)."""
        with _COUNTERS_LOCK:
            counter = _COUNTERS.get(model_name)
            if counter is None:
                counter = _COUNTERS[model_name] = cls._load(resolve_model_dir(model_name))
            return counter

    @classmethod
    def _load(cls, model_dir: Path) -> TokenCounter:
        max_seq_length = _max_seq_length(model_dir)
        tokenizer_file = model_dir / "tokenizer.json"
        if tokenizer_file.is_file():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            # The file ships with truncation and padding at 128 for other uses; counting
            # needs neither, or every long text would look exactly 128 tokens long.
            tokenizer.no_truncation()
            tokenizer.no_padding()
            return cls(_FastTokenizer(tokenizer), max_seq_length)
        from transformers import AutoTokenizer  # slow path: models without tokenizer.json

        return cls(
            _HFTokenizer(AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)),
            max_seq_length,
        )

    def count(self, text: str) -> int:
        return self._tokenizer.count([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return self._tokenizer.count(list(texts)) if texts else []

    def windows(self, text: str, max_tokens: int) -> list[str]:
        """Cut text into pieces of at most max_tokens, at word boundaries when possible.

        The last resort for text with no sentence or line breaks (minified code, tables
        flattened into one line, base64)."""
        offsets, word_ids = self._tokenizer.offsets(text)
        pieces: list[str] = []
        start = 0
        while start < len(offsets):
            end = min(start + max_tokens, len(offsets))
            if end < len(offsets):
                end = _cut_point(offsets, word_ids, start, end)
            piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
            # A word cut in two re-tokenises differently (its tail loses the "##" pieces),
            # so shrink until the real count fits.
            while end - start > 1 and self.count(piece) > max_tokens:
                end -= max(1, (self.count(piece) - max_tokens))
                piece = text[offsets[start][0] : offsets[end - 1][1]].strip()
            if piece:
                pieces.append(piece)
            start = end
        return pieces


def _cut_point(
    offsets: list[tuple[int, int]], word_ids: list[int | None], start: int, end: int
) -> int:
    """Where to end a window that would otherwise end at token `end`: best at a space
    ("identifier_35_value" is five BERT words but one word to a reader), else between
    two BERT words, else anywhere. Backing off by more than half a window is not worth it.
    """
    floor = start + (end - start) // 2
    for cut in range(end, floor, -1):
        if offsets[cut][0] > offsets[cut - 1][1]:
            return cut
    for cut in range(end, floor, -1):
        if word_ids[cut] is None or word_ids[cut] != word_ids[cut - 1]:
            return cut
    return end


class _FastTokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def count(self, texts: list[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def offsets(self, text: str) -> tuple[list[tuple[int, int]], list[int | None]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return list(encoding.offsets), list(encoding.word_ids)


class _HFTokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def count(self, texts: list[str]) -> list[int]:
        encoded = self._tokenizer(texts, add_special_tokens=False, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def offsets(self, text: str) -> tuple[list[tuple[int, int]], list[int | None]]:
        encoded = self._tokenizer(
            text, add_special_tokens=False, truncation=False, return_offsets_mapping=True
        )
        offsets = [tuple(o) for o in encoded["offset_mapping"]]
        # Without word ids every token counts as its own word: cuts may split words.
        return offsets, list(range(len(offsets)))


_COUNTERS: dict[str, TokenCounter] = {}
_COUNTERS_LOCK = threading.Lock()


def _max_seq_length(model_dir: Path) -> int:
    """The window sentence-transformers applies (its config), else the tokenizer's."""
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        path = model_dir / name
        if path.is_file():
            value = json.loads(path.read_text()).get(key)
            if isinstance(value, int) and 0 < value < 100_000:
                return value
    return 512


# ---------------------------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
# A sentence ends at . ! ? … (optionally closed by quotes or brackets) before whitespace,
# or right after a CJK full stop, which is not followed by a space.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|(?<=[\u3002\uff01\uff1f])")


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    tokens: int
    joiner: str  # how it joins the piece before it in the same chunk


class Chunker:
    """Turns a ParsedDocument into chunks of at most `max_tokens` word pieces each
    (breadcrumb included), with `overlap_tokens` of trailing context repeated."""

    def __init__(
        self,
        counter: TokenCounter | None = None,
        *,
        max_tokens: int | None = None,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        breadcrumb_tokens: int = DEFAULT_BREADCRUMB_TOKENS,
    ) -> None:
        self.counter = counter or TokenCounter.for_model()
        limit = self.counter.max_tokens
        self.max_tokens = min(max_tokens, limit) if max_tokens else limit
        if self.max_tokens < 16:
            raise ValueError("max_tokens must leave room for text (at least 16)")
        self.overlap_tokens = max(0, min(overlap_tokens, self.max_tokens // 4))
        self.breadcrumb_tokens = max(0, min(breadcrumb_tokens, self.max_tokens // 4))

    def chunk(self, document: ParsedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in document.sections:
            context, context_tokens = self._breadcrumb(document.title, section.heading_path)
            # The blank line between breadcrumb and text adds no word pieces (the BERT
            # pre-tokenizer splits on whitespace), so the two counts simply add up.
            budget = self.max_tokens - context_tokens
            for text in self._split_section(section.text, budget):
                embedded = f"{context}\n\n{text}" if context else text
                tokens = self.counter.count(embedded)
                if tokens > self.max_tokens:  # never expected; keep the guarantee anyway
                    for window in self.counter.windows(text, budget - (tokens - self.max_tokens)):
                        chunks.append(self._make(len(chunks), section, context, window))
                    continue
                chunks.append(
                    Chunk(
                        index=len(chunks),
                        heading_path=section.heading_path,
                        page=section.page,
                        text=text,
                        context=context,
                        token_count=tokens,
                        content_hash=_sha256(embedded),
                    )
                )
        return chunks

    def _make(self, index: int, section: Any, context: str, text: str) -> Chunk:
        embedded = f"{context}\n\n{text}" if context else text
        return Chunk(
            index=index,
            heading_path=section.heading_path,
            page=section.page,
            text=text,
            context=context,
            token_count=self.counter.count(embedded),
            content_hash=_sha256(embedded),
        )

    def _breadcrumb(self, title: str, heading_path: tuple[str, ...]) -> tuple[str, int]:
        parts = [p for p in (title, *heading_path) if p]
        # A Markdown or HTML title usually repeats the first heading ("Install" under the
        # title "Install - Product docs"): say it once.
        parts = [p for i, p in enumerate(parts) if i == 0 or not parts[i - 1].startswith(p)]
        if not parts or self.breadcrumb_tokens == 0:
            return "", 0
        while parts:
            text = _BREADCRUMB_SEPARATOR.join(parts)
            tokens = self.counter.count(text)
            if tokens <= self.breadcrumb_tokens:
                return text, tokens
            if len(parts) == 1:
                window = self.counter.windows(text, self.breadcrumb_tokens)[0]
                return window, self.counter.count(window)
            parts = parts[1:]  # drop the outermost part first
        return "", 0

    # -- splitting -----------------------------------------------------------------------

    def _split_section(self, text: str, budget: int) -> list[str]:
        pieces = self._pieces(text, budget)
        chunks: list[str] = []
        current: list[_Piece] = []
        used = 0
        for piece in pieces:
            if current and used + piece.tokens > budget:
                chunks.append(_join(current))
                current, used = self._overlap(current, budget - piece.tokens)
            if current:
                current.append(piece)
            else:
                current = [_Piece(piece.text, piece.tokens, "")]
            used += piece.tokens
        if current:
            chunks.append(_join(current))
        return chunks

    def _pieces(self, text: str, budget: int) -> list[_Piece]:
        """Paragraphs that fit, else their sentences, else lines, else token windows."""
        paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
        pieces: list[_Piece] = []
        for paragraph, tokens in zip(paragraphs, self.counter.count_many(paragraphs), strict=True):
            if tokens <= budget:
                pieces.append(_Piece(paragraph, tokens, "\n\n"))
                continue
            first = True
            for sub, sub_tokens, joiner in self._small_units(paragraph, budget):
                pieces.append(_Piece(sub, sub_tokens, "\n\n" if first else joiner))
                first = False
        return pieces

    def _small_units(self, paragraph: str, budget: int) -> list[tuple[str, int, str]]:
        units: list[tuple[str, int, str]] = []
        split = _sentences_with_breaks(paragraph)
        sentences = [sentence for sentence, _ in split]
        counts = self.counter.count_many(sentences)
        for (sentence, joiner), tokens in zip(split, counts, strict=True):
            if tokens <= budget:
                units.append((sentence, tokens, joiner))
                continue
            lines = [line for line in sentence.split("\n") if line.strip()]
            for line, line_tokens in zip(lines, self.counter.count_many(lines), strict=True):
                if line_tokens <= budget:
                    units.append((line, line_tokens, "\n"))
                    continue
                for window in self.counter.windows(line, budget):
                    units.append((window, self.counter.count(window), " "))
        return units

    def _overlap(self, previous: list[_Piece], room: int) -> tuple[list[_Piece], int]:
        """The tail of the previous chunk to repeat: whole sentences (or lines) only,
        at most overlap_tokens, and only as much as leaves room for the next piece."""
        limit = min(self.overlap_tokens, room)
        if limit <= 0:
            return [], 0
        tail = previous[-1].text
        units = [u for s in sentences(tail) for u in s.split("\n") if u.strip()]
        taken: list[str] = []
        used = 0
        for unit, tokens in zip(
            reversed(units), reversed(self.counter.count_many(units)), strict=True
        ):
            if used + tokens > limit:
                break
            taken.insert(0, unit)
            used += tokens
        if not taken:
            return [], 0
        # Repeat the original characters (line breaks of code included), not a re-join.
        overlap = tail[tail.rfind(taken[0]) :]
        used = self.counter.count(overlap)
        return [_Piece(overlap, used, "")], used


def sentences(text: str) -> list[str]:
    return [s for s, _ in _sentences_with_breaks(text)]


def _sentences_with_breaks(text: str) -> list[tuple[str, str]]:
    """Sentences, each with how it was separated from the one before: a line break is
    kept as one (lists, code), other whitespace becomes one space."""
    found: list[tuple[str, str]] = []
    start = 0
    joiner = " "
    for match in _SENTENCE_END.finditer(text):
        if match.end() == start or match.end() == len(text):
            continue
        sentence = text[start : match.start()] + match.group().rstrip()
        if sentence.strip():
            found.append((sentence.strip(), joiner))
        gap = match.group()
        # CJK sentences follow each other with no space between them.
        joiner = "\n" if "\n" in gap else (" " if gap else "")
        start = match.end()
    if text[start:].strip():
        found.append((text[start:].strip(), joiner))
    return found


def _join(pieces: list[_Piece]) -> str:
    parts = [pieces[0].text]
    for piece in pieces[1:]:
        parts.append(piece.joiner)
        parts.append(piece.text)
    return "".join(parts)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_document(
    document: ParsedDocument,
    *,
    model_name: str = DEFAULT_MODEL,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_tokens: int | None = None,
) -> list[Chunk]:
    """Chunk with the tokenizer of `model_name` (loaded once per process)."""
    return Chunker(
        TokenCounter.for_model(model_name), max_tokens=max_tokens, overlap_tokens=overlap_tokens
    ).chunk(document)
