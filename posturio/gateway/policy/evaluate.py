"""A tenant's policy compiled for the hot path, and its evaluation: inspect every segment,
give each finding the action of the first rule that matches it (shadow rules record what
they would have done and let evaluation go on), and take the strongest action as the
request's decision. Redaction rewrites the segments in place."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import hyperscan
import msgspec

from posturio.gateway.inspection.classifier import (
    MAX_CHARS,
    RULE_ID,
    Score,
    classifier,
    windows,
)
from posturio.gateway.inspection.engine import (
    Finding,
    Inspector,
    RuleSet,
    keywords_pattern,
    normalize,
)
from posturio.gateway.inspection.personal import PERSONAL_RULES
from posturio.gateway.inspection.personal import warm as warm_personal
from posturio.gateway.inspection.phones import DEFAULT_REGIONS
from posturio.gateway.inspection.rules import Rule
from posturio.gateway.inspection.segments import Segment
from posturio.gateway.policy.schema import (
    SEVERITY,
    CustomDetector,
    PolicyDoc,
    PolicyRule,
    invalid,
)
from posturio.gateway.tokens import estimate_text

SNAPSHOT_CHARS = 8_000
QUOTE_CHARS = 300  # an instruction's text in a finding's preview
# Instructions are not secrets: a reviewer must read them to judge them. Every other
# detector's values (credentials, personal data, a tenant's own terms) stay masked.
QUOTED_DETECTORS = frozenset({"injection"})


@dataclass(frozen=True, slots=True)
class Context:
    key_id: uuid.UUID | None
    key_tags: frozenset[str]
    alias: str
    origin: str = "api"  # api | navigator
    direction: str = "input"  # input | output
    dialect: str = "chat"  # chat | messages | responses: how the client spoke


@dataclass(slots=True)
class Hit:
    finding: Finding
    where: str
    action: str  # what the deciding rule does with it ("allow" when no rule matched)
    rule: PolicyRule | None
    shadow: list[PolicyRule] = field(default_factory=list)
    # An instruction's text as written, with any value inside it masked (None: masked)
    quote: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = self.finding.as_dict()
        if self.quote is not None:
            out["preview"] = clip(self.quote, QUOTE_CHARS)
        out["where"] = self.where
        out["action"] = self.action
        out["policy_rule"] = self.rule.id if self.rule else None
        if self.shadow:
            out["shadow"] = [{"policy_rule": r.id, "would": r.action} for r in self.shadow]
        return out


@dataclass(slots=True)
class Verdict:
    action: str = "allow"
    rule: PolicyRule | None = None  # the rule behind the decision
    hits: list[Hit] = field(default_factory=list)

    @property
    def reroute_to(self) -> str | None:
        return self.rule.reroute_to if self.rule and self.action == "reroute" else None

    @property
    def shadowed(self) -> bool:
        return any(h.shadow for h in self.hits)

    @property
    def recorded(self) -> bool:
        """Worth a decision record: anything but a plain allow, or a shadow rule's match."""
        return self.action != "allow" or self.shadowed

    def findings_header(self) -> str:
        counts = Counter(h.finding.category for h in self.hits)
        return ",".join(f"{c}={n}" for c, n in sorted(counts.items())) or "none"

    def block_message(self) -> str | None:
        """Names the rule and what was found where; never the value itself."""
        hit = next((h for h in self.hits if h.action == "block" and h.rule), None)
        if hit is None or hit.rule is None:
            return None
        f = hit.finding
        return f"blocked by policy rule '{hit.rule.id}': {f.category} ({f.rule}) in {hit.where}"


REVIEWED = frozenset({"flag", "block"})  # a finding with one of these goes to review


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _custom_rule(d: CustomDetector) -> Rule:
    pattern = keywords_pattern(d.keywords) if d.keywords is not None else d.pattern or ""
    evidence = "tenant keyword" if d.keywords is not None else "tenant pattern"
    return Rule(
        f"custom.{d.id}", "custom", d.category, pattern, lambda _v: evidence, d.score, d.caseless
    )


_RULESETS: dict[bytes, RuleSet] = {}


def _ruleset(detectors: list[CustomDetector]) -> RuleSet | None:
    """Compiled once per distinct set of custom detectors, shared across versions/tenants."""
    if not detectors:
        return None
    key = msgspec.json.encode(detectors)
    ruleset = _RULESETS.get(key)
    if ruleset is None:
        if len(_RULESETS) >= 512:
            _RULESETS.pop(next(iter(_RULESETS)))
        ruleset = _RULESETS[key] = RuleSet(tuple(_custom_rule(d) for d in detectors), tenant=True)
    return ruleset


