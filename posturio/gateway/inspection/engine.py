"""One pass over the prompt with every rule compiled into a Hyperscan database; only the
rules that fired are then run exactly and each candidate checked. A clean prompt costs
the single pass. Findings carry evidence, a keyed fingerprint and a masked preview; the
raw value never leaves this module.

Built-in rules are confirmed with Python `re` (they are ours and reviewed); a tenant's own
patterns are compiled in Hyperscan's prefilter mode and confirmed with RE2, so both steps
run in linear time whatever the tenant wrote."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Protocol
from urllib.parse import unquote

import hyperscan
import re2

from posturio.gateway.inspection.injection import INJECTION_RULES
from posturio.gateway.inspection.personal import PERSONAL_RULES, PersonalRule
from posturio.gateway.inspection.phones import DEFAULT_REGIONS
from posturio.gateway.inspection.rules import RULES, Rule

BUILTIN_RULES: tuple[Rule, ...] = RULES + INJECTION_RULES
# A documented test value's score: below every detection's, so that a policy rule with a
# `min_score` of 0.5 (the default policy's secret rules) leaves it alone.
TEST_VALUE_SCORE = 0.3
# Which of two overlapping findings stays: the rule's own score, also for a test value (a
# test card number is still a card, not the phone number inside it).
_PRIORITY = {r.id: r.score for r in BUILTIN_RULES} | {r.id: r.score for r in PERSONAL_RULES}

# Zero-width and bidi controls: invisible, and a classic way to split a secret.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")

# Encoded runs worth decoding once (bounded): long base64 and percent-encoding.
_B64_HINT = r"[A-Za-z0-9+/_\-]{32,}={0,2}"
_PCT_HINT = r"%[0-9A-Fa-f]{2}"
_B64_RUN = re.compile(_B64_HINT)
_PCT_RUN = re.compile(r"[^\s\"'<>]*(?:%[0-9A-Fa-f]{2}[^\s\"'<>]*){3,}")
MAX_DECODED_RUNS = 16  # runs that decode to text, inspected
MAX_TRIED = 64  # runs looked at, per kind
MAX_RUN_CHARS = 65_536


def normalize(text: str) -> str:
    if text.isascii():  # ASCII is NFKC already and has no invisible characters
        return text
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def compile_re2(pattern: str, *, caseless: bool) -> re2._Regexp:
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = not caseless
    return re2.compile(pattern, options)


def keywords_pattern(words: Iterable[str]) -> str:
    """One alternation; word boundaries only where the keyword starts/ends with a word
    character (a boundary next to punctuation would never match)."""

    def one(word: str) -> str:
        escaped = re.escape(word)
        left = r"\b" if re.match(r"\w", word) else ""
        right = r"\b" if re.search(r"\w$", word) else ""
        return f"{left}{escaped}{right}"

    return "(?:" + "|".join(one(w) for w in words) + ")"


class Matcher(Protocol):
    """What `re.Pattern` and an RE2 pattern both offer (positions are character offsets)."""

    def finditer(self, text: str, /) -> Iterator[re.Match[str]]: ...
    def search(self, text: str, pos: int = ..., endpos: int = ..., /) -> re.Match[str] | None: ...
    def match(self, text: str, pos: int = ..., /) -> re.Match[str] | None: ...


@dataclass(frozen=True, slots=True)
class Finding:
    detector: str
    rule: str
    category: str
    start: int  # offsets in the normalized text
    end: int
    score: float
    evidence: str
    fingerprint: str  # keyed hash: the same value matches across prompts, never reversible
    preview: str  # e.g. "AKIA…LE (20 chars)"
    test_value: bool = False  # a documented test value (4111 1111 1111 1111, …EXAMPLE)

    def as_dict(self) -> dict[str, object]:
        return {
            "detector": self.detector,
            "rule": self.rule,
            "category": self.category,
            "span": [self.start, self.end],
            "score": self.score,
            "evidence": self.evidence,
            "fingerprint": self.fingerprint,
            "preview": self.preview,
            "test_value": self.test_value,
        }


def preview(value: str) -> str:
    if len(value) <= 8:
        return f"{'*' * len(value)} ({len(value)} chars)"
    return f"{value[:4]}…{value[-2:]} ({len(value)} chars)"


class RuleSet:
    """Rules compiled into one Hyperscan database plus their exact matchers; immutable and
    shared. The built-in set (with the hints that trigger decoding) is compiled once per
    process; a tenant's own detectors form a small set of their own, compiled in
    milliseconds, confirmed with RE2."""

    def __init__(self, rules: tuple[Rule, ...], *, tenant: bool = False) -> None:
        self.rules = rules
        self.exact: list[Matcher] = [
            compile_re2(r.pattern, caseless=r.caseless) if tenant else r.compiled() for r in rules
        ]
        n = len(rules)
        self.b64_id, self.pct_id = (n, n + 1) if not tenant else (-1, -1)
        base = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8
        if tenant:
            base |= hyperscan.HS_FLAG_PREFILTER
        flags = [base | (hyperscan.HS_FLAG_CASELESS if r.caseless else 0) for r in rules]
        expressions = [r.pattern.encode() for r in rules]
        if not tenant:
            expressions += [_B64_HINT.encode(), _PCT_HINT.encode()]
            flags += [base, base]
        # SINGLEMATCH: one report per rule is all the prefilter needs (and stays cheap).
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(
            expressions=expressions,
            ids=list(range(len(expressions))),
            elements=len(expressions),
            flags=flags,
        )

    def fired(self, data: bytes) -> set[int]:
        hits: set[int] = set()

        def on_match(rule_id: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
            hits.add(rule_id)

        self.db.scan(data, match_event_handler=on_match)
        return hits


_BUILTIN: RuleSet | None = None


def builtin_ruleset() -> RuleSet:
    """Compiled on first use (about a second and a half): call it at startup."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = RuleSet(BUILTIN_RULES)
    return _BUILTIN


