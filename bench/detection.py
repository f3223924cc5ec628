"""Detection quality and latency on the labelled corpus (bench/corpus.py): our inspector
beside detect-secrets and presidio-analyzer, run on the same prompts in the same process
tree.

Run: .venv/bin/python -m bench.detection [--no-peers] [--misses]

Matching. A finding and a label *match* when they belong to the same group (``secrets``
or ``pii``) and their character spans overlap by at least one character. Then

- group recall    = labels of the group matched by at least one finding of the group
                    / labels of the group;
- group precision = findings of the group that match at least one label of the group
                    / findings of the group (a finding on a hard negative or on a clean
                    prompt never matches, so it always costs precision);
- F1 is the harmonic mean of the two;
- per category, recall is counted over the labels of that category and precision over
  the findings that the tool assigns to that category (peers' types are mapped onto our
  categories; a peer's high-entropy finding on, say, an AWS secret counts as a
  ``generic_secret`` finding that matches, and as recall for ``cloud_credential``);
- for our inspector, *category agreement* is the share of matched labels for which one
  of the matching findings carries the label's exact category;
- clean share = clean prompts with at least one secrets/pii finding / clean prompts;
- a finding our inspector marks ``test_value`` (a documented test value such as
  ``4111 1111 1111 1111`` or ``AKIAIOSFODNN7EXAMPLE``, reported so that a tester sees it
  found, with a low score) is counted apart and not scored: the corpus does not label
  documented test values, and no policy treats such a finding as a detection.

The corpus has two rounds (bench/corpus.py); the table is printed for the whole corpus
and again for round 2 alone (phones in national formats, IP look-alikes, generic
assignments, Azure keys, Twilio identifiers).

Only the ``secrets`` and ``pii`` detectors are scored on this corpus; prompt injection
is measured apart, by the classifier's section at the end (its own labelled data,
bench/injection_data.py, held-out side; skip it with ``--no-classifier``).

Read our figures with care: the corpus and the rules were written together (the rules
were tuned on it), so our scores say that each format and context in the corpus is
covered, not how we do on formats nobody thought of. The peers' figures are the outside
view; the regression value is that a change to a rule cannot silently lose a format.

Peers run in their own virtualenv, bench/.peers-venv (created on first run with
``pip install detect-secrets presidio-analyzer``), in a subprocess that receives the corpus
as JSON. detect-secrets runs with its default plugins and filters, each prompt scanned as
the lines of a file named ``prompt.txt`` (what ``detect-secrets scan`` does per file); its
public-IP plugin is set aside (IP addresses are personal data here, not secrets).
presidio-analyzer runs its predefined recognizers restricted to the six entity types we
score. Presidio's NER needs a spaCy model; the official ``en_core_web_*`` models are not
on PyPI (only unofficial re-uploads are), and no model hub is reachable from here, so
presidio runs on a blank English spaCy pipeline: tokenisation and its pattern, checksum
and context recognizers, no NER — which costs nothing on these six entity types, none of
which comes from NER. Its score threshold is chosen in its favour: the value in a small
grid that gives it the best personal-data F1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus import Sample, corpus, from_json, latency_prompts, to_json

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = Path(__file__).resolve().parent / ".peers-venv"

SECRET_CATEGORIES = (
    "cloud_credential",
    "code_host_token",
    "saas_token",
    "payment_credential",
    "ai_credential",
    "package_registry_token",
    "private_key",
    "token",
    "connection_string",
    "generic_secret",
)
PII_CATEGORIES = ("email", "phone", "payment_card", "iban", "national_id", "ip_address")
GROUPS = {"secrets": SECRET_CATEGORIES, "pii": PII_CATEGORIES}
PRESIDIO_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True, slots=True)
class Pred:
    start: int
    end: int
    group: str  # secrets | pii
    category: str
    score: float = 1.0
    test_value: bool = False


@dataclass
class Counts:
    labels: int = 0
    labels_found: int = 0
    preds: int = 0
    preds_right: int = 0

    @property
    def recall(self) -> float:
        return self.labels_found / self.labels if self.labels else float("nan")

    @property
    def precision(self) -> float:
        return self.preds_right / self.preds if self.preds else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if p != p or r != r or p + r == 0:  # nan or zero
            return float("nan") if p != p or r != r else 0.0
        return 2 * p * r / (p + r)


@dataclass
class Report:
    groups: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    categories: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    clean: int = 0
    clean_flagged: int = 0
    negatives: int = 0
    negatives_flagged: int = 0
    agreement: tuple[int, int] = (0, 0)  # labels matched with the exact category, matched
    test_values: int = 0  # findings marked test_value: counted, not scored
    misses: list[tuple[Sample, str]] = field(default_factory=list)  # (sample, label text)
    false: list[tuple[Sample, Pred]] = field(default_factory=list)

    @property
    def clean_share(self) -> float:
        return self.clean_flagged / self.clean if self.clean else 0.0

    @property
    def negative_share(self) -> float:
        return self.negatives_flagged / self.negatives if self.negatives else 0.0


def _overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def evaluate(samples: list[Sample], preds: dict[str, list[Pred]]) -> Report:
    """Score predictions against the labels (matching as defined in the module docstring)."""
    report = Report()
    agree = matched = 0
    for sample in samples:
        found = [p for p in preds.get(sample.id, []) if p.group in GROUPS and not p.test_value]
        report.test_values += sum(p.test_value for p in preds.get(sample.id, []))
        if sample.kind == "clean":
            report.clean += 1
            report.clean_flagged += bool(found)
        elif sample.kind == "hard_negative":
            report.negatives += 1
            report.negatives_flagged += bool(found)
        for label in sample.labels:
            hits = [
                p
                for p in found
                if p.group == label.detector and _overlap(p.start, p.end, label.start, label.end)
            ]
            for counts in (report.groups[label.detector], report.categories[label.category]):
                counts.labels += 1
                counts.labels_found += bool(hits)
            if hits:
                matched += 1
                agree += any(p.category == label.category for p in hits)
            else:
                report.misses.append((sample, sample.text[label.start : label.end]))
        for p in found:
            right = any(
                lb.detector == p.group and _overlap(p.start, p.end, lb.start, lb.end)
                for lb in sample.labels
            )
            for counts in (report.groups[p.group], report.categories[p.category]):
                counts.preds += 1
                counts.preds_right += right
            if not right:
                report.false.append((sample, p))
    report.agreement = (agree, matched)
    return report


# --------------------------------------------------------------------------- ours


def our_scanner() -> Callable[[str], list[Pred]]:
    from posturio.gateway.inspection.engine import Inspector

    inspector = Inspector(b"bench-detection")

    def scan(text: str) -> list[Pred]:
        return [
            Pred(f.start, f.end, f.detector, f.category, f.score, f.test_value)
            for f in inspector.inspect(text)
            if f.detector in GROUPS
        ]

    scan("warm up")
    return scan


def our_predictions(samples: list[Sample]) -> dict[str, list[Pred]]:
    scan = our_scanner()
    return {s.id: scan(s.text) for s in samples}


def timed(fn: Callable[[str], object], text: str, runs: int, budget_s: float) -> list[float]:
    """Run up to `runs` times or until the time budget is spent (at least 5 runs)."""
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(out) < runs and (len(out) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - start) * 1e6)
    return out


LATENCY_RUNS = {"clean 2 KB": 2000, "2 KB with findings": 2000, "clean 100 KB": 200}


def latency(
    fn: Callable[[str], object], prompts: dict[str, str], budget_s: float
) -> dict[str, list[float]]:
    return {name: timed(fn, text, LATENCY_RUNS[name], budget_s) for name, text in prompts.items()}


# --------------------------------------------------------------------------- peers (outside)


def ensure_peers() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if not (PEERS_VENV / ".installed").exists():
        print("installing detect-secrets and presidio-analyzer into bench/.peers-venv (once)…")
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "detect-secrets", "presidio-analyzer"], check=True)
        # The official spaCy English models are published on GitHub releases, not PyPI;
        # try anyway, so that a mirror that carries them gives presidio its NER.
        got = subprocess.run([*pip, "en-core-web-sm"], capture_output=True, check=False)
        (PEERS_VENV / ".spacy-model").write_text("en_core_web_sm" if got.returncode == 0 else "")
        (PEERS_VENV / ".installed").write_text("ok\n")
    return python


def run_peer(
    name: str, samples: list[Sample], prompts: dict[str, str]
) -> tuple[dict[str, list[Pred]], dict[str, list[float]], str]:
    python = ensure_peers()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.json", Path(tmp) / "out.json"
        src.write_text(json.dumps({"samples": json.loads(to_json(samples)), "prompts": prompts}))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
        subprocess.run(
            [str(python), "-m", "bench.detection", "--worker", name, str(src), str(dst)],
            cwd=ROOT,
            env=env,
            check=True,
        )
        out = json.loads(dst.read_text())
    preds = {sid: [Pred(*p) for p in ps] for sid, ps in out["preds"].items()}
    return preds, out["latency"], out["note"]


# --------------------------------------------------------------------------- peers (inside)

DETECT_SECRETS_TYPES = {
    "AWS Access Key": "cloud_credential",
    "Azure Storage Account access key": "cloud_credential",
    "IBM Cloud IAM Key": "cloud_credential",
    "IBM COS HMAC Credentials": "cloud_credential",
    "SoftLayer Credentials": "cloud_credential",
    "Cloudant Credentials": "cloud_credential",
    "GitHub Token": "code_host_token",
    "GitLab Token": "code_host_token",
    "Slack Token": "saas_token",
    "SendGrid API Key": "saas_token",
    "Twilio API Key": "saas_token",
    "Mailchimp Access Key": "saas_token",
    "Discord Bot Token": "saas_token",
    "Telegram Bot Token": "saas_token",
    "Stripe Access Key": "payment_credential",
    "Square OAuth Secret": "payment_credential",
    "OpenAI Token": "ai_credential",
    "NPM tokens": "package_registry_token",
    "PyPI upload token": "package_registry_token",
    "Artifactory Credentials": "package_registry_token",
    "Private Key": "private_key",
    "JSON Web Token": "token",
    "Basic Auth Credentials": "connection_string",
    "Secret Keyword": "generic_secret",
    "Base64 High Entropy String": "generic_secret",
    "Hex High Entropy String": "generic_secret",
}
PRESIDIO_TYPES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "payment_card",
    "IBAN_CODE": "iban",
    "US_SSN": "national_id",
    "IP_ADDRESS": "ip_address",
}


_KEEP: list[object] = []  # a context left open must stay referenced, or it closes


def _detect_secrets_scanner() -> tuple[Callable[[str], list[Pred]], str]:
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings

    _KEEP.append(default_settings())  # entered for the life of the worker process
    _KEEP[-1].__enter__()

    def scan(text: str) -> list[Pred]:
        lines = text.split("\n")
        starts, pos = [], 0
        for line in lines:
            starts.append(pos)
            pos += len(line) + 1
        out = []
        for secret in _process_line_based_plugins(
            lines=list(enumerate(lines, start=1)), filename="prompt.txt"
        ):
            if secret.type.startswith("Public IP"):
                continue
            line, base = lines[secret.line_number - 1], starts[secret.line_number - 1]
            value = secret.secret_value or ""
            at = line.find(value) if value else -1
            start, end = (
                (base + at, base + at + len(value)) if at >= 0 else (base, base + len(line))
            )
            category = DETECT_SECRETS_TYPES.get(secret.type, "generic_secret")
            out.append(Pred(start, end, "secrets", category))
        return out

    return scan, "detect-secrets default plugins and filters, prompt scanned as prompt.txt"


def _presidio_scanner() -> tuple[Callable[[str], list[Pred]], str]:
    import logging

    import spacy
    import tldextract
    import tldextract.tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    # Offline: the public-suffix list bundled with tldextract, never a download.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    model = (PEERS_VENV / ".spacy-model").read_text().strip() if PEERS_VENV.exists() else ""
    if model and spacy.util.is_package(model):
        nlp, note = spacy.load(model), f"presidio with spaCy model {model}"
    else:
        nlp = spacy.blank("en")
        note = "presidio on a blank spaCy pipeline (no en_core_web_* model on PyPI): no NER"

    class Engine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": nlp}

    engine = Engine(models=[{"lang_code": "en", "model_name": model or "blank"}])
    engine.load()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=engine)
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
    entities = list(PRESIDIO_TYPES)

    def scan(text: str) -> list[Pred]:
        return [
            Pred(r.start, r.end, "pii", PRESIDIO_TYPES[r.entity_type], float(r.score))
            for r in analyzer.analyze(text, language="en", entities=entities, score_threshold=0)
            if r.entity_type in PRESIDIO_TYPES
        ]

    return scan, note


def worker(name: str, src: str, dst: str) -> None:
    data = json.loads(Path(src).read_text())
    samples = from_json(json.dumps(data["samples"]))
    scan, note = _detect_secrets_scanner() if name == "detect-secrets" else _presidio_scanner()
    scan("warm up")
    preds = {s.id: [list(vars_(p)) for p in scan(s.text)] for s in samples}
    lat = latency(scan, data["prompts"], budget_s=8.0)
    Path(dst).write_text(json.dumps({"preds": preds, "latency": lat, "note": note}))
    while _KEEP:  # close what was opened, before the interpreter starts tearing down
        _KEEP.pop().__exit__(None, None, None)  # type: ignore[attr-defined]


def vars_(p: Pred) -> tuple[int, int, str, str, float]:
    return (p.start, p.end, p.group, p.category, p.score)


# --------------------------------------------------------------------------- report


def _fmt(x: float) -> str:
    return "  —  " if x != x else f"{x:5.3f}"


def _prf(c: Counts | None) -> str:
    if c is None:
        return f"{'—':^21}"
    return f"{_fmt(c.precision)} {_fmt(c.recall)} {_fmt(c.f1)}  "


def _us(samples: list[float] | None) -> str:
    if not samples:
        return f"{'—':^21}"
    q = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else []
    p50, p99 = (q[49], q[98]) if q else (samples[0], samples[0])

    def unit(us: float) -> str:
        return f"{us:,.0f} µs" if us < 10_000 else f"{us / 1000:,.0f} ms"

    return f"{unit(p50):>9} / {unit(p99):<9}  "


def best_threshold(samples: list[Sample], preds: dict[str, list[Pred]]) -> float:
    def f1(t: float) -> float:
        kept = {k: [p for p in v if p.score >= t] for k, v in preds.items()}
        value = evaluate(samples, kept).groups["pii"].f1
        return -1.0 if value != value else value

    return max(PRESIDIO_THRESHOLDS, key=f1)


Column = tuple[str, Report | None, set[str], dict[str, list[float]] | None]


def print_table(samples: list[Sample], columns: list[Column], *, timings: bool = True) -> None:
    kinds = defaultdict(int)
    for s in samples:
        kinds[s.kind] += 1
    labels = defaultdict(int)
    for s in samples:
        for lb in s.labels:
            labels[lb.detector] += 1
    print(
        f"\nCorpus: {len(samples)} prompts ({kinds['positive']} with findings, "
        f"{kinds['hard_negative']} hard negatives, {kinds['clean']} clean); "
        f"{labels['secrets']} secret and {labels['pii']} personal-data labels.\n"
    )
    head = f"{'':<26}" + "".join(f"{name:<23}" for name, *_ in columns)
    sub = f"{'':<26}" + "".join(f"{'P':>5} {'R':>5} {'F1':>5}  " + "  " for _ in columns)
    print(head)
    print(sub)
    for group, cats in GROUPS.items():
        row = f"{group:<26}"
        for _, rep, covers, _ in columns:
            row += _prf(rep.groups[group] if rep and group in covers else None) + "  "
        print(row)
        for cat in cats:
            row = f"  {cat:<24}"
            for _, rep, covers, _ in columns:
                row += _prf(rep.categories[cat] if rep and group in covers else None) + "  "
            print(row)
    for title, attr in (
        ("clean prompts flagged", "clean_share"),
        ("hard negatives flagged", "negative_share"),
    ):
        row = f"{title:<26}"
        for _, rep, _, _ in columns:
            row += f"{getattr(rep, attr) * 100:>16.2f} %     " if rep else f"{'—':^23}"
        print(row)
    if not timings:
        return
    print("\nLatency per prompt (p50 / p99)")
    for name in LATENCY_RUNS:
        row = f"  {name:<24}"
        for _, _, _, lat in columns:
            row += f"{_us(lat.get(name) if lat else None):<23}"
        print(row)


def classifier_section(prompt: str) -> None:
    """The injection classifier (bench/train_injection.py): precision, recall and share of
    clean texts flagged on the held-out side of bench/injection_data.py, per shape, and
    its cost on a clean 2 KB prompt (every window hashed and scored, one CPU core shared
    with whatever else runs)."""
    from bench.train_injection import held_out_scores, report
    from posturio.gateway.inspection.classifier import classifier, windows

    data, scores = held_out_scores()
    model = classifier()
    limits = (model.threshold, model.threshold_long)
    print(f"\nInjection classifier {model.version} (thresholds {limits[0]:.3f}, {limits[1]:.3f})")
    report("held out", data, scores, limits)
    model.score(prompt)  # warm
    runs = timed(lambda t: model.score(t), prompt, runs=20, budget_s=20.0)
    print(
        f"cost per clean 2 KB prompt ({len(windows(prompt))} windows): "
        f"p50 {statistics.median(runs) / 1000:.1f} ms, max {max(runs) / 1000:.1f} ms "
        "(inline only where a policy blocks or reroutes on injection)"
    )


# --------------------------------------------------------------------------- personal tier

PERSONAL = ("person_name", "street_address", "date_of_birth")


def _same_value(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Spans that share at least half of the longer one."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return shared * 2 >= max(a[1] - a[0], b[1] - b[0])


def personal_section(samples: list[Sample], prompts: dict[str, str]) -> None:
    """The personal-data tier (names, street addresses, dates of birth; off unless a
    policy names it) on bench/data/pii_dev.json (the tier was tuned on it) and
    pii_heldout.json (other locales and wording, see bench/pii_data.py): per category
    precision and recall, spans matching when they share half the longer one. Then the
    share of the main corpus's clean prompts where it finds anything (those prompts do
    name people now and then: every finding counted as false) and its cost per prompt on
    top of the format detectors."""
    from bench.pii_data import load
    from posturio.gateway.inspection.engine import Inspector
    from posturio.gateway.inspection.personal import warm

    warm()
    inspector = Inspector(b"bench-detection")

    def tier(text: str) -> list[tuple[int, int, str]]:
        found = inspector.inspect(text, personal=True)
        return [(f.start, f.end, f.category) for f in found if f.category in PERSONAL]

    print("\nPersonal-data tier (policy opt-in)")
    print(f"  {'set':<10}{'category':<16}{'precision':<11}{'recall':<8}{'F1':<7}labels")
    for name in ("pii_dev", "pii_heldout"):
        counts = {c: Counts() for c in PERSONAL}
        for sample in load(name):
            text, labels = str(sample["text"]), sample["labels"]
            assert isinstance(labels, list)
            found = tier(text)
            for lb in labels:
                span, category = (lb["start"], lb["end"]), lb["category"]
                counts[category].labels += 1
                counts[category].labels_found += any(
                    c == category and _same_value((s, e), span) for s, e, c in found
                )
            for s, e, c in found:
                counts[c].preds += 1
                counts[c].preds_right += any(
                    lb["category"] == c and _same_value((s, e), (lb["start"], lb["end"]))
                    for lb in labels
                )
        for c, n in counts.items():
            print(
                f"  {name[4:]:<10}{c:<16}{_fmt(n.precision):<11}{_fmt(n.recall):<8}"
                f"{_fmt(n.f1):<7}{n.labels}"
            )
    clean = [s for s in samples if s.kind == "clean"]
    flagged = sum(bool(tier(s.text)) for s in clean)
    print(f"  main corpus clean prompts with a finding: {flagged}/{len(clean)}")

    def with_tier(text: str) -> object:
        return inspector.inspect(text, personal=True)

    for k, text in prompts.items():
        runs = 200 if len(text) < 10_000 else 20
        off = statistics.median(timed(inspector.inspect, text, runs, 5.0))
        on = statistics.median(timed(with_tier, text, runs, 5.0))
        print(
            f"  {k:<22} p50 {off:,.0f} µs without the tier, {on:,.0f} µs with it "
            f"(+{on - off:,.0f} µs)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-peers", action="store_true", help="only our inspector")
    parser.add_argument("--misses", action="store_true", help="list our misses and false finds")
    parser.add_argument(
        "--no-classifier", action="store_true", help="skip the injection classifier's section"
    )
    parser.add_argument(
        "--no-personal", action="store_true", help="skip the personal-data tier's section"
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    started = time.perf_counter()
    samples = corpus()
    prompts = latency_prompts()
    scan = our_scanner()
    our_lat = latency(scan, prompts, budget_s=10.0)
    our_preds = {s.id: scan(s.text) for s in samples}
    ours = evaluate(samples, our_preds)
    round2 = [s for s in samples if s.id.startswith("r2-")]
    # (name, predictions, groups covered, latency)
    runs: list[tuple[str, dict[str, list[Pred]], set[str], dict[str, list[float]] | None]] = [
        ("ours", our_preds, {"secrets", "pii"}, our_lat)
    ]
    notes = []
    if not args.no_peers:
        ds_preds, ds_lat, ds_note = run_peer("detect-secrets", samples, prompts)
        runs.append(("detect-secrets", ds_preds, {"secrets"}, ds_lat))
        notes.append(ds_note)
        pr_preds, pr_lat, pr_note = run_peer("presidio", samples, prompts)
        t = best_threshold(samples, pr_preds)
        kept = {k: [p for p in v if p.score >= t] for k, v in pr_preds.items()}
        runs.append((f"presidio (score>={t:g})", kept, {"pii"}, pr_lat))
        notes.append(f"{pr_note}; score threshold {t:g} chosen from {PRESIDIO_THRESHOLDS}")
    print_table(samples, [(n, evaluate(samples, p), c, lat) for n, p, c, lat in runs])
    print("\nRound 2 alone:", end="")
    columns = [(n, evaluate(round2, p), c, None) for n, p, c, _ in runs]
    print_table(round2, columns, timings=False)
    agree, matched = ours.agreement
    print(f"\nours: category agreement on matched labels {agree}/{matched}")
    print(
        f"ours: {ours.test_values} findings marked test_value (documented test values, not scored)"
    )
    print(
        "note: the corpus and our rules were written by the same hand; ours at 1.000 means "
        "every format and context in it is covered, not that unseen formats would be"
    )
    for note in notes:
        print(f"note: {note}")
    if not args.no_personal:
        personal_section(samples, prompts)
    if not args.no_classifier:
        classifier_section(prompts["clean 2 KB"])
    print(f"bench time {time.perf_counter() - started:.0f} s")
    if args.misses:
        print("\n-- our misses")
        for sample, value in ours.misses:
            print(f"{sample.id}: {value[:100]!r}")
        print("\n-- our false findings")
        for sample, p in ours.false:
            print(f"{sample.id} [{p.category}]: {sample.text[p.start : p.end][:100]!r}")


if __name__ == "__main__":
    main()
