"""The inspection engine on realistic values in their real formats and on the
look-alikes that must not be findings."""

from __future__ import annotations

import base64
import json
import random
import string
import zlib

import pytest

from posturio.gateway.inspection.engine import TEST_VALUE_SCORE, Inspector
from posturio.gateway.inspection.rules import RULES
from posturio.gateway.inspection.segments import Segment
from posturio.gateway.policy.evaluate import CompiledPolicy, Context, Labels, redact
from posturio.gateway.policy.schema import DEFAULT_POLICY

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
    ("call me at +44 20 7123 4567 after 5", "pii.phone"),
    (f"card {luhn_card()} exp 12/29", "pii.payment_card"),
    ("IBAN DE75 5121 0800 1245 1261 99", "pii.iban"),
    ("SSN 287-65-4321 on file", "pii.us_ssn"),
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
def test_look_alikes_and_placeholders_are_not_findings(inspector, text):
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


# ---------------------------------------------------------------- documented test values

JWT_IO = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
    "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
TEST_VALUES = [
    ("test card 4111 1111 1111 1111 please", "pii.payment_card", "4111 1111 1111 1111"),
    ("write to jane.doe@example.org", "pii.email", "jane.doe@example.org"),
    ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "aws.access_key_id", "AKIAIOSFODNN7EXAMPLE"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws.secret_access_key",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (f"Authorization: Bearer {JWT_IO}", "jwt", JWT_IO),
    ("see 192.0.2.44 in the RFC", "pii.ipv4", "192.0.2.44"),
    ("call (415) 555-0142", "pii.phone", "(415) 555-0142"),
    ("SSN 078-05-1120", "pii.us_ssn", "078-05-1120"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "pii.iban", "GB82 WEST 1234 5698 7654 32"),
]


@pytest.mark.parametrize(("text", "rule", "value"), TEST_VALUES, ids=[r for _, r, _ in TEST_VALUES])
def test_documented_test_values_are_findings_marked_as_such(inspector, text, rule, value):
    [f] = inspector.inspect(text)
    assert (f.rule, text[f.start : f.end], f.test_value) == (rule, value, True)
    assert f.score == TEST_VALUE_SCORE < next(r.score for r in RULES if r.id == rule)
    out = f.as_dict()
    assert out["test_value"] is True and value not in str(out)


def test_a_real_value_is_not_a_test_value(inspector):
    [f] = inspector.inspect(f"card {luhn_card()}")
    assert f.test_value is False and f.as_dict()["test_value"] is False and f.score > 0.5


def _default(text: str) -> tuple[str, str, list[bool]]:
    """The default policy on `text`: decision, the text as sent upstream, test_value flags."""
    policy = CompiledPolicy(None, 0, DEFAULT_POLICY, b"default-policy-test-key")
    segment = Segment("messages[0].content", text, {"content": text}, "content")
    verdict = policy.evaluate([segment], Context(None, frozenset(), "m"))
    redact([segment], verdict, Labels())
    return verdict.action, segment.text, [h.finding.test_value for h in verdict.hits]


def test_the_default_policy_redacts_personal_test_values():
    action, sent, flags = _default("card 4111 1111 1111 1111, mail jane.doe@example.org")
    assert action == "redact" and flags == [True, True]
    assert sent == "card [PAYMENT_CARD_1], mail [EMAIL_1]"


def test_the_default_policy_lets_documentation_secrets_through():
    text = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE"
    assert _default(text) == ("allow", text, [True])
    real = f"aws_access_key_id = AKIA{_rand(16, string.ascii_uppercase + string.digits)}"
    assert _default(real)[0] == "block"


# ---------------------------------------------------------------- phones (libphonenumber)