def compile_detectors(doc: PolicyDoc) -> None:
    """Compile the custom detectors now (at save time) so that a pattern RE2 accepts but
    Hyperscan cannot take is refused with a reason instead of failing at load."""
    try:
        _ruleset(doc.detectors)
    except hyperscan.error as exc:
        raise invalid(f"the custom detectors cannot be compiled: {exc}") from None


def fingerprint_key(secret: bytes, tenant_id: uuid.UUID) -> bytes:
    """Per tenant: a fingerprint means nothing outside the tenant that saw the value."""
    return hmac.new(secret, b"fingerprint:" + tenant_id.bytes, hashlib.sha256).digest()


class CompiledPolicy:
    def __init__(
        self, policy_id: uuid.UUID | None, version: int, doc: PolicyDoc, key: bytes
    ) -> None:
        self.id = policy_id
        self.version = version
        self.doc = doc
        self.inspector = Inspector(
            key,
            _ruleset(doc.detectors),
            allow_fingerprints=frozenset(doc.allowlist.fingerprints),
            allow_patterns=tuple(doc.allowlist.patterns),
            phone_regions=phone_regions(doc),
        )
        live = [r for r in doc.rules if r.enabled]
        self._rules = {
            "input": [r for r in live if r.match.direction == "input"],
            "output": [r for r in live if r.match.direction == "output"],
        }
        # The rules (shadow ones too) that ask for the personal-data tier by name: only
        # then do names, street addresses and dates of birth get looked for.
        self._personal_rules = {
            d: [r for r in rs if _asks_personal(r)] for d, rs in self._rules.items()
        }
        if any(self._personal_rules.values()):
            warm_personal()
        # The input rules that would block or reroute on the classifier's finding: only
        # then does the classifier run inline (empty: no cost at all).
        self._classifier_rules = [r for r in self._rules["input"] if _acts_inline(r)]
        # ... and those that would flag it: then the classifier runs after the request.
        self._deferred_rules = [r for r in self._rules["input"] if _flags_classifier(r)]

    @property
    def label(self) -> str:
        return f"{self.id or 'default'};v={self.version}"

    def defers_classification(self, ctx: Context) -> PolicyRule | None:
        """The rule that flags the classifier's finding when it runs after the request
        (tasks.classify_injection): None when it runs inline or no rule would act."""
        if ctx.direction != "input" or any(
            _context_matches(r, ctx) for r in self._classifier_rules
        ):
            return None
        return next((r for r in self._deferred_rules if _context_matches(r, ctx)), None)

    async def evaluate_off_loop(self, segments: list[Segment], ctx: Context) -> Verdict:
        """`evaluate` for a server: when a rule blocks or reroutes on injection, the
        classifier's embeddings (seconds for a long prompt) run in a thread, not on the
        event loop; everything else is the same call."""
        scores = None
        if ctx.direction == "input" and any(
            _context_matches(r, ctx) for r in self._classifier_rules
        ):
            todo = [(s.where, normalize(s.text)) for s in segments if s.text.strip()]
            texts = [text for _, text in todo]
            results = await asyncio.to_thread(classifier().score_many, texts)
            scores = {where: r for (where, _), r in zip(todo, results, strict=True)}
        return self.evaluate(segments, ctx, scores)

    def personal_tier(self, ctx: Context) -> bool:
        """Whether this request's prompts (or answers) are read for names, street
        addresses and dates of birth: a rule that asks for them applies to it."""
        return any(_context_matches(r, ctx) for r in self._personal_rules[ctx.direction])

    def output_rules(self, ctx: Context) -> list[PolicyRule]:
        return [r for r in self._rules["output"] if _context_matches(r, ctx)]

    def evaluate(
        self, segments: list[Segment], ctx: Context, scores: dict[str, Score] | None = None
    ) -> Verdict:
        if not self._rules[ctx.direction]:
            return Verdict()  # no rule could act on a finding: nothing to inspect
        hits: list[tuple[Finding, str, str | None]] = []
        personal = self.personal_tier(ctx)
        for segment in segments:
            found = self.inspector.inspect(segment.text, personal=personal)
            quoted = any(f.detector in QUOTED_DETECTORS for f in found)
            text = normalize(segment.text) if quoted else ""
            for finding in found:
                hits.append((finding, segment.where, self._quote(text, finding)))
        if ctx.direction == "input":
            hits += [(f, where, None) for f, where in self._size(segments)]
            if any(_context_matches(r, ctx) for r in self._classifier_rules):
                hits += self._classify(segments, hits, scores)
        if not hits:
            return Verdict()
        rules = [r for r in self._rules[ctx.direction] if _context_matches(r, ctx)]
        verdict = Verdict()
        for finding, where, quote in hits:
            hit = _decide(finding, where, rules)
            hit.quote = quote
            verdict.hits.append(hit)
            if hit.rule is not None and SEVERITY[hit.action] > SEVERITY[verdict.action]:
                verdict.action, verdict.rule = hit.action, hit.rule
        return verdict

    def _quote(self, text: str, finding: Finding) -> str | None:
        """An instruction as written, with every value another detector finds inside it
        masked. The instruction's own match hid any weaker finding it overlapped, so each
        round breaks the instructions' first letters and inspects again (a few rounds:
        instruction rules hold at most one free-text gap)."""
        if finding.detector not in QUOTED_DETECTORS:
            return None
        chars = list(text[finding.start : finding.end])
        masked: list[Finding] = []
        for _ in range(3):
            found = self.inspector.inspect("".join(chars))
            masked += [f for f in found if f.detector not in QUOTED_DETECTORS]
            instructions = [f for f in found if f.detector in QUOTED_DETECTORS]
            if not instructions:
                break
            for f in instructions:
                chars[f.start] = " "
        else:
            return None  # still hiding something after the rounds: keep it masked
        spans: list[tuple[int, int, str]] = []
        for f in sorted(masked, key=lambda f: f.start):  # one mask over overlapping values
            if spans and f.start < spans[-1][1]:
                start, end, label = spans[-1]
                spans[-1] = (start, max(end, f.end), label)
            else:
                spans.append((f.start, f.end, f"[{f.category.upper()}]"))
        return replace_spans(text[finding.start : finding.end], spans)

    def _classify(
        self,
        segments: list[Segment],
        hits: list[tuple[Finding, str, str | None]],
        scores: dict[str, Score] | None,
    ) -> list[tuple[Finding, str, str | None]]:
        """The injection classifier on every segment no injection rule already caught;
        a finding for each segment it fires on, spanning its strongest window. `scores`:
        already computed by the caller (by where), else scored here."""
        caught = {where for f, where, _q in hits if f.detector == "injection"}
        todo = [s for s in segments if s.where not in caught and s.text.strip()]
        if not todo:
            return []
        texts = [normalize(s.text) for s in todo]
        if scores is None:
            results = classifier().score_many(texts)
        else:
            results = [scores[s.where] for s in todo]
        found = []
        for segment, text, result in zip(todo, texts, results, strict=True):
            if result.fired:
                finding = classifier_finding(text, result, self.inspector)
                found.append((finding, segment.where, self._quote(text, finding)))
        return found

    def _size(self, segments: list[Segment]) -> list[tuple[Finding, str]]:
        limits = self.doc.size
        chars = sum(len(s.text) for s in segments)
        messages = len({s.where.split(".", 1)[0] for s in segments})
        measured = [
            ("size.chars", chars, limits.max_chars, "characters"),
            ("size.messages", messages, limits.max_messages, "messages"),
        ]
        if limits.max_tokens is not None:
            tokens = sum(estimate_text(s.text) for s in segments)
            measured.append(("size.tokens", tokens, limits.max_tokens, "estimated tokens"))
        return [
            (
                Finding("size", rule, "size", 0, 0, 1.0, f"{n} {unit} > limit {limit}", "", ""),
                "request",
            )
            for rule, n, limit, unit in measured
            if limit is not None and n > limit
        ]


