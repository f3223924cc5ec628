"""One pass over the prompt with every rule compiled into a Hyperscan database; only the
rules that fired are then run exactly (Python `re`) and each candidate checked. A clean
prompt costs the single pass. Findings carry evidence, a keyed fingerprint and a masked
preview; the raw value never leaves this module."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property

import hyperscan

from posturio.gateway.inspection.rules import RULES, Rule

# Zero-width and bidi controls: invisible, and a classic way to split a secret.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\u00ad]")


def normalize(text: str) -> str:
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


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
    preview: str  # e.g. "AKIA…MPLE (20 chars)"

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
        }


def preview(value: str) -> str:
    if len(value) <= 8:
        return f"{'*' * len(value)} ({len(value)} chars)"
    return f"{value[:4]}…{value[-2:]} ({len(value)} chars)"


class Inspector:
    """Compile once (per rule set), scan many times; safe to share within a process."""

    def __init__(self, fingerprint_key: bytes, rules: tuple[Rule, ...] = RULES) -> None:
        self._key = fingerprint_key
        self._rules = rules
        self._exact = [r.compiled() for r in rules]

    @cached_property
    def _database(self) -> hyperscan.Database:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        # SINGLEMATCH: one report per rule is all the prefilter needs (and stays cheap).
        base = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8
        flags = [base | (hyperscan.HS_FLAG_CASELESS if r.caseless else 0) for r in self._rules]
        db.compile(
            expressions=[r.pattern.encode() for r in self._rules],
            ids=list(range(len(self._rules))),
            elements=len(self._rules),
            flags=flags,
        )
        return db

    def inspect(self, text: str) -> list[Finding]:
        normalized = normalize(text)
        fired: set[int] = set()

        def on_match(rule_id: int, _start: int, _end: int, _flags: int, _ctx: object) -> None:
            fired.add(rule_id)

        self._database.scan(normalized.encode(), match_event_handler=on_match)
        findings: list[Finding] = []
        for rule_id in fired:
            rule = self._rules[rule_id]
            for match in self._exact[rule_id].finditer(normalized):
                value = match.group(0)
                evidence = rule.check(value)
                if evidence is None:
                    continue
                findings.append(
                    Finding(
                        detector=rule.detector,
                        rule=rule.id,
                        category=rule.category,
                        start=match.start(),
                        end=match.end(),
                        score=rule.score,
                        evidence=evidence,
                        fingerprint=hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[
                            :24
                        ],
                        preview=preview(value),
                    )
                )
        return _without_overlaps(findings)


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    """Where findings overlap keep the strongest (then the longest): one value, one finding."""
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)
