"""The policy document a tenant edits (JSON), its validation, and the default policy."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec
import phonenumbers
import re2

from posturio.gateway.inspection.engine import compile_re2
from posturio.platform.errors import PosturioError

Action = Literal["allow", "flag", "redact", "block", "reroute"]
Origin = Literal["api", "navigator"]
Direction = Literal["input", "output"]
Dialect = Literal["chat", "messages", "responses"]
RedactStyle = Literal["placeholder", "mask", "hash"]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")]
Text = Annotated[str, msgspec.Meta(max_length=1000)]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
Keyword = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]

# Severity of a request's overall decision: the strongest action among its findings.
SEVERITY: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "reroute": 3, "block": 4}
OUTPUT_ACTIONS = {"allow", "flag", "redact"}  # a response already exists: no block/reroute
DETECTORS = {"secrets", "pii", "injection", "custom", "size"}
MAX_PATTERN = 2000


class Match(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Every given field must match (an absent field matches anything)."""

    detectors: list[str] | None = None
    categories: list[Id] | None = None
    rules: list[Annotated[str, msgspec.Meta(max_length=200)]] | None = None
    min_score: Score = 0.0
    keys: list[uuid.UUID] | None = None
    key_tags: list[Id] | None = None
    models: list[Annotated[str, msgspec.Meta(max_length=200)]] | None = None
    origins: list[Origin] | None = None
    # The client's dialect: agents speak messages (Claude Code) and responses (Codex).
    dialects: list[Dialect] | None = None
    direction: Direction = "input"


class PolicyRule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: Id
    action: Action
    match: Match = msgspec.field(default_factory=Match)
    description: Text = ""
    redact_style: RedactStyle = "placeholder"
    reroute_to: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    shadow: bool = False  # record what it would have done, change nothing
    enabled: bool = True


class CustomDetector(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A tenant's own detector: a keyword list or one RE2 regular expression."""

    id: Id
    category: Id = "tenant_rule"
    keywords: Annotated[list[Keyword], msgspec.Meta(max_length=1000)] | None = None
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PATTERN)] | None = None
    caseless: bool = True
    score: Score = 0.9


class Allowlist(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    fingerprints: list[Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{24}$")]] = []
    # RE2, matched against the whole detected value.
    patterns: list[Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PATTERN)]] = []


class SizeLimits(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    max_chars: Annotated[int, msgspec.Meta(ge=1)] | None = 400_000
    max_messages: Annotated[int, msgspec.Meta(ge=1)] | None = 1_000
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None


class PolicyDoc(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    rules: Annotated[list[PolicyRule], msgspec.Meta(max_length=200)]
    detectors: Annotated[list[CustomDetector], msgspec.Meta(max_length=200)] = []
    allowlist: Allowlist = msgspec.field(default_factory=Allowlist)
    size: SizeLimits = msgspec.field(default_factory=SizeLimits)
    # The region whose national phone formats (no +country code) are read first, before
    # the built-in hints (phones.DEFAULT_REGIONS): ISO 3166 alpha-2, e.g. "DE".
    phone_region: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None


# Documented test values (AKIAIOSFODNN7EXAMPLE, 4111 1111 1111 1111) are findings with a
# score of 0.3, every detection scores 0.6 or more: from this score on, a finding is real.
REAL_FINDING_SCORE = 0.5

DEFAULT_POLICY = PolicyDoc(
    rules=[
        # A documentation secret stays a finding, but the request is allowed.
        PolicyRule(
            "block-secrets",
            "block",
            Match(detectors=["secrets"], min_score=REAL_FINDING_SCORE),
            "Credentials never leave for a provider.",
        ),
        PolicyRule(
            "block-oversize",
            "block",
            Match(detectors=["size"]),
            "Prompts over the size limits are refused.",
        ),
        # Test values included: replacing them costs nothing and shows that they were found.
        PolicyRule(
            "redact-personal-data",
            "redact",
            Match(detectors=["pii"]),
            "Personal data is replaced by placeholders before the upstream call.",
        ),
        PolicyRule(
            "flag-prompt-injection",
            "flag",
            Match(detectors=["injection"]),
            "Served, and queued for review.",
        ),
        # Flag, not redact, by default: secrets in prompts are already blocked, and output
        # redaction holds back the tail of every stream (measured: a quarter of streaming
        # throughput). A tenant that wants answers masked switches this rule to redact.
        PolicyRule(
            "flag-secrets-in-output",
            "flag",
            Match(detectors=["secrets"], min_score=REAL_FINDING_SCORE, direction="output"),
            "A credential in a model's answer is queued for review.",
        ),
    ]
)


def invalid(message: str) -> PosturioError:
    return PosturioError(message, code="invalid_policy")


def _regex(pattern: str, where: str) -> None:
    try:
        compile_re2(pattern, caseless=False)
    except re2.error as exc:
        raise invalid(f"{where}: not a valid RE2 expression ({exc!s})") from None


def validate(doc: PolicyDoc, aliases: set[str] | None = None) -> PolicyDoc:
    """Checks the schema cannot express; `aliases` (when known) are the reroute targets."""
    seen: set[str] = set()
    for rule in doc.rules:
        where = f"rule {rule.id!r}"
        if rule.id in seen:
            raise invalid(f"{where}: rule ids must be unique")
        seen.add(rule.id)
        unknown = set(rule.match.detectors or ()) - DETECTORS
        if unknown:
            raise invalid(
                f"{where}: unknown detector(s) {sorted(unknown)}; use {sorted(DETECTORS)}"
            )
        if rule.action == "reroute":
            if not rule.reroute_to:
                raise invalid(f"{where}: a reroute rule needs reroute_to (a model alias)")
            if aliases is not None and rule.reroute_to not in aliases:
                raise invalid(f"{where}: no model alias {rule.reroute_to!r} to reroute to")
        elif rule.reroute_to:
            raise invalid(f"{where}: reroute_to is only for the reroute action")
        if rule.match.direction == "output" and rule.action not in OUTPUT_ACTIONS:
            raise invalid(f"{where}: on output only allow, flag and redact are possible")
    ids: set[str] = set()
    for detector in doc.detectors:
        where = f"detector {detector.id!r}"
        if detector.id in ids:
            raise invalid(f"{where}: detector ids must be unique")
        ids.add(detector.id)
        if (detector.keywords is None) == (detector.pattern is None):
            raise invalid(f"{where}: give either keywords or pattern")
        if detector.pattern is not None:
            _regex(detector.pattern, where)
    for i, pattern in enumerate(doc.allowlist.patterns):
        _regex(pattern, f"allowlist pattern {i}")
    if doc.phone_region is not None and doc.phone_region not in phonenumbers.SUPPORTED_REGIONS:
        raise invalid(
            f"phone_region: {doc.phone_region!r} is not a region libphonenumber knows "
            "(an ISO 3166 alpha-2 code such as DE, CH, ES)"
        )
    return doc


def decode(raw: bytes | str | dict[str, object]) -> PolicyDoc:
    try:
        if isinstance(raw, dict):
            return msgspec.convert(raw, PolicyDoc)
        return msgspec.json.decode(raw, type=PolicyDoc)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise invalid(f"invalid policy: {exc}") from None


def to_builtins(doc: PolicyDoc) -> dict[str, object]:
    return msgspec.to_builtins(doc)