# What the classifier's finding looks like to a policy rule (its score at the top).
_CLASSIFIER_PROBE = Finding("injection", RULE_ID, "prompt_injection", 0, 0, 1.0, "", "", "")


# What the tier's findings look like to a policy rule (their score at the top).
_PERSONAL_PROBES = [
    Finding(r.detector, r.id, r.category, 0, 0, 1.0, "", "", "") for r in PERSONAL_RULES
]


def _asks_personal(rule: PolicyRule) -> bool:
    """A rule that names the tier's categories or rule ids and would match its findings.
    `detectors: ["pii"]` alone (the default policy's rule) does not switch the tier on:
    it costs more than the format detectors, so a tenant asks for it explicitly."""
    m = rule.match
    named = m.categories is not None or m.rules is not None
    return named and any(_finding_matches(rule, probe) for probe in _PERSONAL_PROBES)


def phone_regions(doc: PolicyDoc) -> tuple[str, ...]:
    """The policy's phone region first, then the built-in hints."""
    if doc.phone_region is None:
        return DEFAULT_REGIONS
    return (doc.phone_region, *(r for r in DEFAULT_REGIONS if r != doc.phone_region))


def _acts_inline(rule: PolicyRule) -> bool:
    return (
        not rule.shadow
        and rule.action in ("block", "reroute")
        and _finding_matches(rule, _CLASSIFIER_PROBE)
    )


