"""Detection quality on the labelled corpus (bench/corpus.py), scored as in
bench/detection.py: the issues' targets (round 2 holds issue 16's: phones, IP look-alikes,
generic assignments, Azure keys, Twilio identifiers), plus pointed look-alikes that must
stay quiet."""

from __future__ import annotations

import pytest

from bench.corpus import TEST_CARDS, corpus, round2
from bench.detection import Report, evaluate, our_scanner
from posturio.gateway.inspection.engine import Inspector


@pytest.fixture(scope="module")
def report() -> Report:
    samples = corpus()
    scan = our_scanner()
    return evaluate(samples, {s.id: scan(s.text) for s in samples})


@pytest.fixture(scope="module")
def round2_report() -> Report:
    samples = round2()
    scan = our_scanner()
    return evaluate(samples, {s.id: scan(s.text) for s in samples})


def _detail(report: Report) -> str:
    misses = [f"{s.id}: {value[:60]!r}" for s, value in report.misses[:10]]
    false = [f"{s.id}: {s.text[p.start : p.end][:60]!r}" for s, p in report.false[:10]]
    return f"misses {misses}\nfalse findings {false}"


def test_corpus_is_large_enough_and_labelled():
    samples = corpus()
    kinds = {k: sum(s.kind == k for s in samples) for k in ("positive", "hard_negative", "clean")}
    assert kinds["clean"] >= 1000 and kinds["hard_negative"] >= 300
    for group in ("secrets", "pii"):
        assert sum(lb.detector == group for s in samples for lb in s.labels) >= 500
    for s in samples:
        for lb in s.labels:
            assert 0 <= lb.start < lb.end <= len(s.text)


def test_secrets_recall_and_precision(report):
    secrets = report.groups["secrets"]
    assert secrets.recall >= 0.97, _detail(report)
    assert secrets.precision >= 0.97, _detail(report)


def test_personal_data_f1(report):
    assert report.groups["pii"].f1 >= 0.95, _detail(report)


def test_clean_prompts_are_rarely_flagged(report):
    assert report.clean_share <= 0.01, _detail(report)


def test_round2_phones_recall_and_precision(round2_report):
    phone = round2_report.categories["phone"]
    assert phone.labels >= 250
    assert phone.recall >= 0.95 and phone.precision >= 0.98, _detail(round2_report)


def test_round2_ip_precision(round2_report):
    assert round2_report.categories["ip_address"].precision >= 0.98, _detail(round2_report)


def test_round2_secrets_f1(round2_report):
    assert round2_report.groups["secrets"].f1 >= 0.97, _detail(round2_report)


def test_findings_carry_the_right_category(report):
    agree, matched = report.agreement
    assert agree / matched >= 0.95


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    return Inspector(b"quality-test")


# Documented test values among them are findings marked test_value (see test_inspection),
# never detections.
LOOK_ALIKES = [
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",  # AWS documentation
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "TWILIO_ACCOUNT_SID=AC4fc4b5888dae2c480184a90b9a0f3ab4",  # an identifier
    "pip install acme-sdk==12.4.18.103",
    "DATABASE_URL=postgres://postgres:postgres@localhost:5432/postgres",  # default
    "DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB",  # template
    "password = os.environ.get('DB_PASSWORD')",
    'password_hash = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"',
    "tokenizer = AutoTokenizer.from_pretrained(model_name)",
    "git clone git@github.com:acme/billing.git",  # an SSH remote, not a mailbox
    "ping 127.0.0.1 and the gateway 192.168.1.0/24, netmask 255.255.255.0",
    "User-Agent: Mozilla/5.0 Chrome/120.0.0.0 Safari/537.36",
    "OID 1.3.6.1.4.1.311.21.8 and version 1.2.3.4",
    "EAN 4006381333931 and 4719669043599 on the shelf label",  # Luhn-valid, wrong length
    "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwib"
    "mFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    *(f"test card {card}" for card in TEST_CARDS),
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_not_findings(inspector, text):
    findings = [
        f for f in inspector.inspect(text) if f.detector in ("secrets", "pii") and not f.test_value
    ]
    assert findings == [], [(f.rule, text[f.start : f.end]) for f in findings]


REAL_SHAPES = [
    (
        "User name,Password,Access key ID,Secret access key\nci,,AKIAQ2TXNR5YBZ7LMW4K,"
        "q8Xv2m+RkP4sLw9/Hn3TzYb6DcJf1GaE5uVo7NiW",
        "aws.key_pair",
    ),
    ("define( 'DB_PASSWORD', 'Tq8#rV2m!xLp' );", "generic.assignment"),
    ("<password>Tq8#rV2m!xLp</password>", "generic.assignment"),
    ("Applicant SSN: 287654321", "pii.us_ssn_plain"),
    ("call (415) 867-5309 after lunch", "pii.phone"),
    ("Tel.: 030 23456789", "pii.phone"),
    ("DB_PASS=Tq8#rV2m!xLp", "generic.short_name"),
    (
        "AZURE_STORAGE_KEY=q8Xv2m+RkP4sLw9/Hn3TzYb6DcJf1GaE5uVo7NiWq8Xv2m+RkP4sLw9/Hn3TzYb6DcJf1GaE"
        "5uVo7NiWxyz7Ab==",
        "azure.storage_account_key",
    ),
    ("redis://:s3cr%40tPa55w0rd@cache.internal:6379/0", "url.credentials"),
]


@pytest.mark.parametrize(("text", "rule"), REAL_SHAPES, ids=[r for _, r in REAL_SHAPES])
def test_real_shapes_are_found(inspector, text, rule):
    assert rule in [f.rule for f in inspector.inspect(text)]