class Inspector:
    """The built-in rules, a tenant's own (optional), a fingerprint key, an allowlist and
    the regions whose national phone formats count; cheap to create, safe to share within
    a process."""

    def __init__(
        self,
        fingerprint_key: bytes,
        tenant_rules: RuleSet | None = None,
        *,
        allow_fingerprints: frozenset[str] = frozenset(),
        allow_patterns: tuple[str, ...] = (),
        phone_regions: tuple[str, ...] = DEFAULT_REGIONS,
    ) -> None:
        self._key = fingerprint_key
        self._regions = phone_regions
        self._sets = (builtin_ruleset(), tenant_rules) if tenant_rules else (builtin_ruleset(),)
        self._allow_fps = allow_fingerprints
        self._allow = [compile_re2(p, caseless=False) for p in allow_patterns]

    def fingerprint(self, value: str) -> str:
        # BLAKE2b in keyed mode is a MAC by design, and several times cheaper than HMAC.
        return hashlib.blake2b(value.encode(), key=self._key[:64], digest_size=12).hexdigest()

    def inspect(self, text: str, *, personal: bool = False) -> list[Finding]:
        """Every finding in `text`; `personal` adds the personal-data tier (names, street
        addresses, dates of birth: personal.py), which only a policy asking for it runs."""
        text = normalize(text)
        findings = self._inspect(text, decode=True)
        if personal:
            for rule in PERSONAL_RULES:
                findings += self._personal(text, rule)
            findings = _without_overlaps(findings)
        return findings

    def _personal(self, text: str, rule: PersonalRule) -> list[Finding]:
        found = []
        for start, end, evidence in rule.find(text):
            value = text[start:end]
            if not self._allowed(value):
                found.append(
                    Finding(
                        detector=rule.detector,
                        rule=rule.id,
                        category=rule.category,
                        start=start,
                        end=end,
                        score=rule.score,
                        evidence=evidence,
                        fingerprint=self.fingerprint(value),
                        preview=preview(value),
                    )
                )
        return found

    def _inspect(self, text: str, *, decode: bool) -> list[Finding]:
        """Scan in overlapping blocks and confirm each fired rule only inside the blocks
        where it fired: Python's `re` costs tens of nanoseconds per character, Hyperscan a
        few. A candidate's full extent is then matched from its start, unbounded, so a
        long value (a private key, a token) is never cut at a block edge."""
        windows: dict[tuple[int, int], list[tuple[int, int]]] = {}
        hinted: dict[str, list[tuple[int, int]]] = {"base64": [], "URL": []}
        ascii_data = text.encode() if text.isascii() else None
        for start, end in _blocks(len(text)):
            data = ascii_data[start:end] if ascii_data is not None else text[start:end].encode()
            for index, rules in enumerate(self._sets):
                fired = rules.fired(data)
                if not fired:
                    continue
                if rules.b64_id in fired:
                    _extend(hinted["base64"], start, end)
                if rules.pct_id in fired:
                    _extend(hinted["URL"], start, end)
                for rule_id in fired:
                    if rule_id < len(rules.rules):
                        _extend(windows.setdefault((index, rule_id), []), start, end)
        findings: list[Finding] = []
        for (index, rule_id), spans in windows.items():
            rules = self._sets[index]
            findings += self._confirm(text, rules.rules[rule_id], rules.exact[rule_id], spans)
        if decode and (hinted["base64"] or hinted["URL"]):
            findings += self._decoded(text, hinted)
        return _without_overlaps(findings)

    def _confirm(
        self, text: str, rule: Rule, exact: Matcher, spans: list[tuple[int, int]]
    ) -> list[Finding]:
        found = []
        for start, end, evidence, test_value in _candidates(
            text, rule, exact, spans, self._regions
        ):
            value = text[start:end]
            if self._allowed(value):
                continue
            found.append(
                Finding(
                    detector=rule.detector,
                    rule=rule.id,
                    category=rule.category,
                    start=start,
                    end=end,
                    score=TEST_VALUE_SCORE if test_value else rule.score,
                    evidence=evidence,
                    fingerprint=self.fingerprint(value),
                    preview=preview(value),
                    test_value=test_value,
                )
            )
        return found

    def _allowed(self, value: str) -> bool:
        if self._allow_fps and self.fingerprint(value) in self._allow_fps:
            return True
        return any(p.fullmatch(value) for p in self._allow)

    def _decoded(self, text: str, hinted: dict[str, list[tuple[int, int]]]) -> list[Finding]:
        """Findings inside base64 / percent-encoded runs, reported on the encoded run.
        One level deep and a bounded number of runs: obfuscation costs the sender, not us."""
        candidates: list[tuple[re.Match[str], str]] = []
        for how, pattern in (("base64", _B64_RUN), ("URL", _PCT_RUN)):
            hits = (m for s, e in hinted[how] for m in pattern.finditer(text, s, e))
            candidates += [(m, how) for m in islice(hits, MAX_TRIED)]
        runs = []
        for match, how in candidates:
            raw = match.group(0)
            if len(raw) > MAX_RUN_CHARS:
                continue
            decoded = _b64(raw) if how == "base64" else unquote(raw)
            if decoded and decoded != raw:
                runs.append((match, decoded, how))
                if len(runs) == MAX_DECODED_RUNS:
                    break
        found: list[Finding] = []
        for match, decoded, how in runs:
            for inner in self._inspect(normalize(decoded), decode=False):
                found.append(
                    dataclasses.replace(
                        inner,
                        start=match.start(),
                        end=match.end(),
                        evidence=f"{inner.evidence} ({how}-decoded)",
                    )
                )
        return found