PHONES = [
    ("Callback number: (415) 867-5309", "(415) 867-5309"),
    ("call 212-830-9180 after lunch", "212-830-9180"),
    ("Office: 020 7123 4567", "020 7123 4567"),
    ("Mobile: 07745 954595", "07745 954595"),
    ("Tel.: 0151 23456789, bitte vormittags", "0151 23456789"),
    ("Rappel : 06 23 32 58 50", "06 23 32 58 50"),
    ("Mobile: 98765 43210", "98765 43210"),
    ("Sydney office (02) 9123 4567", "(02) 9123 4567"),
    ("TEL;TYPE=cell:+33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("phone: 4158675309", "4158675309"),  # bare digits, said to be a phone number
]


@pytest.mark.parametrize(("text", "value"), PHONES, ids=[v for _, v in PHONES])
def test_national_and_international_phone_numbers_are_found(inspector, text, value):
    assert [(f.rule, text[f.start : f.end]) for f in inspector.inspect(text)] == [
        ("pii.phone", value)
    ]


NOT_PHONES = [
    "Order 4839201756 was refunded",
    "Order number: 0563-7759-2461",
    "PO number 9530 4776 73, cost centre 1180",
    "Reported 2024-03-15 10:30:00, resolved 2024-03-16 09:12:44",
    "Valid from 01.03.2024 to 28.02.2025",
    "ISBN 978-3-16-148410-0",
    "coordinates 49.795591, -16.538537",
    "ports 8080 8443 9090 9443",
    "tracking 1Z WIA ICK 99 3782 5835",
    "CVE-2024-12345 affects 3.2.1",
    "ticket INC-2024-0015673 reopened",
    "epoch 1712345678 ms 1712345678901",
]


@pytest.mark.parametrize("text", NOT_PHONES)
def test_numbers_that_are_not_phone_numbers(inspector, text):
    assert inspector.inspect(text) == [], [f.as_dict() for f in inspector.inspect(text)]


def test_national_formats_follow_the_region_hints():
    us_only = Inspector(b"k", phone_regions=("US",))
    assert us_only.inspect("Rappel : 06 23 32 58 50") == []
    assert [f.rule for f in us_only.inspect("Rappel : +33 6 23 32 58 50")] == ["pii.phone"]


# ---------------------------------------------------------------- IP addresses in context

NOT_ADDRESSES = [
    "version 10.4.12.100",
    "Version: 4.18.2.15",
    "upgrade to release 6.1.23.45 before Friday",
    "pip install acme-sdk==12.4.18.103",
    '[assembly: AssemblyFileVersion("22.13.21.101")]',
    "System.Runtime, Version=4.0.30.19, Culture=neutral",
    "Installed: acme-agent-12.4.18.103.msi",
    "AcmeAgent/21.3.14.170 (Linux x86_64)",
    "OID 2.5.29.17 is the extension we need",
    "2024-03-15 14.22.31.57 ERROR queue full",
    "see section 4.12.31.18 of the contract",
]


@pytest.mark.parametrize("text", NOT_ADDRESSES)
def test_versions_oids_and_timestamps_are_not_addresses(inspector, text):
    assert inspector.inspect(text) == [], [f.as_dict() for f in inspector.inspect(text)]


@pytest.mark.parametrize(
    "text",
    [
        "the build server 10.20.1.15 ran out of disk",
        "SRC=81.2.69.142 DST=10.0.4.17 PROTO=TCP",
        "ssh deploy@10.0.4.17 'sudo systemctl restart worker'",
    ],
)
def test_addresses_next_to_version_words_are_still_found(inspector, text):
    assert {f.rule for f in inspector.inspect(text)} == {"pii.ipv4"}


# ---------------------------------------------------------------- secrets: shapes and identifiers


def test_a_twilio_account_sid_is_an_identifier(inspector):
    sid, token = f"AC{_rand(32, '0123456789abcdef')}", _rand(32, "0123456789abcdef")
    assert inspector.inspect(f"TWILIO_ACCOUNT_SID={sid}") == []
    assert inspector.inspect(f"POST /2010-04-01/Accounts/{sid}/Messages.json 201") == []
    text = f"curl -u {sid}:{token} https://api.twilio.com"
    [f] = inspector.inspect(text)
    assert (f.rule, text[f.start : f.end]) == ("twilio.account", token)


AZURE_KEY = _rand(86, string.ascii_letters + string.digits + "+/") + "=="
AZURE = [
    (
        f"AccountName=acme;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
        "azure.storage_connection_string",
    ),
    (
        f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={AZURE_KEY};"
        "BlobEndpoint=https://acme.blob.core.windows.net/",
        "azure.storage_connection_string",
    ),
    (
        "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;"
        f"SharedAccessKey={_rand(43)}=",
        "azure.storage_connection_string",
    ),
    (f"AZURE_STORAGE_KEY={AZURE_KEY}", "azure.storage_account_key"),
    (f"az storage blob upload --account-name acme --account-key {AZURE_KEY}", None),
    (f'{{"keyName": "key1", "permissions": "FULL", "value": "{AZURE_KEY}"}}', None),
]


@pytest.mark.parametrize(("text", "rule"), AZURE)
def test_azure_keys_and_whole_connection_strings(inspector, text, rule):
    [f] = inspector.inspect(f"config: {text}")
    assert f.category == "cloud_credential"
    value = f"config: {text}"[f.start : f.end]
    if rule == "azure.storage_connection_string":
        assert (f.rule, value) == (rule, text)  # the whole string, not the key alone
    else:
        assert value == AZURE_KEY


GENERIC = [
    ("DB_PASS=Tq8#rV2m!xLp", "Tq8#rV2m!xLp"),
    ("auth: { user: 'alerts', pass: 'Tq8#rV2m!xLp' },", "Tq8#rV2m!xLp"),
    ("app.config['SECRET_KEY'] = 'Xk2mP9qLw8vRt4nB'", "Xk2mP9qLw8vRt4nB"),
    ('os.environ["DB_PASSWORD"] = "n7;Kq,2<Lp!x"', "n7;Kq,2<Lp!x"),
    ("LICENSE_KEY=9fQ2mXw7LkP4rT8vB3nZ", "9fQ2mXw7LkP4rT8vB3nZ"),
    ("PRIVATE_KEY=0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", None),
]


@pytest.mark.parametrize(("text", "value"), GENERIC, ids=[t[:20] for t, _ in GENERIC])
def test_generic_assignments_report_the_value_alone(inspector, text, value):
    [f] = inspector.inspect(text)
    assert f.category == "generic_secret"
    assert text[f.start : f.end] == (value or text.split("=", 1)[1])


@pytest.mark.parametrize(
    "text",
    [
        "PublicKeyToken=d7ce5cab91e54b1a",
        f"STRIPE_PUBLISHABLE_KEY=pk_live_{_rand(24)}",
        "CACHE_KEY=user:1234:profile",
        "PARTITION_KEY=tenant_id",
        "bypass_cache = true\nPASS_MAX_DAYS   99999",
        "pass: process.env.SMTP_PASS",
        "DB_PASS=${DB_PASS}",
        "password: <your-password>",
    ],
)
def test_assignments_that_hold_no_secret(inspector, text):
    assert inspector.inspect(text) == [], [f.as_dict() for f in inspector.inspect(text)]
