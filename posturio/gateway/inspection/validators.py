"""Checks that turn a pattern match into a finding: checksums and structure first, entropy
only as supporting evidence. Each function looks at the matched text alone, except the
context checks (`address_context`, `key_context`), which look at the text around it.

`documented_*` tell the values published for testing and documentation (test card
numbers, example.com mailboxes, AWS's ...EXAMPLE keys): they are reported as findings
marked `test_value`, with a low score, instead of being dropped."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections import Counter
from urllib.parse import unquote

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


# ---------------------------------------------------------------- checksums and structure


def luhn(digits: str) -> bool:
    nums = [int(c) for c in digits if c.isdigit()]
    if not 12 <= len(nums) <= 19:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


# Issuer ranges (prefix low..high, same number of digits) and the lengths each issues.
_CARD_RANGES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (16, 19)),  # Visa (13-digit cards are long retired)
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("300", "305", (14, 15, 16, 17, 18, 19)),  # Diners Club
    ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("5018", "5018", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("5020", "5020", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("5038", "5038", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("5893", "5893", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("6304", "6304", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("6759", "6759", (12, 13, 14, 15, 16, 17, 18, 19)),
    ("6761", "6763", (12, 13, 14, 15, 16, 17, 18, 19)),
)

# Numbers published by card networks and payment providers for testing: not real cards.
TEST_CARD_NUMBERS = frozenset(
    {
        "4242424242424242",
        "4111111111111111",
        "4012888888881881",
        "4000056655665556",
        "4000000000000002",
        "4000000000009995",
        "5555555555554444",
        "5200828282828210",
        "5105105105105100",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3056930009020004",
        "36227206271667",
        "3566002020360505",
        "6200000000000005",
    }
)


def card_issuer_range(digits: str) -> bool:
    """The number starts in an issuer's range and has a length that issuer uses."""
    for low, high, lengths in _CARD_RANGES:
        head = digits[: len(low)]
        if low <= head <= high and len(digits) in lengths:
            return True
    return False


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def payment_card(value: str) -> bool:
    digits = _digits(value)
    return card_issuer_range(digits) and luhn(digits) and len(set(digits)) >= 4


def documented_card(value: str) -> bool:
    return _digits(value) in TEST_CARD_NUMBERS


def iban(value: str) -> bool:
    s = value.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


# IBANs printed in standards, bank documentation and validator libraries as examples.
EXAMPLE_IBANS = frozenset(
    {
        "GB82WEST12345698765432",
        "GB33BUKB20201555555555",
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "BE68539007547034",
        "CH9300762011623852957",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "AT611904300234573201",
    }
)


def documented_iban(value: str) -> bool:
    return value.replace(" ", "").upper() in EXAMPLE_IBANS


def github_classic(token: str) -> bool:
    """ghp_/gho_/ghu_/ghs_/ghr_ tokens end with a base62 CRC32 of the 30-char body."""
    body, check = token[4:34], token[34:]
    if len(check) != 6:
        return False
    crc = zlib.crc32(body.encode()) & 0xFFFFFFFF
    encoded = ""
    while crc:
        crc, r = divmod(crc, 62)
        encoded = _B62[r] + encoded
    return encoded.rjust(6, "0") == check


def us_ssn(value: str) -> bool:
    digits = value.replace("-", "").replace(" ", "")
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# Never issued and published as samples: the 1938 wallet card, an SSA advertisement, the
# number every form shows.
EXAMPLE_SSNS = frozenset({"078051120", "219099999", "123456789"})


def documented_ssn(value: str) -> bool:
    return _digits(value)[-9:] in EXAMPLE_SSNS


# Secrets published in vendors' documentation: the jwt.io debugger's signature, the
# Azure storage emulator's well-known account key. AWS marks its own with EXAMPLE.
DOCUMENTED_SECRETS = (
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
)


def documented_secret(value: str) -> bool:
    return "EXAMPLE" in value or any(known in value for known in DOCUMENTED_SECRETS)


def jwt(token: str) -> bool:
    header, _, _rest = token.partition(".")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


_NETMASK_OCTETS = {0, 128, 192, 224, 240, 248, 252, 254, 255}


