"""Detection rules: a pattern for the one-pass multi-pattern scan, and a check that
confirms a candidate (checksum, decode, structure, context) before it becomes a finding.

Patterns must compile in Hyperscan (no look-around, no back-references) and in Python
`re`, which reports the exact span. Where a value's end cannot be bounded without
look-ahead, the pattern takes the longest run and the check measures it.

Scores decide which finding survives when two overlap: a vendor format with a checksum
or fixed prefix beats the generic keyword rules, and a whole credential object (a
service-account file) beats the values inside it.

Beyond the pattern and its check a rule may have: `group`, the part of the match that is
the value, reported without its quotes (`password = "…"` and Twilio's `SID:token` report
the value alone, so that redaction keeps the name); `context`, a look at the text around
the match (a dotted quad after `version` is not an address); `test_value`, which tells a
documented test value (reported, marked, with a low score); and `finder`, which replaces
the exact match: the pattern then only gates it (phone numbers, see phones.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from posturio.gateway.inspection import phones
from posturio.gateway.inspection import validators as v

Check = Callable[[str], str | None]  # candidate -> evidence, or None to drop it
Context = Callable[[str, int, int], bool]  # (text, match start, end) -> still a candidate
# (text, window start, window end, region hints) -> (start, end, evidence, test value)
Finder = Callable[[str, int, int, tuple[str, ...]], Iterator[tuple[int, int, str, bool]]]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    detector: str  # secrets | pii
    category: str
    pattern: str  # Hyperscan-compatible, also valid for Python `re`
    check: Check
    score: float
    caseless: bool = False
    group: int = 0
    context: Context | None = None
    test_value: Callable[[str], bool] | None = None
    finder: Finder | None = None

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


def valid(fn: Callable[[str], bool], evidence: str) -> Check:
    """Structure check alone (values such as phone numbers are not placeholders)."""

    def check(candidate: str) -> str | None:
        return evidence if fn(candidate) else None

    return check


def high_entropy(threshold: float) -> Check:
    """A keyword assignment whose value is a literal secret (see v.secret_literal)."""

    def check(candidate: str) -> str | None:
        return v.secret_literal(candidate, threshold)

    return check


def exact_length(length: int, threshold: float) -> Check:
    """`key = value` where the value must be exactly `length` characters of some entropy."""

    def check(candidate: str) -> str | None:
        _, value, _ = v.assigned_value(candidate)
        if len(value) != length or v.looks_fake(value) or v.entropy(value) < threshold:
            return None
        return f"{length}-char value assigned to a secret name"

    return check


def long_value(minimum: int, evidence: str) -> Check:
    def check(candidate: str) -> str | None:
        _, value, _ = v.assigned_value(candidate)
        return evidence if len(value) >= minimum and not v.looks_fake(value) else None

    return check


def _service_account(candidate: str) -> str | None:
    if '"private_key"' in candidate and "PRIVATE KEY" in candidate:
        return "service account JSON with private key"
    return "service account JSON"


def _basic(candidate: str) -> str | None:
    return "base64 user:password" if v.basic_credentials(candidate) else None


def _bearer(candidate: str) -> str | None:
    token = candidate.split()[-1]
    if token.startswith("eyJ"):  # a JWT: the JWT rule decides
        return None
    if v.looks_fake(token) or v.entropy(token) < 3.5 or token.isalpha() or token.isdigit():
        return None
    return f"bearer token, entropy {v.entropy(token):.1f} bits/char"


def _flag(candidate: str) -> str | None:
    value = re.split(r"[ \t=]|-p", candidate)[-1]
    return v.secret_value(value.strip("\"'"), True, 2.5)


def _by_finder(_candidate: str) -> str | None:
    return None  # a rule with a finder is never checked match by match


def _azure_account_key(candidate: str) -> str | None:
    """The key is exactly 86 base64 characters and == ({86} is over Hyperscan's limit)."""
    key = re.search(r"[A-Za-z0-9+/]+==$", candidate)
    if key is None or len(key.group(0)) != 88 or v.looks_fake(key.group(0)):
        return None
    return "Azure storage account key (64 bytes)"


def _twilio_pair(candidate: str) -> str | None:
    token = candidate[-32:]
    return None if v.looks_fake(token) else "Twilio auth token beside its account SID"


def _aws_pair(candidate: str) -> str | None:
    secret = re.split(r"[ \t,;:|]+", candidate, maxsplit=1)[-1]
    if v.looks_fake(secret) or v.entropy(secret) < 4.0:
        return None
    return "AWS key id with its secret"


def _literal_trie(words: list[str]) -> str:
    """An alternation of literals factored by common prefix (pass(?:word|wd)|…): Python's
    `re` scans it several times faster than a caseless or bracketed alternation, and
    this rule runs over every prompt that mentions a password."""
    heads: dict[str, list[str]] = {}
    for word in sorted(set(words)):
        if word:
            heads.setdefault(word[0], []).append(word[1:])
    branches = [re.escape(head) + _literal_trie(tails) for head, tails in heads.items()]
    if not branches:
        return ""
    optional = "" in words
    if len(branches) == 1 and not optional:
        return branches[0]
    return "(?:" + "|".join(branches) + ")" + ("?" if optional else "")


def _spellings(*words: str) -> str:
    """password -> password, Password, PASSWORD (as they are spelled in code and config)."""
    return _literal_trie(
        [w for word in words for w in (word, word[0].upper() + word[1:], word.upper())]
    )


# Names under which secrets are assigned: DB_PASSWORD=, "client_secret":, apiKey:,
# x-api-key:, <password>, define('DB_PASSWORD', …
_KEYWORDS = _spellings(
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "apiKey",
    "Api-Key",
    "API-Key",
    "credential",
    "credentials",
    "encryption_key",
    "signing_key",
    "master_key",
    "access_key",
    "accessKey",
    "private_key",
    "privateKey",
)
# Names that are a secret's only as a whole word: DB_PASS, pass: '…' (not passport,
# bypass_cache, PASS_MAX_DAYS), and dotenv names ending in _KEY (LICENSE_KEY, MAPBOX_KEY).
# A rule of their own: in one alternation with the keywords they would cost Python's `re`
# its literal-prefix scan on every prompt that mentions a password.
_SHORT_NAMES = r"(?:(?:\b|_)(?:pass|Pass|PASS)\b|\b[A-Z][A-Z0-9]*_KEY\b)"
# Then at most a short suffix that starts a new word (SECRET_KEY, passwordProd; not
# "tokenizer"), or a few words ("password for
# the VPN"), and = : => > or "is", or a quoted comma (define('DB_PASSWORD', '…')).
# A closing bracket too: config['SECRET_KEY'] = '…'.
_ASSIGN = (
    r"(?:[_\-A-Z][A-Za-z0-9_\-]{0,20})?(?:[ \t]+[A-Za-z]+){0,4}"
    r"(?:[\"']?\]?[ \t]*(?:=>|[:=>]|\bis\b|\bwas\b)|[\"'][ \t]*,)[ \t]*"
)
# Quoted, a value runs to its closing quote (passwords hold ; , <); bare, it ends at
# whitespace, a quote, ; , or <.
# Unbounded in the pattern (bounded repeats of four alternatives are over Hyperscan's
# size limit); secret_value turns down values over 200 characters.
_VALUE = r"(\"[^\"\s]{8,}\"|'[^'\s]{8,}'|`[^`\s]{8,}`|[^\s\"'`<;,]{8,})"

RULES: tuple[Rule, ...] = (
    # ---- secrets: cloud
    Rule(
        "aws.access_key_id",
        "secrets",
        "cloud_credential",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        pattern_only("AWS key id format"),
        0.95,
        test_value=v.documented_secret,
    ),
    Rule(
        "aws.key_pair",
        "secrets",
        "cloud_credential",
        # id and secret side by side (credentials.csv, "id:secret"), one finding for both
        r"\b(?:AKIA|ASIA)[A-Z2-7]{16}[ \t]*[,;:|\t][ \t]*[A-Za-z0-9/+]{40}",
        _aws_pair,
        0.96,
        test_value=v.documented_secret,
    ),
    Rule(
        "aws.secret_access_key",
        "secrets",
        "cloud_credential",
        r"(?:aws.{0,20}(?:secret|sk)|secret[ _]?access[ _]?key).{0,20}?[=:][ \t]*[\"']?"
        r"[A-Za-z0-9/+]{40,}",
        exact_length(40, 4.0),
        0.9,
        caseless=True,
        test_value=v.documented_secret,
    ),
    Rule(
        "aws.session_token",
        "secrets",
        "cloud_credential",
        r"(?:aws_?session_?token|sessiontoken|security_?token)[\"']?[ \t]*[=:][ \t]*[\"']?"
        r"[A-Za-z0-9/+=]{60,}",  # {100,} is over Hyperscan's size limit when caseless
        long_value(100, "AWS session token"),
        0.9,
        caseless=True,
        test_value=v.documented_secret,
    ),
    Rule(
        "google.api_key",
        "secrets",
        "cloud_credential",
        r"\bAIza[0-9A-Za-z_\-]{35}",
        pattern_only("Google API key format"),
        0.95,
    ),
    Rule(
        "google.oauth_token",
        "secrets",
        "cloud_credential",
        r"\bya29\.[0-9A-Za-z_\-]{30,}",
        pattern_only("Google OAuth access token"),
        0.95,
    ),
    Rule(
        "google.service_account",
        "secrets",
        "cloud_credential",
        # The whole key file when it is there (flat JSON), else the marker alone.
        r"(?:\{[^{}]*)?\"type\"\s*:\s*\"service_account\"(?:[^{}]*\})?",
        _service_account,
        0.995,
    ),
    Rule(
        "azure.storage_connection_string",
        "secrets",
        "cloud_credential",
        # The whole string, whatever its other fields and their order (storage, Cosmos DB,
        # Service Bus / Event Hubs): the key alone is under half of it.
        r"(?:[A-Za-z]+=[^;\s\"'=<>]*;)*(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{40,}={0,2}"
        r"(?:;[A-Za-z]+=[^;\s\"'=<>]*)*;?",
        pattern_only("Azure account or shared access key"),
        0.95,
        test_value=v.documented_secret,
    ),
    Rule(
        "azure.storage_account_key",
        "secrets",
        "cloud_credential",
        # A storage account key (64 bytes, base64) under its name, as a CLI flag, or in
        # `az storage account keys list` output.
        r"(?:(?:account|storage)[_\-. ]?(?:access[_\-. ]?)?key[\"']?[ \t]*[=:,]?[ \t]*[\"']?"
        r"|\"keyName\"[^{}]{0,80}\"value\"[ \t]*:[ \t]*\")([A-Za-z0-9+/]{60,}==)",
        _azure_account_key,
        0.93,
        caseless=True,
        group=1,
        test_value=v.documented_secret,
    ),
    # ---- secrets: code hosts and package registries
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
        r"\bgl(?:pat|dt|rt|ptt|ft|cbt|imt|oas|soat|agent)-[A-Za-z0-9_\-]{20,}",
        pattern_only("GitLab token format"),
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
    # ---- secrets: SaaS and payments
    Rule(
        "slack.token",
        "secrets",
        "saas_token",
        r"\bxox[abposre]-[0-9]{1,16}-[A-Za-z0-9\-]{20,}|\bxapp-[0-9]-[A-Z0-9]{8,}-[0-9]+-"
        r"[a-f0-9]{32,}",
        pattern_only("Slack token format"),
        0.95,
    ),
    Rule(
        "slack.webhook",
        "secrets",
        "saas_token",
        r"https://hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]{6,}/[AB][A-Z0-9]{6,}/"
        r"[A-Za-z0-9]{20,}",
        pattern_only("Slack webhook URL"),
        0.97,
    ),
    Rule(
        "sendgrid.key",
        "secrets",
        "saas_token",
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        pattern_only("SendGrid key format"),
        0.97,
    ),
    Rule(
        "twilio.account",
        "secrets",
        "saas_token",
        # The auth token right after its account SID (SID:token, "SID", "token"). The SID
        # alone is an identifier, not a secret: no finding.
        r"\bAC[0-9a-f]{32}[\"']?[ \t]*[,:][ \t]*[\"']?([0-9a-f]{32})\b",
        _twilio_pair,
        0.95,
        group=1,
    ),
    Rule(
        "twilio.api_key",
        "secrets",
        "saas_token",
        r"\bSK[0-9a-f]{32}\b",
        pattern_only("Twilio API key SID"),
        0.95,
    ),
    Rule(
        "twilio.auth_token",
        "secrets",
        "saas_token",
        r"twilio.{0,20}(?:auth|token|secret).{0,10}?[=:][ \t]*[\"']?[A-Za-z0-9]{32}\b",
        exact_length(32, 3.0),
        0.9,
        caseless=True,
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
        "saas.prefixed_token",
        "secrets",
        "saas_token",
        # Vendors whose tokens carry their own prefix: Shopify, Linear, Postman, Grafana,
        # Atlassian, Mailgun.
        r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b|\blin_api_[A-Za-z0-9]{40}\b"
        r"|\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b|\bglsa_[A-Za-z0-9]{32}_[a-f0-9]{8}\b"
        r"|\bATATT3[A-Za-z0-9_\-=]{100,}|\bkey-[a-f0-9]{32}\b",
        pattern_only("vendor token prefix"),
        0.95,
    ),
    Rule(
        "cloud.prefixed_token",
        "secrets",
        "cloud_credential",
        # DigitalOcean, HashiCorp Vault, Databricks.
        r"\bdo[opr]_v1_[a-f0-9]{64}\b|\bhv[sbr]\.[A-Za-z0-9_\-]{24,}|\bdapi[a-f0-9]{32}\b",
        pattern_only("vendor token prefix"),
        0.95,
    ),
    # ---- secrets: AI providers
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
        "huggingface.token",
        "secrets",
        "ai_credential",
        r"\bhf_[A-Za-z]{34}\b",
        pattern_only("Hugging Face token format"),
        0.9,
    ),
    # ---- secrets: keys, tokens, connection strings
    Rule(
        "private_key",
        "secrets",
        "private_key",
        # The armoured block up to its END line when there is one (PEM, OpenSSH, PGP). The
        # body never holds "--", so a search from one BEGIN stops at the next armour line:
        # linear even on a prompt of headers with no END.
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
        r"(?:(?:[^-]|-[^-])*?-----END (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY"
        r"(?: BLOCK)?-----)?",
        v.pem_private_key,
        0.99,
    ),
    Rule(
        "jwt",
        "secrets",
        "token",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        checksum(v.jwt, "JWT header decodes"),
        0.85,
        test_value=v.documented_secret,
    ),
    Rule(
        "http.basic_auth",
        "secrets",
        "token",
        # Authorization: Basic …, and the same pair in a Docker config's "auth" field.
        r"\bBasic[ \t]+[A-Za-z0-9+/]{8,}={0,2}|\"auth\"[ \t]*:[ \t]*\"[A-Za-z0-9+/]{8,}={0,2}\""
        r"|\b_auth[ \t]*=[ \t]*[A-Za-z0-9+/]{8,}={0,2}",
        _basic,
        0.9,
    ),
    Rule(
        "http.bearer_token",
        "secrets",
        "token",
        r"\bBearer[ \t]+[A-Za-z0-9\-._~+/]{20,}=*",
        _bearer,
        0.8,
    ),
    Rule(
        "url.credentials",
        "secrets",
        "connection_string",
        r"\b[a-z][a-z0-9+.\-]{1,20}://[^\s:/@]{0,64}:[^\s:@/]{3,128}@[A-Za-z0-9.\-]+",
        v.url_credentials,
        0.97,  # above the e-mail look-alike inside it
    ),
    Rule(
        "generic.assignment",
        "secrets",
        "generic_secret",
        _KEYWORDS + _ASSIGN + _VALUE,
        high_entropy(2.5),
        0.7,
        group=1,
        context=v.key_context,
    ),
    Rule(
        "generic.short_name",
        "secrets",
        "generic_secret",
        _SHORT_NAMES + _ASSIGN + _VALUE,
        high_entropy(2.5),
        0.7,
        group=1,
        context=v.key_context,
    ),
    Rule(
        "generic.cli_flag",
        "secrets",
        "generic_secret",
        r"(?:--(?:password|passwd|token|api-key|apikey|secret|client-secret|account-key"
        r"|access-key|secret-key)[ \t=]+"
        r"|\b(?:mysql|mysqldump|mysqladmin|docker login)\b[^\n]{0,120}?[ \t]-p[ \t]?)"
        r"[\"']?([^\s\"'`<;,]{8,200})",
        _flag,
        0.72,
        group=1,
    ),
    # ---- personal data
    Rule(
        "pii.email",
        "pii",
        "email",
        r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}\b",
        valid(v.personal_email, "email format"),
        0.95,
        test_value=v.documentation_email,
    ),
    Rule(
        "pii.phone",
        "pii",
        "phone",
        phones.PREFILTER,  # gates the libphonenumber pass: a run of seven digits
        _by_finder,
        0.8,
        finder=phones.find,
    ),
    Rule(
        "pii.payment_card",
        "pii",
        "payment_card",
        # Unbroken, in fours (16), or 4-6-5 / 4-6-4 (Amex, Diners).
        r"\b(?:[0-9]{13,19}|[0-9]{4}(?:[ \-][0-9]{4}){3}|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5})\b",
        valid(v.payment_card, "issuer range and Luhn checksum"),
        0.95,
        test_value=v.documented_card,
    ),
    Rule(
        "pii.iban",
        "pii",
        "iban",
        r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        checksum(v.iban, "IBAN mod-97"),
        0.95,
        test_value=v.documented_iban,
    ),
    Rule(
        "pii.us_ssn",
        "pii",
        "national_id",
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        valid(v.us_ssn, "SSN ranges"),
        0.85,
        test_value=v.documented_ssn,
    ),
    Rule(
        "pii.us_ssn_plain",
        "pii",
        "national_id",
        r"\b(?:SSN|[Ss]ocial [Ss]ecurity(?: [Nn]umber)?)[ \t]*(?:#|[Nn]o\.?|:)?[ \t]*[0-9]{9}\b",
        valid(lambda c: v.us_ssn(c[-9:]), "SSN ranges, named as such"),
        0.85,
        test_value=v.documented_ssn,
    ),
    Rule(
        "pii.ipv4",
        "pii",
        "ip_address",
        # Longer dotted runs are taken whole so that the check can turn down OIDs.
        r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?:\.[0-9]+)*\b",
        valid(v.ipv4, "IPv4 host address"),
        0.6,
        context=v.address_context,
        test_value=v.documented_ip,
    ),
)