def _candidates(
    text: str, rule: Rule, exact: Matcher, spans: list[tuple[int, int]], regions: tuple[str, ...]
) -> Iterator[tuple[int, int, str, bool]]:
    """(start, end, evidence, documented test value) of each confirmed value of `rule` in
    the windows where it fired."""
    if rule.finder is not None:
        for start, end in spans:
            yield from rule.finder(text, start, end, regions)
        return
    for start, end in spans:
        pos = start
        while pos < end:
            candidate = exact.search(text, pos, end)
            if candidate is None:
                break
            match = exact.match(text, candidate.start()) or candidate
            pos = max(match.end(), candidate.start() + 1)
            if not match.group(0):
                continue
            if rule.context is not None and not rule.context(text, match.start(), match.end()):
                continue
            s, e = _value_span(text, match, rule.group)
            if rule.test_value is not None and rule.test_value(text[s:e]):
                yield s, e, f"documented test value ({rule.category})", True
                continue
            evidence = rule.check(match.group(0))
            if evidence is not None:
                yield s, e, evidence, False


def _value_span(text: str, match: re.Match[str], group: int) -> tuple[int, int]:
    if not group:
        return match.start(), match.end()
    s, e = match.span(group)
    if e - s > 2 and text[s] in "\"'`" and text[e - 1] == text[s]:
        return s + 1, e - 1
    return s, e


# Blocks: every rule's shortest match is under OVERLAP characters, so each match lies
# wholly inside at least one block and fires there. A scan has a fixed cost of a few
# microseconds, so short prompts are scanned whole; blocks pay off where confirming a
# fired rule over the whole text would cost more (Python's `re`, ~30 ns a character).
WHOLE = 4096
BLOCK = 1024
OVERLAP = 256


def _blocks(length: int) -> list[tuple[int, int]]:
    if length <= WHOLE:
        return [(0, length)]
    return [(s, min(length, s + BLOCK + OVERLAP)) for s in range(0, length - OVERLAP, BLOCK)]


def _extend(spans: list[tuple[int, int]], start: int, end: int) -> None:
    """Add a block to a rule's windows, merging it with the previous one when they touch."""
    if spans and start <= spans[-1][1]:
        spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
    else:
        spans.append((start, end))


def _b64(run: str) -> str:
    """The run decoded as text, or "" when it is not base64 of mostly printable text."""
    run = run.rstrip("=")
    alphabet = base64.urlsafe_b64decode if ("-" in run or "_" in run) else base64.b64decode
    try:
        decoded = alphabet(run + "=" * (-len(run) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""
    printable = sum(c.isprintable() or c in "\n\r\t" for c in decoded)
    return decoded if printable >= 0.95 * len(decoded) else ""


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    """Where findings overlap keep the strongest (then the longest): one value, one finding."""
    if len(findings) < 2:
        return findings
    kept: list[Finding] = []

    def priority(f: Finding) -> tuple[float, int, int]:
        return (-_PRIORITY.get(f.rule, f.score), -(f.end - f.start), f.start)

    for f in sorted(findings, key=priority):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)