def ipv4(value: str) -> bool:
    """A host address someone could be behind. Not: dotted runs longer than four parts
    (OIDs, versions), loopback, link-local, multicast/reserved, netmasks, network
    addresses (x.y.z.0, also what version strings such as Chrome/120.0.0.0 look like),
    and all-small-octet runs (1.2.3.4 is a version)."""
    parts = value.split(".")
    if len(parts) != 4 or any(not p.isdigit() or (len(p) > 1 and p[0] == "0") for p in parts):
        return False
    o = [int(p) for p in parts]
    if any(x > 255 for x in o) or o[0] in (0, 127) or o[0] >= 224 or o[3] == 0:
        return False
    if o[:2] == [169, 254] or max(o) < 10:
        return False
    return not (
        o[0] == 255 or (all(x in _NETMASK_OCTETS for x in o) and o == sorted(o, reverse=True))
    )


def documented_ip(value: str) -> bool:
    """The RFC 5737 documentation ranges."""
    return value.startswith(("192.0.2.", "198.51.100.", "203.0.113.")) and ipv4(value)


# What a dotted number is when it is not an address: a version (`version 4.18.2.15`,
# `acme==4.18.2.15`, `AcmeAgent/4.18.2.15`, `acme-agent-4.18.2.15.msi`), an OID, a
# section number, or the time in a timestamp (`2024-03-15 14.22.31.57`).
_NOT_AN_ADDRESS_BEFORE = re.compile(
    r"(?:(?:\b(?:v|ver|release|rel|build|rev|revision|firmware|fw|oid|section|clause"
    r"|chapter|§)|version)\.?[\s:=(\"'#]*|(?:==|>=|<=|~=|!=|\^|~)\s*|[A-Za-z][\w.]*[/\-_]"
    r"|\d{2,4}[-/.]\d{1,2}[-/.]\d{1,4}[ T])$",
    re.IGNORECASE,
)
_NOT_AN_ADDRESS_AFTER = re.compile(
    r"[-+~_][A-Za-z]|\.(?:msi|exe|jar|zip|tar|tgz|gz|whl|deb|rpm|dmg|pkg|nupkg|apk|dll)\b",
    re.IGNORECASE,
)


def address_context(text: str, start: int, end: int) -> bool:
    """False where the words around a dotted quad say it is not an address."""
    if _NOT_AN_ADDRESS_BEFORE.search(text, max(0, start - 24), start):
        return False
    return _NOT_AN_ADDRESS_AFTER.match(text, end) is None


# Domains reserved for documentation and tests (RFC 2606 / 6761) and machine identities.
_DOC_DOMAINS = ("example.com", "example.org", "example.net")
_DOC_TLDS = (".example", ".test", ".invalid")
_MACHINE_TLDS = (".localhost", ".local")
_FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".js", ".css", ".map")


def documentation_email(value: str) -> bool:
    """An address at a domain reserved for documentation (jane.doe@example.org)."""
    domain = value.lower().rpartition("@")[2]
    return (
        domain in _DOC_DOMAINS
        or domain.endswith(tuple("." + d for d in _DOC_DOMAINS))
        or domain.endswith(_DOC_TLDS)
    )


def personal_email(value: str) -> bool:
    """A mailbox of a person: not a file name such as logo@2x.png, not a machine's own
    domain (.local, .localhost), not a cloud service account, not the `git@host` SSH user
    of a remote."""
    local, _, domain = value.lower().rpartition("@")
    if not local or domain.endswith(_FILE_SUFFIXES) or domain.endswith(_MACHINE_TLDS):
        return False
    if domain.endswith("gserviceaccount.com") or local == "git":
        return False
    return not any(mark in local for mark in ("your", "xxx", "<", "{", "$"))


# ---------------------------------------------------------------- PEM and encoded credentials

_PEM_HEADER_LINE = re.compile(r"^(?:Proc-Type|DEK-Info|Version|Comment|Hash):.*$", re.MULTILINE)


def pem_private_key(block: str) -> str | None:
    """A BEGIN line alone (truncated paste) counts; a full block needs a base64 body, so
    documentation such as BEGIN/.../END is not a key."""
    if "-----END" not in block:
        return "private key header"
    body = block.split("-----", 2)[2].rsplit("-----END", 1)[0]
    body = body.replace("\\n", "\n").replace("\\r", "")
    body = _PEM_HEADER_LINE.sub("", body)
    lines = [ln.strip().strip("\"',") for ln in body.splitlines()]
    data = "".join(ln for ln in lines if ln and not ln.startswith("="))
    if len(data) < 16 or re.search(r"[^A-Za-z0-9+/=]", data) or looks_fake(data):
        return None
    return f"private key block ({len(data)} base64 chars)"