def _flags_classifier(rule: PolicyRule) -> bool:
    return not rule.shadow and rule.action == "flag" and _finding_matches(rule, _CLASSIFIER_PROBE)


def classifier_finding(text: str, result: Score, inspector: Inspector) -> Finding:
    """The classifier's finding on `text` (normalized): its strongest window's span, the
    probability as its score, the weights' version in its evidence."""
    piece = windows(text)[result.window]
    start = max(0, text.find(piece))
    return Finding(
        "injection",
        RULE_ID,
        "prompt_injection",
        start,
        start + len(piece),
        round(result.score, 4),
        f"classifier {classifier().version}",
        inspector.fingerprint(piece),
        "",
    )


def _context_matches(rule: PolicyRule, ctx: Context) -> bool:
    m = rule.match
    return (
        (m.keys is None or ctx.key_id in m.keys)
        and (m.key_tags is None or not ctx.key_tags.isdisjoint(m.key_tags))
        and (m.models is None or ctx.alias in m.models)
        and (m.origins is None or ctx.origin in m.origins)
        and (m.dialects is None or ctx.dialect in m.dialects)
    )


def _finding_matches(rule: PolicyRule, f: Finding) -> bool:
    m = rule.match
    return (
        f.score >= m.min_score
        and (m.detectors is None or f.detector in m.detectors)
        and (m.categories is None or f.category in m.categories)
        and (m.rules is None or f.rule in m.rules)
    )


def rules_acting_on(doc: PolicyDoc, finding: Finding) -> list[PolicyRule]:
    """The enabled rules (shadow ones too, either direction, whatever their context) that
    a finding of this kind meets: what allowlisting its value silences."""
    return [r for r in doc.rules if r.enabled and _finding_matches(r, finding)]


def _decide(finding: Finding, where: str, rules: list[PolicyRule]) -> Hit:
    hit = Hit(finding, where, "allow", None)
    for rule in rules:
        if not _finding_matches(rule, finding):
            continue
        if rule.shadow:
            hit.shadow.append(rule)
            continue
        hit.action, hit.rule = rule.action, rule
        break
    return hit


# ---------------------------------------------------------------- rewriting and snapshots


class Labels:
    """Placeholders for one request: the same value gets the same label everywhere."""

    def __init__(self) -> None:
        self._by_fp: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()

    def placeholder(self, f: Finding) -> str:
        key = (f.category, f.fingerprint)
        label = self._by_fp.get(key)
        if label is None:
            self._counts[f.category] += 1
            label = self._by_fp[key] = f"[{f.category.upper()}_{self._counts[f.category]}]"
        return label

    def render(self, f: Finding, style: str) -> str:
        if style == "mask":
            return "*" * (f.end - f.start)
        if style == "hash":
            return f"[{f.category.upper()}:{f.fingerprint[:10]}]"
        return self.placeholder(f)


def _rewrite(text: str, spans: list[tuple[Finding, str]]) -> str:
    return replace_spans(text, [(f.start, f.end, replacement) for f, replacement in spans])


def _starts_piece(c: str) -> bool:
    """Normalization never reaches back across this character: a starter that is its own
    NFKC form (an invisible control is one too, and becomes a piece of its own)."""
    return c.isascii() or (
        unicodedata.category(c)[0] != "M"
        and unicodedata.combining(c) == 0
        and not "\u1100" <= c <= "\u11ff"  # Hangul jamo compose with their neighbours
        and unicodedata.is_normalized("NFKC", c)
    )


