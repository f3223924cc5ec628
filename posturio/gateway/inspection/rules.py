"""Detection rules: a pattern for the one-pass multi-pattern scan, and a check that
confirms a candidate (checksum, decode, context) before it becomes a finding."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from posturio.gateway.inspection import validators as v

Check = Callable[[str], str | None]  # candidate -> evidence, or None to drop it


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    detector: str  # secrets | pii
    category: str
    pattern: str  # Hyperscan-compatible, also valid for Python `re`
    check: Check
    score: float
    caseless: bool = False

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE if self.caseless else 0)


def pattern_only(evidence: str = "pattern") -> Check:
    def check(candidate: str) -> str | None:
        return None if v.looks_fake(candidate) else evidence

    return check


def checksum(fn: Callable[[str], bool], evidence: str) -> Check:
    def check(candidate: str) -> str | None:
        return evidence if fn(candidate) and not v.looks_fake(candidate) else None

    return check


def high_entropy(threshold: float) -> Check:
    def check(candidate: str) -> str | None:
        value = re.split(r"[:=]\s*[\"']?", candidate, maxsplit=1)[-1].strip("\"' ")
        if v.looks_fake(value) or v.entropy(value) < threshold:
            return None
        return f"assignment with entropy {v.entropy(value):.1f} bits/char"

    return check


def _digits_between(low: int, high: int) -> Check:
    def check(candidate: str) -> str | None:
        n = sum(c.isdigit() for c in candidate)
        return "pattern, digit count" if low <= n <= high else None

    return check


def _card(candidate: str) -> str | None:
    digits = "".join(c for c in candidate if c.isdigit())
    if digits[0] not in "3456" or len(set(digits)) < 4:
        return None
    return "Luhn checksum" if v.luhn(digits) else None


RULES: tuple[Rule, ...] = (
    # ---- secrets: real formats
    Rule(
        "aws.access_key_id",
        "secrets",
        "cloud_credential",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        pattern_only("AWS key id format"),
        0.95,
    ),
    Rule(
        "aws.secret_access_key",
        "secrets",
        "cloud_credential",
        r"aws.{0,20}(?:secret|sk).{0,20}[=:]\s*[\"']?[A-Za-z0-9/+]{40}\b",
        high_entropy(4.0),
        0.9,
        caseless=True,
    ),
    Rule(
        "github.classic_token",
        "secrets",
        "code_host_token",
        r"\bgh[pousr]_[A-Za-z0-9]{36}\b",
        checksum(v.github_classic, "GitHub CRC32 checksum"),
        0.99,
    ),
    Rule(
        "github.fine_grained_token",
        "secrets",
        "code_host_token",
        r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b",
        pattern_only("GitHub PAT format"),
        0.97,
    ),
    Rule(
        "gitlab.token",
        "secrets",
        "code_host_token",
        r"\bglpat-[A-Za-z0-9_\-]{20,}",
        pattern_only("GitLab token format"),
        0.95,
    ),
    Rule(
        "slack.token",
        "secrets",
        "saas_token",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
        pattern_only("Slack token format"),
        0.95,
    ),
    Rule(
        "slack.webhook",
        "secrets",
        "saas_token",
        r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}",
        pattern_only("Slack webhook URL"),
        0.97,
    ),
    Rule(
        "stripe.key",
        "secrets",
        "payment_credential",
        r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}",
        pattern_only("Stripe live key format"),
        0.97,
    ),
    Rule(
        "openai.key",
        "secrets",
        "ai_credential",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}",
        pattern_only("OpenAI key marker"),
        0.99,
    ),
    Rule(
        "anthropic.key",
        "secrets",
        "ai_credential",
        r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}",
        pattern_only("Anthropic key format"),
        0.99,
    ),
    Rule(
        "google.api_key",
        "secrets",
        "cloud_credential",
        r"\bAIza[0-9A-Za-z_\-]{35}\b",
        pattern_only("Google API key format"),
        0.95,
    ),
    Rule(
        "google.service_account",
        "secrets",
        "cloud_credential",
        r"\"type\"\s*:\s*\"service_account\"",
        pattern_only("service account JSON"),
        0.9,
    ),
    Rule(
        "azure.storage_connection_string",
        "secrets",
        "cloud_credential",
        r"AccountKey=[A-Za-z0-9+/]{60,}={0,2}",
        pattern_only("Azure connection string"),
        0.95,
    ),
    Rule(
        "npm.token",
        "secrets",
        "package_registry_token",
        r"\bnpm_[A-Za-z0-9]{36}\b",
        pattern_only("npm token format"),
        0.95,
    ),
    Rule(
        "pypi.token",
        "secrets",
        "package_registry_token",
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}",
        pattern_only("PyPI token format"),
        0.99,
    ),
    Rule(
        "huggingface.token",
        "secrets",
        "ai_credential",
        r"\bhf_[A-Za-z]{34}\b",
        pattern_only("Hugging Face token format"),
        0.9,
    ),
    Rule(
        "sendgrid.key",
        "secrets",
        "saas_token",
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b",
        pattern_only("SendGrid key format"),
        0.97,
    ),
    Rule(
        "private_key",
        "secrets",
        "private_key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
        pattern_only("PEM armour"),
        0.99,
    ),
    Rule(
        "jwt",
        "secrets",
        "token",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        checksum(v.jwt, "JWT header decodes"),
        0.85,
    ),
    Rule(
        "url.credentials",
        "secrets",
        "connection_string",
        r"\b[a-z][a-z0-9+.\-]{1,20}://[^\s:/@]{1,64}:[^\s:@/]{3,128}@[A-Za-z0-9.\-]+",
        pattern_only("credentials in URL"),
        0.97,  # above the e-mail look-alike inside it
        caseless=True,
    ),
    Rule(
        "generic.assignment",
        "secrets",
        "generic_secret",
        r"\b(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token)"
        r"[\"']?\s*[:=]\s*[\"']?[^\s\"']{8,}",
        high_entropy(3.0),
        0.7,
        caseless=True,
    ),
    # ---- personal data
    Rule(
        "pii.email",
        "pii",
        "email",
        r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}\b",
        pattern_only("email format"),
        0.95,
    ),
    Rule(
        "pii.phone",
        "pii",
        "phone",
        r"\+[1-9][0-9]{0,3}[ .\-]?(?:\(?[0-9]{1,4}\)?[ .\-]?){2,4}[0-9]{2,4}\b",
        _digits_between(8, 15),
        0.8,
    ),
    Rule(
        "pii.payment_card", "pii", "payment_card", r"\b(?:[0-9][ \-]?){12,18}[0-9]\b", _card, 0.95
    ),
    Rule(
        "pii.iban",
        "pii",
        "iban",
        r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        checksum(v.iban, "IBAN mod-97"),
        0.95,
    ),
    Rule(
        "pii.us_ssn",
        "pii",
        "national_id",
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        checksum(v.us_ssn, "SSN ranges"),
        0.85,
    ),
    Rule(
        "pii.ipv4",
        "pii",
        "ip_address",
        r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        checksum(v.ipv4, "IPv4 octets"),
        0.6,
    ),
)