def basic_credentials(value: str) -> bool:
    """base64("user:password") with a real-looking password."""
    found = re.search(r"([A-Za-z0-9+/]{8,}={0,2})[\"']?$", value)
    if not found:
        return False
    encoded = found.group(1)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep and user and password.isprintable() and not weak_or_placeholder(password))


# ---------------------------------------------------------------- assignments and URLs


def entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


PLACEHOLDER_MARKS = (
    "example",
    "your_",
    "your-",
    "yourkey",
    "${",
    "{{",
    "%(",
    "****",
    "...",
    "…",
    "changeme",
    "change_me",
    "dummy",
    "placeholder",
    "redacted",
    "replace",
    "insert",
    "todo",
)
# Defaults and stand-ins that are documentation, not secrets.
COMMON_DEFAULTS = frozenset(
    {
        "password",
        "passw0rd",
        "pass",
        "secret",
        "postgres",
        "root",
        "admin",
        "guest",
        "test",
        "user",
        "mysql",
        "redis",
        "default",
        "pwd",
        "token",
        "apikey",
        "api_key",
        "none",
        "null",
        "true",
        "false",
        "required",
        "optional",
        "string",
    }
)
_PLACEHOLDER = re.compile(
    "|".join(re.escape(m) for m in PLACEHOLDER_MARKS) + r"|<[\w .:/\-]*>", re.IGNORECASE
)
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_SEQUENCE = re.compile("|".join(_ALPHABET[i : i + 10] for i in range(len(_ALPHABET) - 9)))
_VENDOR_PREFIX = re.compile(r"^[a-z]{2,10}[_\-]")


def looks_fake(value: str) -> bool:
    """Documentation values, templates and stand-ins are not findings."""
    if _PLACEHOLDER.search(value) or "xxxx" in value or "XXXX" in value:
        return True
    # The part after a vendor prefix (ghp_, hf_, xoxb-, sk-…): aaaa…, 0000…, abcdef…
    body = _VENDOR_PREFIX.sub("", value.lower())
    if not body:
        return True
    distinct = set(body)
    if len(distinct) <= 3 or max(map(body.count, distinct)) > 0.6 * len(body):
        return True
    return bool(_SEQUENCE.search(body))


def weak_or_placeholder(value: str) -> bool:
    """A value nobody would protect: a template, a default, an all-caps stand-in
    (PASSWORD, DB_PASS) or a reference to where the real one lives."""
    if not value or looks_fake(value) or value.lower() in COMMON_DEFAULTS:
        return True
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", value):  # PASSWORD, DB_PASSWORD, TOKEN
        return True
    if re.match(r"%(?:\(\w+\)[sd]|\w+%|s$)", value):  # %(name)s, %VAR%
        return True
    return value[0] in "${[(<" or value.startswith(("env:", "vault:", "secret:"))


_CODE_REFERENCE = re.compile(
    r"[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*(?:\(.*|\[.*)?$"  # settings.key, get(), os.environ[…]
)
_WORDISH = re.compile(r"[a-z]+(?:[\-_. ][a-z]+)*|[A-Z]?[a-z]+(?:[A-Z][a-z]+)*")
_ASSIGNMENT = re.compile(
    r"^(?P<key>.*?)(?P<sep>[\"']?\s*(?:=>|[:=>]|\bis\b|\bwas\b)\s*|[\"']\s*,\s*)"
    r"(?P<quote>[\"'`]?)(?P<value>.*)$",
    re.IGNORECASE | re.DOTALL,
)
# The last word of a key that names something other than the secret itself.
_NOT_THE_SECRET = frozenset(
    "hash digest url uri endpoint path file name id length len type field policy header min "
    "max expiry expires ttl count reset confirm confirmation hint label prompt placeholder "
    "format".split()
)
# Keys that open nothing: cache_key, SORT_KEY, primary_key.
_DATA_KEYS = frozenset(
    "cache sort partition primary foreign idempotency routing shard lookup dedup dedupe "
    "composite unique".split()
)
_KEY_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def _names_something_else(key: str) -> bool:
    """password_hash, tokenUrl, SECRET_NAME, api_key_id, PUBLIC_KEY, cache_key: not where
    a secret itself is."""
    words = [w.lower() for w in _KEY_WORDS.findall(key)]
    if not words:
        return False
    if words[-1] in _NOT_THE_SECRET or "public" in words or "publishable" in words:
        return True
    return len(words) > 1 and words[-1] == "key" and words[-2] in _DATA_KEYS