@dataclass(frozen=True, slots=True)
class Normalized:
    """normalize(raw), built piece by piece, and where each piece came from in `raw`, so
    a span found in the normalized text can be replaced in the text as it was written."""

    raw: str
    text: str
    starts: list[int] | None = None  # per character of text: its piece's start in raw
    ends: list[int] | None = None  # ... and end; None when text == raw

    @classmethod
    def of(cls, raw: str) -> Normalized:
        if raw.isascii():
            return cls(raw, raw)
        whole = normalize(raw)
        # Fine pieces almost always; pieces cut only before ASCII (which nothing composes
        # with) when a rare script composes across them; one piece as the last resort.
        for cuts_before in (_starts_piece, str.isascii, lambda _c: False):
            parts: list[str] = []
            starts: list[int] = []
            ends: list[int] = []
            begin = 0
            for i in range(1, len(raw) + 1):
                if i < len(raw) and not cuts_before(raw[i]):
                    continue
                piece = normalize(raw[begin:i])
                parts.append(piece)
                starts += [begin] * len(piece)
                ends += [i] * len(piece)
                begin = i
            if "".join(parts) == whole:
                break
        return cls(raw, whole, starts, ends)

    def raw_offset(self, index: int) -> int:
        """Where normalized character `index` (or the end) starts in raw."""
        if self.starts is None:
            return index
        return self.starts[index] if index < len(self.starts) else len(self.raw)

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        if self.ends is None or end <= start:
            return start, end
        return self.raw_offset(start), self.ends[end - 1]

    def index(self, raw_offset: int) -> int:
        """The first normalized character at or after `raw_offset` in raw."""
        if self.starts is None:
            return raw_offset
        return bisect.bisect_left(self.starts, raw_offset)


def rewrite_raw(norm: Normalized, spans: list[tuple[int, int, str]]) -> str:
    """The text as written, with spans of its normalized form replaced."""
    return replace_spans(norm.raw, [(*norm.raw_span(s, e), r) for s, e, r in spans])


def replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with each (start, end) replaced; a span overlapping an earlier one is skipped."""
    out, last = [], 0
    for start, end, replacement in sorted(spans):
        if start >= last:
            out += [text[last:start], replacement]
            last = end
    out.append(text[last:])
    return "".join(out)


def redact(segments: list[Segment], verdict: Verdict, labels: Labels) -> int:
    """Replace every finding whose action is redact; returns how many were replaced."""
    by_where: dict[str, list[tuple[Finding, str]]] = {}
    for h in verdict.hits:
        if h.action == "redact" and h.rule is not None:
            by_where.setdefault(h.where, []).append(
                (h.finding, labels.render(h.finding, h.rule.redact_style))
            )
    for segment in segments:
        spans = by_where.get(segment.where)
        if spans:
            # Rewritten in the text as written: only the values change, never the rest.
            norm = Normalized.of(segment.text)
            segment.replace(rewrite_raw(norm, [(f.start, f.end, r) for f, r in spans]))
    return sum(len(s) for s in by_where.values())


def masked_segments(segments: list[Segment], verdict: Verdict) -> list[tuple[str, str]]:
    """(where, text) of each segment with every finding's value replaced as in the
    snapshot: what the classifier reads after the request, never a raw value."""
    labels = Labels()
    out = []
    for segment in segments:
        spans = [
            (h.finding, h.quote if h.quote is not None else labels.placeholder(h.finding))
            for h in verdict.hits
            if h.where == segment.where and h.finding.end > h.finding.start
        ]
        text = normalize(segment.text)[:MAX_CHARS]
        out.append((segment.where, _rewrite(text, spans) if spans else text))
    return out


def snapshot(segments: list[Segment], verdict: Verdict) -> str:
    """The prompt as a reviewer may see it: every value (credentials, personal data, a
    tenant's terms) replaced by its placeholder whatever the action, so raw values are
    never stored; instructions stay readable, with any value inside them masked."""
    labels = Labels()
    by_where: dict[str, list[tuple[Finding, str]]] = {}
    for h in verdict.hits:
        if h.finding.end > h.finding.start:
            shown = h.quote if h.quote is not None else labels.placeholder(h.finding)
            by_where.setdefault(h.where, []).append((h.finding, shown))
    parts, size = [], 0
    for segment in segments:
        text = normalize(segment.text)
        spans = by_where.get(segment.where)
        part = f"{segment.where}: {_rewrite(text, spans) if spans else text}"
        parts.append(part[: SNAPSHOT_CHARS - size])
        size += len(parts[-1])
        if size >= SNAPSHOT_CHARS:
            parts.append("… (truncated)")
            break
    return "\n".join(parts)
