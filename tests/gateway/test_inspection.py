"""The inspection engine on realistic values in their real formats and on the
look-alikes that must not be findings."""

from __future__ import annotations

import base64
import json
import random
import string
import zlib

import pytest

from posturio.gateway.inspection.engine import Inspector

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
rng = random.Random(42)


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def github_token() -> str:
    body = _rand(30)
    crc, out = zlib.crc32(body.encode()), ""
    while crc:
        crc, r = divmod(crc, 62)
        out = B62[r] + out
    return f"ghp_{body}{out.rjust(6, '0')}"


def luhn_card(prefix: str = "4539") -> str:
    digits = [int(c) for c in prefix + _rand(11, string.digits)]
    for check in range(10):
        total = 0
        for i, n in enumerate(reversed([*digits, check])):
            if i % 2:
                n = n * 2 - 9 if n * 2 > 9 else n * 2
            total += n
        if total % 10 == 0:
            s = "".join(map(str, [*digits, check]))
            return " ".join(s[i : i + 4] for i in range(0, 16, 4))
    raise AssertionError


def jwt() -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return (
        f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': '1234567890', 'n': 'x'})}.{_rand(43)}"
    )


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    return Inspector(b"test-fingerprint-key")


POSITIVES = [
    (
        f"deploy with AKIA{_rand(16, string.ascii_uppercase + string.digits)} please",
        "aws.access_key_id",
    ),
    (
        f"aws_secret_access_key = {_rand(40, string.ascii_letters + string.digits + '/+')}",
        "aws.secret_access_key",
    ),
    (f"token {github_token()} for CI", "github.classic_token"),
    (f"github_pat_{_rand(22)}_{_rand(59)}", "github.fine_grained_token"),
    (f"glpat-{_rand(20)}", "gitlab.token"),
    (f"xoxb-{_rand(12, string.digits)}-{_rand(24)}", "slack.token"),
    (
        f"hook https://hooks.slack.com/services/T{_rand(8, string.ascii_uppercase)}"
        f"/B{_rand(8, string.ascii_uppercase)}/{_rand(24)}",
        "slack.webhook",
    ),
    (f"sk_live_{_rand(24)}", "stripe.key"),
    (f"OPENAI_KEY=sk-proj-{_rand(40)}T3BlbkFJ{_rand(40)}", "openai.key"),
    (f"sk-ant-api03-{_rand(95)}", "anthropic.key"),
    (f"AIza{_rand(35)}", "google.api_key"),
    ('{"type": "service_account", "project_id": "p"}', "google.service_account"),
    (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_rand(86)}==",
        "azure.storage_connection_string",
    ),
    (f"npm_{_rand(36)}", "npm.token"),
    (f"pypi-AgEIcHlwaS5vcmc{_rand(60)}", "pypi.token"),
    (f"hf_{_rand(34, string.ascii_letters)}", "huggingface.token"),
    (f"SG.{_rand(22)}.{_rand(43)}", "sendgrid.key"),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "private_key",
    ),
    (f"Authorization: Bearer {jwt()}", "jwt"),
    ("DATABASE_URL=postgres://app:Zq8rT4mLx2@db.internal:5432/app", "url.credentials"),
    ('config: password = "Zx9kLm2Qr8vT"', "generic.assignment"),
    ("write to maria.lopez@globex-corp.com today", "pii.email"),
    ("call me at +44 20 7946 0958 after 5", "pii.phone"),
    (f"card {luhn_card()} exp 12/29", "pii.payment_card"),
    ("IBAN DE89 3704 0044 0532 0130 00", "pii.iban"),
    ("SSN 123-45-6789 on file", "pii.us_ssn"),
    ("server at 172.16.254.17 is down", "pii.ipv4"),
]


@pytest.mark.parametrize(("text", "rule"), POSITIVES, ids=[r for _, r in POSITIVES])
def test_real_formats_are_found(inspector, text, rule):
    findings = inspector.inspect(text)
    assert rule in [f.rule for f in findings], [f.as_dict() for f in findings]
    f = next(f for f in findings if f.rule == rule)
    value = text[f.start : f.end]
    assert value and value not in f.preview and value not in str(f.as_dict())  # never raw
    assert len(f.fingerprint) == 24 and f.evidence


NEGATIVES = [
    "the docs use AKIAIOSFODNN7EXAMPLE as a sample key",
    "request 3f2b8c1e-9a4d-4e2b-8f6a-1c2d3e4f5a6b failed",
    "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904 fixed it",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "upgrade from 1.2.3.4 to 2.0.0.1",
    "card 4539 1488 0343 6468 is not valid",
    "export API_KEY=${API_KEY}",
    "set api_key: <YOUR_KEY>",
    "your key sk-****abcd was rotated",
    "password = changeme",
    "password: ********",
    "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    f"ghp_{_rand(36)}",  # right shape, wrong checksum
    "integrity sha512-Xmfp8YsW8LM1lkZt9vUQx0QcuhQmD8Ws7bqKLfIo3bKvu7jGdQmKq1hn8Z==",
    "call extension 1234 or room 567",
    "the meeting is on 2024-05-06 at 10:30",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_and_documentation_values_are_not_findings(inspector, text):
    assert inspector.inspect(text) == [], [f.as_dict() for f in inspector.inspect(text)]


def test_obfuscation_does_not_hide_a_key(inspector):
    key = f"AKIA{_rand(16, string.ascii_uppercase + string.digits)}"
    zero_width = key[:6] + "\u200b" + key[6:12] + "\u2060" + key[12:]
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in key)  # NFKC folds these back
    for text in (f"x {zero_width} y", f"x {fullwidth} y"):
        assert [f.rule for f in inspector.inspect(text)] == ["aws.access_key_id"]


def test_fingerprints_are_keyed_and_stable(inspector):
    text = "mail maria.lopez@globex-corp.com"
    a = inspector.inspect(text)[0].fingerprint
    assert inspector.inspect(f"again: {text}")[0].fingerprint == a
    assert Inspector(b"another-key").inspect(text)[0].fingerprint != a


def test_one_value_one_finding(inspector):
    text = "DATABASE_URL=postgres://app:Zq8rT4mLx2@db.internal:5432/app"
    rules = [f.rule for f in inspector.inspect(text)]
    assert rules.count("url.credentials") == 1 and "pii.email" not in rules