_KEY_NAME_BEFORE = re.compile(r"[\w.\-]{1,40}$")


def key_context(text: str, start: int, _end: int) -> bool:
    """The whole name a keyword sits in (`PublicKeyToken=`, `cache_key =`) must still name a
    secret."""
    prefix = _KEY_NAME_BEFORE.search(text, max(0, start - 40), start)
    if prefix is None:
        return True
    name = prefix.group(0) + text[start : start + 40].split("=")[0].split(":")[0]
    return not _names_something_else(name)


def assigned_value(candidate: str) -> tuple[str, str, bool]:
    """Split `key = "value"` / `key: value` / `key is value` into key, value, quoted."""
    m = _ASSIGNMENT.match(candidate)
    if not m:
        return "", candidate, False
    value = m.group("value").rstrip("\"'`,;")
    return m.group("key"), value, bool(m.group("quote"))


def secret_literal(candidate: str, min_entropy: float) -> str | None:
    """Evidence when a keyword assignment holds a literal secret, else None (keys that
    name something else — `password_hash`, `token_url`, `secret_name` — hold none)."""
    key, value, quoted = assigned_value(candidate)
    if _names_something_else(key):
        return None
    return secret_value(value, quoted, min_entropy)


_CHAR_CLASSES = tuple(re.compile(p) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
_PATH = re.compile(r"(?:~|\.{1,2})?(?:[/\\][\w.\-]+)+[/\\]?|\.[\w.\-]+")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}.*)?")
# Identifiers that sit next to secrets: Twilio SIDs (account, API key, message), Stripe
# publishable keys.
_IDENTIFIER = re.compile(r"[A-Z]{2}[0-9a-f]{32}|pk_(?:live|test)_\w+")
_HOST_OR_PATH = re.compile(r"[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}(?:[/:].*)?")


def secret_value(value: str, quoted: bool, min_entropy: float) -> str | None:
    """Evidence when `value` (assigned to a secret's name) is a literal secret. Not:
    placeholders and defaults, references to code or environment (`os.environ["X"]`,
    `settings.api_key`, `getpass()`), URLs, host names and paths, timestamps, plain words
    (`required`, `db-credentials`), numbers."""
    if not 8 <= len(value) <= 200 or value.isdigit() or re.search(r"\w\(", value):
        return None
    if _IDENTIFIER.fullmatch(value):
        return None
    classes = sum(bool(p.search(value)) for p in _CHAR_CLASSES)
    if re.match(r"[a-z][a-z0-9+.\-]*://|-----", value, re.IGNORECASE):
        return None
    mixed = re.search(r"[A-Z].*[0-9]|[0-9].*[A-Z]", value)  # random, not a file name
    if _PATH.fullmatch(value) and classes < 4 and not mixed:
        return None
    core = value.rstrip(".!?)")  # prose: "the token is invalid."
    if _TIMESTAMP.fullmatch(core) or _HOST_OR_PATH.fullmatch(core):
        return None
    if not quoted and _CODE_REFERENCE.fullmatch(core) and not re.search(r"\d", core):
        return None
    if _WORDISH.fullmatch(core) or weak_or_placeholder(value):
        return None
    score = entropy(value)
    if classes < 2 or score < min_entropy:
        return None
    return f"literal assigned to a secret name, entropy {score:.1f} bits/char"


def url_credentials(candidate: str) -> str | None:
    """scheme://user:password@host with a password that is not a stand-in or a default."""
    userinfo = candidate.split("://", 1)[-1].rsplit("@", 1)[0]
    if "${" in userinfo or "{{" in userinfo or "<" in userinfo:
        return None
    user, _, password = (unquote(part) for part in userinfo.partition(":"))
    if len(password) < 4 or password == user or looks_fake(password):
        return None
    if password.lower() in COMMON_DEFAULTS or re.fullmatch(r"[A-Z][A-Z0-9_]*", password):
        return None
    host = candidate.rsplit("@", 1)[-1]
    if re.fullmatch(r"[A-Z_]+", host) or looks_fake(host):  # HOST, example.com
        return None
    return "credentials in URL"
