"""A labelled corpus for the detection bench and the detection-quality test.

`corpus()` returns the same samples on every call (seeded; pure standard library, so the
peers' virtualenv can import it too). Three kinds of sample:

- ``positive``: a realistic prompt — support ticket, chat, e-mail, code, config file, log —
  with secrets and/or personal data in their real formats, each value labelled with its
  exact span, detector group (``secrets`` | ``pii``) and category;
- ``hard_negative``: look-alikes that must not be findings — documented example values,
  templates and placeholders, hashes, ids, checksum-invalid numbers;
- ``clean``: ordinary business and code prompts with nothing to find.

Every value that should be found is labelled; anything found outside a label is a false
finding. Labelling decisions (the judgement calls):

- a credential's span is the value itself; for a URL with credentials it runs from the
  scheme to the host, for a connection string or a service-account file it is the whole
  string/object, for a private key the whole armoured block;
- password / secret assignments are secrets when the value is a literal; references
  (``${X}``, ``os.environ[...]``, vault templates), placeholders and well-known defaults
  (``changeme``, ``postgres``, ``password``) are not;
- IPv4: every host address, public or private, is ``ip_address``; loopback, unspecified,
  netmasks, network addresses (``x.y.z.0``) and the RFC 5737 documentation ranges are not;
- e-mail: personal mailboxes; documentation domains (example.com, .test, .invalid) and SSH
  remotes (``git@host:path``) are not; role mailboxes (support@, noreply@) are left out of
  the corpus altogether, as their status is a policy question;
- payment cards: Luhn-valid numbers in a real issuer range; published test card numbers
  are not; names of people are not labelled (there is no person-name category).

Texts are NFKC-stable, so label offsets equal the offsets the inspector reports.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TypeVar
from urllib.parse import quote

SEED = 20240611
T = TypeVar("T")

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True)
class Label:
    start: int
    end: int
    detector: str  # secrets | pii
    category: str
    kind: str  # which generator made it, for diagnostics (e.g. "github.classic")


@dataclass(frozen=True, slots=True)
class Sample:
    id: str
    kind: str  # positive | hard_negative | clean
    source: str  # ticket | chat | email | code | config | log | prose
    text: str
    labels: tuple[Label, ...]


@dataclass(frozen=True, slots=True)
class V:
    """A value to embed that must be found."""

    text: str
    detector: str
    category: str
    kind: str


@dataclass(frozen=True, slots=True)
class Doc:
    text: str
    labels: tuple[Label, ...] = ()


Slot = str | V | Doc
_SLOT = re.compile(r"\[\[(\w+)\]\]")


def fill(template: str, **slots: Slot) -> Doc:
    """Render ``[[name]]`` slots, keeping the exact span of every labelled value."""
    out: list[str] = []
    labels: list[Label] = []
    pos = 0
    for i, part in enumerate(_SLOT.split(template)):
        piece: Slot = part if i % 2 == 0 else slots[part]
        if isinstance(piece, V):
            labels.append(
                Label(pos, pos + len(piece.text), piece.detector, piece.category, piece.kind)
            )
            text = piece.text
        elif isinstance(piece, Doc):
            labels.extend(
                Label(lb.start + pos, lb.end + pos, lb.detector, lb.category, lb.kind)
                for lb in piece.labels
            )
            text = piece.text
        else:
            text = piece
        out.append(text)
        pos += len(text)
    return Doc("".join(out), tuple(labels))


def join(parts: list[Doc], sep: str = "\n") -> Doc:
    slots = {f"p{i}": p for i, p in enumerate(parts)}
    return fill(sep.join(f"[[p{i}]]" for i in range(len(parts))), **slots)


# --------------------------------------------------------------------------- vocabulary

FIRST = (
    "Maria Ana James Wei Priya Lukas Sofia Mohammed Aiko Oliver Chloe Mateo Fatima Noah Elena "
    "Hiroshi Amara Lars Ingrid Pedro Camille Dmitri Yusuf Grace Arjun Hannah Tomasz Leila Ben "
    "Olga Rafael Siobhan Kwame Jin Zainab Emil Freya Diego Aisha Marco Nina Stefan Thandiwe"
).split()
LAST = (
    "Lopez Silva Smith Chen Sharma Becker Rossi Haddad Tanaka Brown Martin Garcia Khan Novak "
    "Okafor Johansson Dubois Petrov Yilmaz Murphy Kowalski Nguyen Fischer Moreau Costa Patel "
    "Andersen Romano Schmidt Mensah Park Ibrahim Lindqvist Herrera Walsh Kim Jensen Alvarez"
).split()
COMPANIES = (
    ("Globex", "globex-corp.com"),
    ("Initech", "initech.io"),
    ("Northwind Traders", "northwind.co.uk"),
    ("Umbrella Health", "umbrella-health.com"),
    ("Vandelay Industries", "vandelay.com"),
    ("Hooli", "hooli.xyz"),
    ("Tyrell Analytics", "tyrell.ai"),
    ("Acme Logistik", "acme-logistik.de"),
    ("Soylent Foods", "soylentfoods.co"),
    ("Wayne Freight", "waynefreight.net"),
    ("Massive Dynamic", "massivedynamic.org"),
    ("Oscorp Labs", "oscorp-labs.eu"),
    ("Blue Harbor Bank", "blueharborbank.com"),
    ("Cedar & Pine", "cedarpine.fr"),
    ("Kestrel Systems", "kestrel.systems"),
    ("Lumen Retail", "lumen-retail.es"),
)
FREEMAIL = (
    "gmail.com outlook.com yahoo.com hotmail.co.uk web.de gmx.de orange.fr libero.it "
    "icloud.com proton.me yandex.ru naver.com"
).split()
PRODUCTS = (
    "checkout service, billing API, mobile app, data warehouse, onboarding flow, search "
    "index, invoice exporter, payments gateway, customer portal, reporting dashboard, "
    "inventory sync, notification worker, pricing engine, identity service"
).split(", ")
REPOS = "api web infra billing data-pipeline mobile ops-scripts platform auth-service".split()
HOSTS = (
    "db.internal db-primary.prod.internal pg-01.eu-west-1.rds.amazonaws.com mysql.shop.svc "
    "redis.cache.internal rabbitmq.queue.svc cluster0.x7k2q.mongodb.net analytics-db.corp"
).split()
REGIONS = "us-east-1 us-west-2 eu-west-1 eu-central-1 ap-southeast-2 ap-northeast-1".split()
TEAMS = "platform payments growth data infra security mobile support finance".split()
CITIES = "Lisbon Berlin Austin Toronto Singapore Madrid Dublin Osaka Nairobi Krakow".split()
WORDS = (
    "amber river falcon copper meadow lantern orbit maple cinder harbor velvet summit "
    "thunder willow quartz ember glacier saffron"
).split()


class Gen:
    """A seeded source of realistic values."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    # basics
    def s(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choices(alphabet, k=n))

    def pick(self, seq: Sequence[T]) -> T:
        return self.r.choice(seq)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def n(self, low: int, high: int) -> int:
        return self.r.randint(low, high)

    def digits(self, n: int) -> str:
        return self.s(string.digits, n)

    def name(self) -> str:
        return f"{self.pick(FIRST)} {self.pick(LAST)}"

    def company(self) -> tuple[str, str]:
        return self.pick(COMPANIES)

    def date(self) -> str:
        return f"2024-{self.n(1, 12):02d}-{self.n(1, 28):02d}"

    def clock(self) -> str:
        return f"{self.n(0, 23):02d}:{self.n(0, 59):02d}:{self.n(0, 59):02d}"

    def stamp(self) -> str:
        return f"{self.date()}T{self.clock()}.{self.digits(3)}Z"

    def uuid(self) -> str:
        h = self.s(HEX, 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{self.pick('89ab')}{h[17:20]}-{h[20:]}"

    def sha(self, n: int = 40) -> str:
        return self.s(HEX, n)

    def ticket(self) -> str:
        return f"{self.pick(['OPS', 'SUP', 'PAY', 'INC', 'PLAT', 'HELP'])}-{self.n(100, 9999)}"

    def money(self) -> str:
        return f"{self.pick(['$', '€', '£'])}{self.n(1, 980)},{self.n(100, 999)}.{self.digits(2)}"

    def version(self) -> str:
        return f"{self.n(0, 9)}.{self.n(0, 30)}.{self.n(0, 20)}"

    def word(self) -> str:
        return self.pick(WORDS)

    def ident(self) -> str:
        return f"{self.word()}_{self.pick(['id', 'count', 'total', 'name', 'list', 'cache'])}"

    # ------------------------------------------------------------------ secrets (real formats)
    def aws_key_id(self, temporary: bool = False) -> str:
        return ("ASIA" if temporary else "AKIA") + self.s(B32, 16)

    def aws_secret(self) -> str:
        return self.s(B64, 40)

    def aws_session_token(self) -> str:
        return "IQoJb3JpZ2luX2VjE" + self.s(B64, self.n(300, 380)) + "="

    def github_classic(self, prefix: str = "ghp") -> str:
        body = self.s(ALNUM, 30)
        crc, check = zlib.crc32(body.encode()) & 0xFFFFFFFF, ""
        while crc:
            crc, r = divmod(crc, 62)
            check = B62[r] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def github_fine_grained(self) -> str:
        return f"github_pat_11{self.s(UPPER_DIGITS, 20)}_{self.s(ALNUM, 59)}"

    def gitlab(self) -> str:
        return f"{self.pick(['glpat', 'glpat', 'glpat', 'glrt', 'gldt'])}-{self.s(B64URL, 20)}"

    def slack_token(self) -> str:
        kind = self.pick(["b", "b", "p"])
        if kind == "b":
            return f"xoxb-{self.digits(self.n(10, 12))}-{self.digits(13)}-{self.s(ALNUM, 24)}"
        return f"xoxp-{self.digits(11)}-{self.digits(11)}-{self.digits(13)}-{self.s(HEX, 32)}"

    def slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(UPPER_DIGITS, self.n(8, 10))}"
            f"/B{self.s(UPPER_DIGITS, self.n(8, 10))}/{self.s(ALNUM, 24)}"
        )

    def stripe_key(self) -> str:
        prefix = self.pick(["sk_live", "sk_live", "rk_live"])
        if self.chance(0.5):
            return f"{prefix}_{self.s(ALNUM, 24)}"
        return f"{prefix}_51{self.s(ALNUM, 97)}"

    def openai_key(self) -> str:
        if self.chance(0.3):
            return f"sk-{self.s(ALNUM, 20)}T3BlbkFJ{self.s(ALNUM, 20)}"
        prefix = self.pick(["sk-proj-", "sk-proj-", "sk-svcacct-"])
        return f"{prefix}{self.s(B64URL, 74)}T3BlbkFJ{self.s(B64URL, 74)}"

    def anthropic_key(self) -> str:
        return f"sk-ant-api03-{self.s(B64URL, 93)}AA"

    def google_api_key(self) -> str:
        return "AIza" + self.s(B64URL, 35)

    def google_oauth_token(self) -> str:
        return "ya29.a0" + self.s(B64URL, self.n(150, 200))

    def azure_account_key(self) -> str:
        return self.s(B64, 86) + "=="

    def npm_token(self) -> str:
        return "npm_" + self.s(ALNUM, 36)

    def pypi_token(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(B64URL, self.n(150, 180))

    def hf_token(self) -> str:
        return "hf_" + self.s(string.ascii_letters, 34)

    def sendgrid_key(self) -> str:
        return f"SG.{self.s(B64URL, 22)}.{self.s(B64URL, 43)}"

    def twilio_sid(self, prefix: str = "AC") -> str:
        return prefix + self.s(HEX, 32)

    def jwt(self) -> str:
        def b64(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        alg = self.pick(["HS256", "RS256", "ES256"])
        header = {"alg": alg, "typ": "JWT"} if self.chance(0.8) else {"alg": alg}
        if alg != "HS256" and self.chance(0.5):
            header["kid"] = self.s(ALNUM, 16)
        iat = self.n(1_700_000_000, 1_720_000_000)
        payload = {
            "sub": self.pick([self.uuid(), f"user_{self.digits(6)}", self.digits(9)]),
            "iat": iat,
            "exp": iat + self.pick([900, 3600, 86400]),
            "scope": self.pick(["read", "read write", "admin", "orders:read"]),
        }
        sig = self.s(B64URL, 43 if alg == "HS256" else (86 if alg == "ES256" else 342))
        return f"{b64(header)}.{b64(payload)}.{sig}"

    def password(self) -> str:
        style = self.n(0, 3)
        if style == 0:  # what people pick
            return (
                self.word().capitalize()
                + self.digits(self.n(2, 4))
                + self.pick("!#$%&*?@")
                + self.pick(["", self.word().capitalize()])
            )
        if style == 1:  # generated by a password manager
            return self.s(ALNUM + "!#%&*+-=?@^_", self.n(14, 24))
        if style == 2:  # generated, alphanumeric
            return self.s(ALNUM, self.n(16, 32))
        return f"{self.word()}-{self.word().capitalize()}-{self.digits(2)}-{self.word()}"

    def pem_body(self, first: str, lines: int) -> str:
        text = first + self.s(B64, 64 * lines - len(first) - self.n(0, 40))
        return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))

    def private_key(self) -> str:
        kind = self.pick(["RSA", "PKCS8", "EC", "OPENSSH", "OPENSSH", "PGP"])
        if kind == "RSA":
            body, label = self.pem_body("MIIEowIBAAKCAQEA", 25), "RSA PRIVATE KEY"
        elif kind == "PKCS8":
            body, label = self.pem_body("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 26), "PRIVATE KEY"
        elif kind == "EC":
            body, label = self.pem_body("MHcCAQEEI", 4), "EC PRIVATE KEY"
        elif kind == "OPENSSH":
            first = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
            body, label = self.pem_body(first, 7), "OPENSSH PRIVATE KEY"
        else:
            body = self.pem_body("lQVYBGX", 30) + "\n=" + self.s(B64, 4)
            return (
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
                + body
                + "\n-----END PGP PRIVATE KEY BLOCK-----"
            )
        return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"

    # ------------------------------------------------------------------ personal data
    def email(self) -> str:
        first, last = self.pick(FIRST).lower(), self.pick(LAST).lower()
        domain = self.pick(FREEMAIL) if self.chance(0.35) else self.company()[1]
        local = self.pick(
            [
                f"{first}.{last}",
                f"{first[0]}{last}",
                f"{first}_{last}{self.n(1, 99)}",
                f"{first}.{last}+{self.pick(['billing', 'jira', 'news'])}",
                f"{first}{last[0]}",
                f"{last}.{first}",
                f"{first}-{last}",
            ]
        )
        return f"{local}@{domain}"

    def phone(self) -> str:
        d = self.digits
        nxx = f"{self.n(2, 9)}{self.pick([x for x in range(10, 100) if x not in (11, 55)])}"
        npa = self.pick(["212", "415", "646", "312", "617", "206", "512", "303", "404", "416"])
        formats: list[Callable[[], str]] = [
            lambda: f"+1 {npa} {nxx} {d(4)}",
            lambda: f"+1 ({npa}) {nxx}-{d(4)}",
            lambda: f"+1-{npa}-{nxx}-{d(4)}",
            lambda: f"+1{npa}{nxx}{d(4)}",
            lambda: f"+44 20 7{d(3)} {d(4)}",
            lambda: f"+44 7{self.n(4, 9)}{d(2)} {d(6)}",
            lambda: f"+44 161 {self.n(2, 9)}{d(2)} {d(4)}",
            lambda: f"+49 30 {self.n(2, 9)}{d(7)}",
            lambda: f"+49 (0)30 {self.n(2, 9)}{d(3)} {d(4)}",
            lambda: f"+49 1{self.pick(['51', '52', '60', '70', '76'])} {d(8)}",
            lambda: f"+33 1 {self.n(40, 79)} {d(2)} {d(2)} {d(2)}",
            lambda: f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
            lambda: f"+34 6{d(2)} {d(3)} {d(3)}",
            lambda: f"+34 91 {self.n(2, 7)}{d(2)} {d(2)} {d(2)}",
            lambda: f"+39 06 {self.n(3, 9)}{d(3)} {d(4)}",
            lambda: f"+39 3{self.n(20, 49)} {d(3)} {d(4)}",
            lambda: f"+31 20 {self.n(2, 8)}{d(2)} {d(4)}",
            lambda: f"+31 6 {d(4)} {d(4)}",
            lambda: f"+91 {self.n(7, 9)}{d(4)} {d(5)}",
            lambda: f"+55 11 9{self.n(6, 9)}{d(3)}-{d(4)}",
            lambda: f"+81 3-{self.n(3, 6)}{d(3)}-{d(4)}",
            lambda: f"+81 90-{d(4)}-{d(4)}",
            lambda: f"+61 2 9{d(3)} {d(4)}",
            lambda: f"+61 4{d(2)} {d(3)} {d(3)}",
            lambda: f"+65 {self.pick('689')}{d(3)} {d(4)}",
            lambda: f"+52 55 {self.n(2, 5)}{d(3)} {d(4)}",
            lambda: f"+27 21 {self.n(4, 9)}{d(2)} {d(4)}",
            lambda: f"+41 44 {self.n(2, 6)}{d(2)} {d(2)} {d(2)}",
            lambda: f"+46 8 {self.n(4, 7)}{d(2)} {d(3)} {d(2)}",
            lambda: f"+48 22 {self.n(5, 8)}{d(2)} {d(2)} {d(2)}",
            lambda: f"+353 1 {self.n(4, 8)}{d(2)} {d(4)}",
            lambda: f"+353 8{self.n(5, 7)} {d(3)} {d(4)}",
            lambda: f"({npa}) {nxx}-{d(4)}",
            lambda: f"(+44) 20 7{d(3)} {d(4)}",
            lambda: f"+44 (0)20 7{d(3)} {d(4)}",
            lambda: f"(+49) 89 {self.n(2, 9)}{d(6)}",
        ]
        return self.pick(formats)()

    def card(self) -> str:
        brand = self.pick(["visa", "visa", "mc", "mc2", "amex", "discover", "jcb", "diners"])
        prefix, length = {
            "visa": ("4" + self.digits(3), 16),
            "mc": (str(self.n(51, 55)) + self.digits(2), 16),
            "mc2": (str(self.n(2221, 2720)), 16),
            "amex": (self.pick(["34", "37"]) + self.digits(2), 15),
            "discover": (self.pick(["6011", "6500", "6510", "6599"]), 16),
            "jcb": (str(self.n(3528, 3589)), 16),
            "diners": ("36" + self.digits(2), 14),
        }[brand]
        body = prefix + self.digits(length - len(prefix) - 1)
        number = body + str(luhn_check_digit(body))
        sep = self.pick([" ", " ", "-", ""])
        if not sep:
            return number
        if length == 15:
            return sep.join((number[:4], number[4:10], number[10:]))
        if length == 14:
            return sep.join((number[:4], number[4:10], number[10:]))
        return sep.join(number[i : i + 4] for i in range(0, 16, 4))

    def iban(self) -> str:
        country = self.pick(list(IBAN_LAYOUT))
        bban = "".join(
            self.s({"n": string.digits, "a": string.ascii_uppercase, "c": UPPER_DIGITS}[k], n)
            for k, n in IBAN_LAYOUT[country]
        )
        check = 98 - _mod97(bban + country + "00")
        value = f"{country}{check:02d}{bban}"
        if self.chance(0.7):
            return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value

    def ssn(self) -> str:
        area = self.pick([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{self.n(1, 99):02d}-{self.n(1, 9999):04d}"

    def public_ip(self) -> str:
        reserved = {0, 10, 100, 127, 169, 172, 192, 198, 203}
        first = self.pick([o for o in range(1, 224) if o not in reserved])
        return f"{first}.{self.n(0, 255)}.{self.n(0, 255)}.{self.n(1, 254)}"

    def private_ip(self) -> str:
        return self.pick(
            [
                f"10.{self.n(0, 255)}.{self.n(0, 255)}.{self.n(1, 254)}",
                f"172.{self.n(16, 31)}.{self.n(0, 255)}.{self.n(1, 254)}",
                f"192.168.{self.n(0, 255)}.{self.n(1, 254)}",
            ]
        )


IBAN_LAYOUT: dict[str, tuple[tuple[str, int], ...]] = {
    "DE": (("n", 18),),
    "GB": (("a", 4), ("n", 14)),
    "FR": (("n", 10), ("c", 11), ("n", 2)),
    "ES": (("n", 20),),
    "IT": (("a", 1), ("n", 10), ("c", 12)),
    "NL": (("a", 4), ("n", 10)),
    "BE": (("n", 12),),
    "CH": (("n", 5), ("c", 12)),
    "AT": (("n", 16),),
    "PL": (("n", 24),),
    "IE": (("a", 4), ("n", 14)),
    "PT": (("n", 21),),
    "SE": (("n", 20),),
    "DK": (("n", 14),),
}


def _mod97(s: str) -> int:
    return int("".join(str(int(c, 36)) for c in s)) % 97


def luhn_check_digit(body: str) -> int:
    total = 0
    for i, c in enumerate(reversed(body)):
        n = int(c)
        if i % 2 == 0:
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    digits = [c for c in number if c.isdigit()]
    return luhn_check_digit("".join(digits[:-1])) == int(digits[-1])


# --------------------------------------------------------------------------- secret snippets


def sec(value: str, category: str, kind: str) -> V:
    return V(value, "secrets", category, kind)


def pii(value: str, category: str) -> V:
    return V(value, "pii", category, category)


def s_aws(g: Gen) -> Doc:
    temporary = g.chance(0.2)
    kid = sec(g.aws_key_id(temporary), "cloud_credential", "aws.access_key_id")
    key = sec(g.aws_secret(), "cloud_credential", "aws.secret_access_key")
    region = g.pick(REGIONS)
    if temporary:
        token = sec(g.aws_session_token(), "cloud_credential", "aws.session_token")
        return fill(
            '{\n    "Credentials": {\n        "AccessKeyId": "[[kid]]",\n'
            '        "SecretAccessKey": "[[key]]",\n        "SessionToken": "[[token]]",\n'
            '        "Expiration": "[[exp]]"\n    },\n    "AssumedRoleUser": {\n'
            '        "Arn": "arn:aws:sts::[[acct]]:assumed-role/deploy/ci"\n    }\n}',
            kid=kid,
            key=key,
            token=token,
            exp=g.stamp(),
            acct=g.digits(12),
        )
    template = g.pick(
        [
            "[default]\naws_access_key_id = [[kid]]\naws_secret_access_key = [[key]]\n"
            "region = [[region]]",
            "export AWS_ACCESS_KEY_ID=[[kid]]\nexport AWS_SECRET_ACCESS_KEY=[[key]]\n"
            "export AWS_DEFAULT_REGION=[[region]]",
            's3 = boto3.client(\n    "s3",\n    aws_access_key_id="[[kid]]",\n'
            '    aws_secret_access_key="[[key]]",\n    region_name="[[region]]",\n)',
            "env:\n  AWS_ACCESS_KEY_ID: [[kid]]\n  AWS_SECRET_ACCESS_KEY: [[key]]\n"
            "  AWS_REGION: [[region]]",
            "Access key ID: [[kid]]\nSecret access key: [[key]]",
            "User name,Password,Access key ID,Secret access key,Console login link\n"
            "ci-[[region]],,[[kid]],[[key]],https://[[acct]].signin.aws.amazon.com/console",
            'provider "aws" {\n  region     = "[[region]]"\n  access_key = "[[kid]]"\n'
            '  secret_key = "[[key]]"\n}',
            "I made a new IAM user for the nightly export. Key id [[kid]], "
            "secret: [[key]] - can you check that the bucket policy lets it write?",
        ]
    )
    return fill(template, kid=kid, key=key, region=region, acct=g.digits(12))


def s_github(g: Gen) -> Doc:
    if g.chance(0.35):
        tok = sec(g.github_fine_grained(), "code_host_token", "github.fine_grained")
    else:
        prefix = g.pick(["ghp", "ghp", "ghp", "gho", "ghs", "ghu", "ghr"])
        tok = sec(g.github_classic(prefix), "code_host_token", "github.classic")
    org, repo = g.pick(["acme", "globex", "initech-dev", "northwind"]), g.pick(REPOS)
    template = g.pick(
        [
            "GITHUB_TOKEN=[[tok]]",
            "export GH_TOKEN=[[tok]]",
            'curl -H "Authorization: token [[tok]]" https://api.github.com/repos/[[org]]/[[repo]]',
            'curl -H "Authorization: Bearer [[tok]]" '
            "https://api.github.com/repos/[[org]]/[[repo]]/pulls?state=open",
            "git clone https://[[user]]:[[tok]]@github.com/[[org]]/[[repo]].git",
            "//npm.pkg.github.com/:_authToken=[[tok]]\n@[[org]]:registry=https://npm.pkg.github.com",
            "My PAT [[tok]] stopped working after SSO was enforced on the [[org]] org, "
            "do I need to authorise it again?",
            "Can you check why `[[tok]]` gets a 401 from the API?",
            "Token (classic): **[[tok]]**",
            'g = Github(auth=Auth.Token("[[tok]]"))\nrepo = g.get_repo("[[org]]/[[repo]]")',
        ]
    )
    return fill(template, tok=tok, org=org, repo=repo, user=g.pick(FIRST).lower())


def s_gitlab(g: Gen) -> Doc:
    tok = sec(g.gitlab(), "code_host_token", "gitlab.token")
    template = g.pick(
        [
            'curl --header "PRIVATE-TOKEN: [[tok]]" "https://gitlab.com/api/v4/projects/[[n]]/jobs"',
            "git remote set-url origin https://oauth2:[[tok]]@gitlab.com/[[team]]/[[repo]].git",
            '[[rr]]\n  name = "build-[[n]]"\n  url = "https://gitlab.com"\n  token = "[[tok]]"\n'
            '  executor = "docker"',
            "GITLAB_TOKEN=[[tok]]",
            "variables:\n  DEPLOY_TOKEN: [[tok]]\n  DOCKER_DRIVER: overlay2",
        ]
    )
    return fill(
        template,
        rr="[[runners]]",
        tok=tok,
        n=str(g.n(1000, 99999)),
        team=g.pick(TEAMS),
        repo=g.pick(REPOS),
    )


def s_slack(g: Gen) -> Doc:
    if g.chance(0.4):
        url = sec(g.slack_webhook(), "saas_token", "slack.webhook")
        template = g.pick(
            [
                "curl -X POST -H 'Content-type: application/json' "
                '--data \'{"text":"Deploy finished"}\' [[url]]',
                "SLACK_WEBHOOK_URL=[[url]]",
                "receivers:\n  - name: oncall\n    slack_configs:\n      - api_url: '[[url]]'\n"
                "        channel: '#alerts-[[team]]'",
                'requests.post("[[url]]", json={"text": msg})',
            ]
        )
        return fill(template, url=url, team=g.pick(TEAMS))
    tok = sec(g.slack_token(), "saas_token", "slack.token")
    template = g.pick(
        [
            "SLACK_BOT_TOKEN=[[tok]]",
            'client = WebClient(token="[[tok]]")\nclient.chat_postMessage(channel="#[[team]]", '
            'text="hello")',
            "The bot token is [[tok]] and it gets not_authed when posting to #[[team]].",
            'slack:\n  token: [[tok]]\n  channel: "#[[team]]-alerts"',
        ]
    )
    return fill(template, tok=tok, team=g.pick(TEAMS))


def s_stripe(g: Gen) -> Doc:
    key = sec(g.stripe_key(), "payment_credential", "stripe.key")
    template = g.pick(
        [
            'stripe.api_key = "[[key]]"',
            "STRIPE_SECRET_KEY=[[key]]",
            "curl https://api.stripe.com/v1/charges -u [[key]]: -d amount=2000 -d currency=eur",
            "const stripe = require('stripe')('[[key]]');",
            "We switched to the restricted key [[key]] for the refund job, but it returns "
            "permission errors on /v1/refunds.",
        ]
    )
    return fill(template, key=key)


def s_ai(g: Gen) -> Doc:
    which = g.pick(["openai", "openai", "anthropic", "hf"])
    if which == "openai":
        key = sec(g.openai_key(), "ai_credential", "openai.key")
        template = g.pick(
            [
                "OPENAI_API_KEY=[[key]]",
                'client = OpenAI(api_key="[[key]]")',
                "here's my key [[key]] - why do I keep getting 429 insufficient_quota?",
                "I set the key (`[[key]]`) in the env but the SDK says it is missing.",
                'export OPENAI_API_KEY="[[key]]"',
                '{"openai": {"apiKey": "[[key]]", "model": "gpt-4o-mini"}}',
            ]
        )
    elif which == "anthropic":
        key = sec(g.anthropic_key(), "ai_credential", "anthropic.key")
        template = g.pick(
            [
                "ANTHROPIC_API_KEY=[[key]]",
                'client = anthropic.Anthropic(api_key="[[key]]")',
                'curl https://api.anthropic.com/v1/messages -H "x-api-key: [[key]]" '
                '-H "anthropic-version: 2023-06-01"',
            ]
        )
    else:
        key = sec(g.hf_token(), "ai_credential", "huggingface.token")
        template = g.pick(
            [
                "HF_TOKEN=[[key]]",
                "huggingface-cli login --token [[key]]",
                'from huggingface_hub import login\nlogin(token="[[key]]")',
            ]
        )
    return fill(template, key=key)


def s_google(g: Gen) -> Doc:
    which = g.pick(["key", "key", "sa", "oauth"])
    if which == "key":
        key = sec(g.google_api_key(), "cloud_credential", "google.api_key")
        template = g.pick(
            [
                "https://maps.googleapis.com/maps/api/geocode/json?address=[[city]]&key=[[key]]",
                "GOOGLE_API_KEY=[[key]]",
                'const firebaseConfig = {\n  apiKey: "[[key]]",\n'
                '  authDomain: "[[proj]].firebaseapp.com",\n  projectId: "[[proj]]",\n};',
                "youtube = build('youtube', 'v3', developerKey='[[key]]')",
            ]
        )
        return fill(template, key=key, city=g.pick(CITIES), proj=f"{g.word()}-{g.n(100, 999)}")
    if which == "oauth":
        tok = sec(g.google_oauth_token(), "cloud_credential", "google.oauth_token")
        return fill(
            'curl -H "Authorization: Bearer [[tok]]" '
            '"https://www.googleapis.com/drive/v3/files?pageSize=10"',
            tok=tok,
        )
    project = f"{g.word()}-{g.word()}-{g.n(100000, 999999)}"
    account = f"{g.pick(['etl', 'ci-deploy', 'reporting', 'backup'])}"
    body = g.pem_body("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 26).replace("\n", "\\n")
    pem = f"-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----\\n"
    obj = (
        "{\n"
        '  "type": "service_account",\n'
        f'  "project_id": "{project}",\n'
        f'  "private_key_id": "{g.sha(40)}",\n'
        f'  "private_key": "{pem}",\n'
        f'  "client_email": "{account}@{project}.iam.gserviceaccount.com",\n'
        f'  "client_id": "{g.digits(21)}",\n'
        '  "auth_uri": "https://accounts.google.com/o/oauth2/auth",\n'
        '  "token_uri": "https://oauth2.googleapis.com/token",\n'
        '  "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/'
        f'{account}%40{project}.iam.gserviceaccount.com",\n'
        '  "universe_domain": "googleapis.com"\n'
        "}"
    )
    return fill("[[obj]]", obj=sec(obj, "cloud_credential", "google.service_account"))


def s_azure(g: Gen) -> Doc:
    account = f"{g.word()}{g.pick(['prod', 'data', 'logs', 'backup'])}{g.n(1, 99)}"
    conn = sec(
        f"DefaultEndpointsProtocol=https;AccountName={account};"
        f"AccountKey={g.azure_account_key()};EndpointSuffix=core.windows.net",
        "cloud_credential",
        "azure.storage_connection_string",
    )
    template = g.pick(
        [
            '{\n  "Values": {\n    "AzureWebJobsStorage": "[[conn]]",\n'
            '    "FUNCTIONS_WORKER_RUNTIME": "python"\n  }\n}',
            'AZURE_STORAGE_CONNECTION_STRING="[[conn]]"',
            'var client = new BlobServiceClient("[[conn]]");',
        ]
    )
    return fill(template, conn=conn)


def s_registry(g: Gen) -> Doc:
    if g.chance(0.5):
        tok = sec(g.npm_token(), "package_registry_token", "npm.token")
        template = g.pick(
            [
                "//registry.npmjs.org/:_authToken=[[tok]]",
                "NPM_TOKEN=[[tok]]",
                "- run: npm publish\n  env:\n    NODE_AUTH_TOKEN: [[tok]]",
            ]
        )
    else:
        tok = sec(g.pypi_token(), "package_registry_token", "pypi.token")
        template = g.pick(
            [
                "[pypi]\n  username = __token__\n  password = [[tok]]",
                "TWINE_PASSWORD=[[tok]]",
                "uv publish --token [[tok]]",
            ]
        )
    return fill(template, tok=tok)


def s_saas(g: Gen) -> Doc:
    if g.chance(0.45):
        key = sec(g.sendgrid_key(), "saas_token", "sendgrid.key")
        template = g.pick(
            [
                "SENDGRID_API_KEY=[[key]]",
                "sg = SendGridAPIClient('[[key]]')",
                "curl --request POST --url https://api.sendgrid.com/v3/mail/send "
                '--header "Authorization: Bearer [[key]]"',
            ]
        )
        return fill(template, key=key)
    # An account SID is an identifier (the auth token is the secret): not labelled.
    sid = g.twilio_sid()
    token = sec(g.s(HEX, 32), "saas_token", "twilio.auth_token")
    if g.chance(0.3):
        key_sid = sec(g.twilio_sid("SK"), "saas_token", "twilio.api_key")
        secret = sec(g.s(ALNUM, 32), "saas_token", "twilio.api_secret")
        return fill(
            "TWILIO_ACCOUNT_SID=[[sid]]\nTWILIO_API_KEY=[[key_sid]]\nTWILIO_API_SECRET=[[secret]]",
            sid=sid,
            key_sid=key_sid,
            secret=secret,
        )
    template = g.pick(
        [
            "TWILIO_ACCOUNT_SID=[[sid]]\nTWILIO_AUTH_TOKEN=[[token]]",
            'client = Client("[[sid]]", "[[token]]")',
            "curl -X POST https://api.twilio.com/2010-04-01/Accounts/[[sid2]]/Messages.json "
            "-u [[sid]]:[[token]]",
        ]
    )
    return fill(template, sid=sid, token=token, sid2=sid)


def s_private_key(g: Gen) -> Doc:
    key = sec(g.private_key(), "private_key", "private_key")
    if g.chance(0.25) and "PGP" not in key.text:
        indented = "    " + key.text.replace("\n", "\n    ")
        return fill(
            "deploy:\n  ssh_private_key: |\n[[key]]",
            key=sec(indented, "private_key", "private_key"),
        )
    template = g.pick(
        [
            "here's the deploy key, the server still says Permission denied (publickey):"
            "\n\n[[key]]",
            "[[key]]",
            "cat ~/.ssh/id_ed25519\n[[key]]",
        ]
    )
    return fill(template, key=key)


def s_jwt(g: Gen) -> Doc:
    tok = sec(g.jwt(), "token", "jwt")
    template = g.pick(
        [
            'curl -H "Authorization: Bearer [[tok]]" https://api.[[dom]]/v2/orders',
            "Cookie: session=[[tok]]; theme=dark",
            '{"access_token": "[[tok]]", "token_type": "Bearer", "expires_in": 3600}',
            "The token [[tok]] is rejected with 401 invalid_signature, what's wrong?",
            "Authorization: Bearer [[tok]]",
        ]
    )
    return fill(template, tok=tok, dom=g.company()[1])


def s_url(g: Gen) -> Doc:
    user = g.pick(["app", "svc_orders", "admin", "reporting", "etl_user", "api", g.word()])
    pw = g.password()
    quoted = quote(pw, safe="-_.~!*")
    host, db = g.pick(HOSTS), g.pick(["app", "orders", "shop", "analytics", "billing"])
    scheme = g.pick(["postgres", "postgresql", "postgresql+psycopg2", "mysql", "mongodb+srv"])
    if scheme == "mongodb+srv":
        url = f"{scheme}://{user}:{quoted}@{host}/{db}?retryWrites=true&w=majority"
    else:
        url = f"{scheme}://{user}:{quoted}@{host}:{g.pick(['5432', '3306', '6432'])}/{db}"
    if g.chance(0.2):
        url = f"{g.pick(['redis', 'rediss'])}://:{quoted}@redis.cache.internal:6379/0"
    if g.chance(0.1):
        url = f"amqp://{user}:{quoted}@rabbitmq.queue.svc:5672/%2F"
    v = sec(url, "connection_string", "url.credentials")
    template = g.pick(
        [
            "DATABASE_URL=[[url]]",
            'SQLALCHEMY_DATABASE_URI = "[[url]]"',
            'engine = create_engine("[[url]]", pool_pre_ping=True)',
            "  environment:\n    - DATABASE_URL=[[url]]\n    - LOG_LEVEL=info",
            "I can connect with [[url]] from my laptop but not from the pod. Any idea?",
        ]
    )
    return fill(template, url=v)


def s_generic(g: Gen) -> Doc:
    pw = sec(g.password(), "generic_secret", "generic.password")
    hex_secret = sec(g.s(HEX, g.pick([32, 64])), "generic_secret", "generic.secret")
    b64_key = sec(base64.b64encode(g.r.randbytes(32)).decode(), "generic_secret", "generic.key")
    django = sec(
        g.s(string.ascii_lowercase + string.digits + "!@#%^&*-_=+", 50),
        "generic_secret",
        "generic.secret",
    )
    api_key = sec(g.s(ALNUM, g.pick([32, 40])), "generic_secret", "generic.api_key")
    template = g.pick(
        [
            "DB_PASSWORD=[[pw]]",
            "    environment:\n      MYSQL_ROOT_PASSWORD: [[pw]]\n      MYSQL_DATABASE: shop",
            'password = "[[pw]]"',
            "DATABASES = {\n    'default': {\n        'ENGINE': 'django.db.backends.postgresql',\n"
            "        'NAME': 'app',\n        'USER': 'app',\n        'PASSWORD': '[[pw]]',\n"
            "        'HOST': 'db',\n    }\n}",
            "SECRET_KEY = '[[django]]'",
            "JWT_SECRET=[[hex]]",
            '"client_secret": "[[api]]",',
            "spring.datasource.password=[[pw]]",
            "ENCRYPTION_KEY=[[b64]]",
            'curl -H "x-api-key: [[api]]" https://api.[[dom]]/v1/reports',
            "api_key: [[hex]]\nsite: datadoghq.eu",
            "The admin password for the staging database is [[pw]], please rotate it after the "
            "audit.",
            "login: admin\npassword: [[pw]]",
            "WEBHOOK_SECRET=[[hex]]",
            'smtp:\n  host: smtp.[[dom]]\n  username: mailer\n  password: "[[pw]]"',
            "<server>\n  <id>nexus-releases</id>\n  <username>deploy</username>\n"
            "  <password>[[pw]]</password>\n</server>",
            "define( 'DB_PASSWORD', '[[pw]]' );",
            "docker login registry.[[dom]] -u ci-bot --password [[pw]]",
            "mysqldump -h db.internal -u backup --password=[[pw]] shop > shop.sql",
            '"ConnectionStrings": {\n  "Default": "Server=tcp:sql-[[n]].database.windows.net,1433;'
            'Database=app;User ID=app;Password=[[pw]];Encrypt=True;"\n}',
            "Password for the VPN: [[pw]]",
            "DB_HOST=db.internal\r\nDB_USER=app\r\nDB_PASSWORD=[[pw]]\r\nDB_PORT=5432",
            "Here are the creds for the demo: user `admin`, password: `[[pw]]`",
        ]
    )
    case = g.pick([str, str, str.capitalize, str.upper])
    template = re.sub(r"(?<![-\w])(password|secret)\b", lambda m: case(m.group(1)), template)
    return fill(
        template,
        pw=pw,
        hex=hex_secret,
        b64=b64_key,
        django=django,
        api=api_key,
        dom=g.company()[1],
        n=str(g.n(10, 99)),
    )


def s_http_auth(g: Gen) -> Doc:
    if g.chance(0.5):
        raw = f"{g.pick(['admin', 'ci', 'deploy', g.pick(FIRST).lower()])}:{g.password()}"
        value = base64.b64encode(raw.encode()).decode()
        tok = sec(value, "token", "http.basic_auth")
        template = g.pick(
            [
                'curl -H "Authorization: Basic [[tok]]" https://jenkins.[[dom]]/job/deploy/build',
                '{\n  "auths": {\n    "registry.[[dom]]": {\n      "auth": "[[tok]]"\n'
                "    }\n  }\n}",
                "registry=https://npm.[[dom]]/\n_auth=[[tok]]\nalways-auth=true",
            ]
        )
        return fill(template, tok=tok, dom=g.company()[1])
    tok = sec(g.s(ALNUM, g.pick([32, 40, 48])), "token", "http.bearer")
    return fill(
        'curl -s -H "Authorization: Bearer [[tok]]" https://api.[[dom]]/v1/invoices?limit=50',
        tok=tok,
        dom=g.company()[1],
    )


def s_other_vendor(g: Gen) -> Doc:
    """Formats from vendors beyond the issue's list, in headers, CLIs and prose."""
    dom = g.company()[1]
    which = g.n(0, 8)
    if which == 0:
        tok = sec(f"shpat_{g.s(HEX, 32)}", "saas_token", "shopify.token")
        template = g.pick(
            [
                'curl -H "X-Shopify-Access-Token: [[tok]]" '
                "https://[[shop]].myshopify.com/admin/api/2024-01/orders.json",
                "the custom app token [[tok]] was revoked when we reinstalled the app",
            ]
        )
    elif which == 1:
        tok = sec(f"dop_v1_{g.s(HEX, 64)}", "cloud_credential", "digitalocean.token")
        template = g.pick(["doctl auth init -t [[tok]]", "DIGITALOCEAN_TOKEN=[[tok]]"])
    elif which == 2:
        tok = sec(f"hvs.{g.s(B64URL, 91)}", "cloud_credential", "vault.token")
        template = g.pick(["vault login [[tok]]", "export VAULT_TOKEN=[[tok]]"])
    elif which == 3:
        tok = sec(f"lin_api_{g.s(ALNUM, 40)}", "saas_token", "linear.key")
        template = g.pick(
            ['curl -H "Authorization: [[tok]]" https://api.linear.app/graphql', "key: [[tok]]"]
        )
    elif which == 4:
        tok = sec(f"PMAK-{g.s(HEX, 24)}-{g.s(HEX, 34)}", "saas_token", "postman.key")
        template = "newman run collection.json --postman-api-key [[tok]]"
    elif which == 5:
        tok = sec(f"dapi{g.s(HEX, 32)}", "cloud_credential", "databricks.token")
        template = g.pick(
            [
                "databricks configure --token\nHost: https://adb-[[n]].azuredatabricks.net\n"
                "Token: [[tok]]",
                'curl -H "Authorization: Bearer [[tok]]" https://adb-[[n]].azuredatabricks.net',
            ]
        )
    elif which == 6:
        tok = sec(
            f"ATATT3xFfGF0{g.s(B64URL, 170)}={g.s(HEX.upper(), 8)}", "saas_token", "atlassian"
        )
        template = "curl -u [[email]]:[[tok]] https://[[shop]].atlassian.net/rest/api/3/myself"
    elif which == 7:
        tok = sec(f"glsa_{g.s(ALNUM, 32)}_{g.s(HEX, 8)}", "saas_token", "grafana.token")
        template = 'curl -H "Authorization: Bearer [[tok]]" https://grafana.[[dom]]/api/search'
    else:
        tok = sec(f"key-{g.s(HEX, 32)}", "saas_token", "mailgun.key")
        template = g.pick(
            [
                "curl -s --user 'api:[[tok]]' https://api.mailgun.net/v3/mg.[[dom]]/messages",
                "MAILGUN_API_KEY=[[tok]]",
            ]
        )
    return fill(
        template,
        tok=tok,
        shop=g.word(),
        n=g.digits(16),
        dom=dom,
        email=pii(g.email(), "email"),
    )


SECRET_SNIPPETS: tuple[Callable[[Gen], Doc], ...] = (
    s_aws,
    s_github,
    s_gitlab,
    s_slack,
    s_stripe,
    s_ai,
    s_ai,
    s_google,
    s_azure,
    s_registry,
    s_saas,
    s_private_key,
    s_jwt,
    s_url,
    s_generic,
    s_generic,
    s_http_auth,
    s_other_vendor,
)


# --------------------------------------------------------------------------- personal data snippets


def p_contact(g: Gen) -> Doc:
    name = g.name()
    company = g.company()[0]
    template = g.pick(
        [
            "--\n[[name]]\n[[title]], [[company]]\n[[email]] | [[phone]]",
            "From: [[name]] <[[email]]>\nTo: accounts team\nSubject: Invoice [[n]] overdue",
            "Please add [[name]] ([[email]], mobile [[phone]]) to the vendor list.",
            "Customer: [[name]]\nEmail: [[email]]\nPhone: [[phone]]\nPlan: Business annual",
            '{"customer_id": "cus_[[cid]]", "name": "[[name]]", "email": "[[email]]", '
            '"phone": "[[phone]]"}',
            "You can reach me at [[phone]] or drop a line to [[email]].",
            "Tel.: [[phone]]\nE-Mail: [[email]]",
            '<a href="mailto:[[email]]">Email us</a> or call <a href="tel:[[phone]]">us</a>',
            "Author: [[name]] <[[email]]>\nDate:   [[date]]\n\n    Fix rounding in tax calc",
        ]
    )
    return fill(
        template,
        name=name,
        title=g.pick(["Head of Finance", "Account Manager", "CTO", "Office Manager"]),
        company=company,
        email=pii(g.email(), "email"),
        phone=pii(g.phone(), "phone"),
        n=str(g.n(10000, 99999)),
        cid=g.s(ALNUM, 14),
        date=g.date(),
    )


def p_csv(g: Gen) -> Doc:
    rows = [Doc("id,name,email,phone,city")]
    for i in range(g.n(2, 4)):
        rows.append(
            fill(
                "[[i]],[[name]],[[email]],[[phone]],[[city]]",
                i=str(1000 + i),
                name=g.name(),
                email=pii(g.email(), "email"),
                phone=pii(g.phone(), "phone"),
                city=g.pick(CITIES),
            )
        )
    return fill("Clean up this export and dedupe by email:\n[[rows]]", rows=join(rows))


def p_payment(g: Gen) -> Doc:
    template = g.pick(
        [
            "Customer says the charge on card [[card]] (exp [[exp]]) was taken twice on [[date]].",
            "Card number: [[card]]\nExpiry: [[exp]]\nName on card: [[name]]",
            "Please refund [[money]] to IBAN [[iban]] (account holder [[name]]).",
            "Neue Bankverbindung: IBAN [[iban]], Kontoinhaber [[name]]. Bitte ab [[date]] nutzen.",
            "The payment with [[card]] declined, they now want to pay by transfer from [[iban]].",
            "Vendor bank details changed: [[iban]]. Can you draft the confirmation email?",
        ]
    )
    return fill(
        template,
        card=pii(g.card(), "payment_card"),
        iban=pii(g.iban(), "iban"),
        exp=f"{g.n(1, 12):02d}/{g.n(25, 31)}",
        date=g.date(),
        name=g.name(),
        money=g.money(),
    )


def p_hr(g: Gen) -> Doc:
    template = g.pick(
        [
            "New hire: [[name]]\nSSN: [[ssn]]\nStart date: [[date]]\nPersonal email: [[email]]",
            "Can you check the W-4 for [[name]]? Social security number [[ssn]], they moved to "
            "[[city]].",
            "Employee [[name]] (SSN [[ssn]]) asked to update the direct deposit to [[iban]].",
            "background check request - [[name]], DOB withheld, SSN [[ssn]], phone [[phone]]",
            "Applicant: [[name]]\nSSN: [[ssn_plain]]\nPhone: [[phone]]",
        ]
    )
    ssn = g.ssn()
    return fill(
        template,
        name=g.name(),
        ssn=pii(ssn, "national_id"),
        ssn_plain=pii(ssn.replace("-", ""), "national_id"),
        date=g.date(),
        email=pii(g.email(), "email"),
        city=g.pick(CITIES),
        iban=pii(g.iban(), "iban"),
        phone=pii(g.phone(), "phone"),
    )


UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "curl/8.5.0",
    "python-requests/2.31.0",
)


def p_log(g: Gen) -> Doc:
    lines: list[Doc] = []
    for _ in range(g.n(2, 5)):
        ip = pii(g.public_ip() if g.chance(0.7) else g.private_ip(), "ip_address")
        template = g.pick(
            [
                '[[ip]] - - [12/Mar/2024:[[clock]] +0000] "GET /api/v1/orders?page=[[n]] HTTP/1.1"'
                ' 200 [[size]] "-" "[[ua]]"',
                "[[date]] [[clock]] sshd[[[pid]]]: Failed password for invalid user admin from "
                "[[ip]] port [[port]] ssh2",
                '{"ts": "[[date]]T[[clock]]Z", "level": "warn", "msg": "rate limited", '
                '"client_ip": "[[ip]]", "path": "/login"}',
                "[[date]] [[clock]] kernel: [UFW BLOCK] IN=eth0 OUT= SRC=[[ip]] DST=[[dst]] "
                "PROTO=TCP SPT=[[port]] DPT=22",
                "X-Forwarded-For: [[ip]]",
            ]
        )
        lines.append(
            fill(
                template,
                ip=ip,
                dst=pii(g.private_ip(), "ip_address"),
                clock=g.clock(),
                date=g.date(),
                n=str(g.n(1, 40)),
                size=str(g.n(200, 90000)),
                ua=g.pick(UA),
                pid=str(g.n(1000, 65000)),
                port=str(g.n(1024, 65535)),
            )
        )
    return fill("Which of these clients look suspicious?\n[[lines]]", lines=join(lines))


def p_infra(g: Gen) -> Doc:
    template = g.pick(
        [
            "The replica at [[ip]] is lagging by 40s, primary is [[ip2]].",
            "upstream backend {\n    server [[ip]]:8080;\n    server [[ip2]]:8080 backup;\n}",
            "ssh deploy@[[ip]] 'sudo systemctl restart worker'",
            "Our office egress IP is [[ip]], please allowlist it on the SFTP server.",
        ]
    )
    return fill(
        template,
        ip=pii(g.private_ip() if g.chance(0.5) else g.public_ip(), "ip_address"),
        ip2=pii(g.private_ip(), "ip_address"),
    )


PII_SNIPPETS: tuple[Callable[[Gen], Doc], ...] = (
    p_contact,
    p_contact,
    p_csv,
    p_payment,
    p_payment,
    p_hr,
    p_log,
    p_infra,
)


# --------------------------------------------------------------------------- hard negatives

AWS_DOC_ID, AWS_DOC_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT_IO_SAMPLE = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
    "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
TEST_CARDS = (
    "4242 4242 4242 4242",
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
    "3782 822463 10005",
    "4000 0566 5566 5556",
    "6011 1111 1111 1117",
    "5105105105105100",
)


def n_secret_lookalikes(g: Gen) -> Doc:
    repo = g.pick(REPOS)
    options = [
        f"aws_access_key_id = {AWS_DOC_ID}\naws_secret_access_key = {AWS_DOC_SECRET}",
        "aws_access_key_id = <YOUR_ACCESS_KEY_ID>\naws_secret_access_key = <YOUR_SECRET_KEY>",
        "export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID}\n"
        "export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}",
        "env:\n  OPENAI_API_KEY: ${{ secrets.OPENAI_API_KEY }}\n"
        "  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}",
        f"your key sk-****{g.s(ALNUM, 4)} was rotated on {g.date()}",
        f"the dashboard shows the key as sk-proj-...{g.s(ALNUM, 4)}",
        "set api_key: <YOUR_KEY> in config.yaml",
        "OPENAI_API_KEY=sk-...",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "token: ghp_1234567890abcdefghijklmnopqrstuvwxyz",
        "SLACK_BOT_TOKEN=xoxb-your-bot-token",
        f'<script src="https://js.stripe.com/v3/"></script> // publishable key pk_live_'
        f"{g.s(ALNUM, 24)}",
        f"stripe customer cus_{g.s(ALNUM, 14)} has payment intent pi_{g.s(ALNUM, 24)}",
        "client_id: 1234567890-abc123def456.apps.googleusercontent.com",
        "HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "NPM_TOKEN=npm_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "TWILIO_ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nTWILIO_AUTH_TOKEN=your_auth_token",
        f"Authorization: Bearer {JWT_IO_SAMPLE}",
        "Authorization: Bearer <token>",
        "Authorization: Bearer $ACCESS_TOKEN",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PUBLIC KEY-----\n"
        + g.pem_body("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 6)
        + "\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\n"
        + g.pem_body("MIIDdzCCAl+gAwIBAgIE", 12)
        + "\n-----END CERTIFICATE-----",
        f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{g.s(B64, 43)} {g.pick(FIRST).lower()}@laptop",
        "DATABASE_URL=postgres://user:password@localhost:5432/mydb",
        "DATABASE_URL=postgres://postgres:postgres@localhost:5432/postgres",
        "mysql://root:${MYSQL_ROOT_PASSWORD}@db:3306/app",
        "REDIS_URL=redis://localhost:6379/0",
        f"git clone https://github.com/{g.pick(['acme', 'globex'])}/{repo}.git",
        "password = changeme",
        "password: ********",
        "POSTGRES_PASSWORD=postgres",
        'password = os.environ["DB_PASSWORD"]',
        'password: "{{ vault_db_password }}"',
        "api_key = settings.OPENAI_API_KEY",
        'password = getpass.getpass("Password: ")',
        'token = request.headers.get("Authorization")',
        "secret: REPLACE_ME",
        "password_reset_url: https://app.example.com/reset",
        "DB_PASSWORD=${DB_PASSWORD:?set it in .env}",
        "api_key: <your-api-key>",
        "The password must be at least 12 characters and contain a digit.",
        f"{g.date()} 10:00:01 INFO token refreshed: {g.date()}T{g.clock()}Z",
        '"token_endpoint": "https://oauth2.googleapis.com/token",',
        f'password_hash = "$2b$12${g.s(ALNUM + "./", 53)}"',
        'API_KEY = os.getenv("API_KEY", "")',
        "secret = secrets.token_urlsafe(32)",
        "echo $CR_PAT | docker login ghcr.io -u USERNAME --password-stdin",
        'token = jwt.encode(payload, signing_key, algorithm="HS256")',
        "Set the API key in Settings > Developers, then restart the worker.",
        "Reset your password: click the link we sent you.",
    ]
    return Doc(g.pick(options))


def n_hashes_and_ids(g: Gen) -> Doc:
    options = [
        f"request {g.uuid()} failed after 3 retries",
        f"commit {g.sha(40)} fixed the flaky test",
        f"Merge pull request #{g.n(100, 9999)} from acme/fix-{g.word()} ({g.sha(7)})",
        f"sha256 {g.sha(64)}  release-{g.version()}.tar.gz",
        f"image: ghcr.io/acme/api@sha256:{g.sha(64)}",
        f'"integrity": "sha512-{g.s(B64, 86)}=="',
        f'ETag: "{g.sha(32)}"',
        f"container {g.sha(64)} exited with code 137",
        f"arn:aws:iam::{g.digits(12)}:role/{g.word()}-lambda-role",
        f"i-0{g.s(HEX, 16)} in subnet-0{g.s(HEX, 16)} (vpc-0{g.s(HEX, 16)})",
        f"trace_id={g.sha(32)} span_id={g.sha(16)}",
        f"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAA{g.s(B64, 60)}",
        f"checksum md5 {g.sha(32)}",
        f"pod api-{g.s(HEX, 9)}-{g.s(string.ascii_lowercase + string.digits, 5)} CrashLoopBackOff",
        f"order ORD-2024-{g.digits(6)} shipped, tracking 1Z{g.s(UPPER_DIGITS, 16)}",
        f"AWS_SESSION_NAME=ci-{g.uuid()}",
    ]
    return Doc(g.pick(options))


def n_number_lookalikes(g: Gen) -> Doc:
    card = g.card()
    digits = [c for c in card]
    # make it Luhn-invalid by changing the last digit
    last = int(digits[-1])
    digits[-1] = str((last + g.n(1, 9)) % 10)
    bad_card = "".join(digits)
    good_iban = g.iban().replace(" ", "")
    bad_iban = good_iban[:2] + f"{(int(good_iban[2:4]) + g.n(1, 9)) % 100:02d}" + good_iban[4:]
    if _mod97(bad_iban[4:] + bad_iban[:4]) == 1:
        bad_iban = bad_iban[:-1] + str((int(bad_iban[-1]) + 1) % 10)
    options = [
        f"card {bad_card} was rejected as invalid by the form",
        f"use the test card {g.pick(TEST_CARDS)} with any future expiry in the sandbox",
        f"IBAN {bad_iban} fails validation - typo?",
        f"SSN {g.pick(['000', '666', '9' + g.digits(2)])}-{g.n(10, 99)}-{g.n(1000, 9999)} is "
        "not a valid number",
        f"SSN {g.n(100, 899)}-00-{g.n(1000, 9999)} was rejected",
        f"upgrade from {g.n(1, 9)}.{g.n(0, 9)}.{g.n(0, 9)}.{g.n(0, 9)} to {g.version()}",
        f'AssemblyVersion("{g.n(1, 9)}.{g.n(0, 9)}.0.0")',
        "server listens on 0.0.0.0:8080 and metrics on 127.0.0.1:9090",
        "subnet mask 255.255.255.0, gateway on the usual address",
        f"see the example at 192.0.2.{g.n(1, 254)} and 203.0.113.{g.n(1, 254)} in the RFC",
        f"allow 10.{g.n(0, 255)}.0.0/16 and 172.16.0.0/12 in the security group",
        f"OID 1.3.6.1.4.1.{g.n(1000, 60000)}.1.2",
        "write to jane.doe@example.com for the sandbox account",
        "user@example.org is the address used in the tests",
        f"git@github.com:acme/{g.pick(REPOS)}.git",
        f"npm i @types/node@{g.n(16, 22)}.{g.n(0, 9)}.{g.n(0, 9)}",
        f'@app.route("/users/<int:user_id>") handles {g.n(100, 999)} rps',
        f"the meeting is on {g.date()} at {g.n(8, 17)}:30, call in with extension {g.n(100, 9999)}",
        f"conversion grew +{g.n(1, 40)}.{g.n(0, 9)}% week over week",
        f"ISBN 978-{g.n(0, 1)}-{g.digits(3)}-{g.digits(5)}-{g.n(0, 9)}",
        f"timestamp {g.date()}T{g.clock()}+05:30",
        f"invoice {g.digits(16)} from {g.date()}",
        f"Order number: {g.digits(4)}-{g.digits(4)}-{g.digits(4)}",
        f"user agent Chrome/{g.n(100, 126)}.0.0.0 on Windows NT 10.0",
    ]
    text = g.pick(options)
    if text.startswith("invoice "):
        number = text.split()[1]
        if luhn_valid(number) and number[0] in "23456":
            text = text.replace(number, number[:-1] + str((int(number[-1]) + 1) % 10))
    return Doc(text)


NEGATIVE_SNIPPETS: tuple[Callable[[Gen], Doc], ...] = (
    n_secret_lookalikes,
    n_secret_lookalikes,
    n_hashes_and_ids,
    n_number_lookalikes,
    n_number_lookalikes,
)


# --------------------------------------------------------------------------- clean prompts


def c_meeting(g: Gen) -> str:
    return (
        f"Notes from the {g.pick(TEAMS)} sync on {g.date()}:\n"
        f"- The {g.pick(PRODUCTS)} migration is {g.n(20, 95)}% done; the remaining "
        f"{g.n(2, 30)} tables move next sprint.\n"
        f"- Error rate dropped from {g.n(2, 9)}.{g.n(0, 9)}% to 0.{g.n(1, 9)}% after the "
        "retry fix.\n"
        f"- {g.pick(FIRST)} owns the runbook update, due {g.date()}.\n"
        f"- Budget for Q{g.n(1, 4)} is {g.money()}; we are {g.n(1, 15)}% under plan.\n"
        "Please turn these into a short summary for the leadership update."
    )


def c_code_python(g: Gen) -> str:
    fn = g.pick(["load_orders", "sync_invoices", "parse_events", "rebuild_index"])
    return (
        "Can you review this function? It is slow on large inputs.\n\n"
        f"def {fn}(session, since, batch_size={g.pick([100, 500, 1000])}):\n"
        f"    {g.ident()} = {{}}\n"
        '    password = os.environ.get("DB_PASSWORD")\n'
        "    token = get_token(settings.auth_url)\n"
        "    for row in session.execute(select(Order).where(Order.created_at > since)):\n"
        '        if row.status in ("cancelled", "refunded"):\n'
        "            continue\n"
        f"        key = (row.customer_id, row.currency)\n"
        f"        totals[key] = totals.get(key, 0) + row.amount_cents\n"
        f'    log.info("processed %d rows in %.2fs", len(totals), time.monotonic() - t0)\n'
        "    return totals"
    )


def c_code_js(g: Gen) -> str:
    return (
        "Why does this React hook re-render forever?\n\n"
        "export function useInvoices(customerId) {\n"
        "  const [items, setItems] = useState([]);\n"
        "  const apiKey = process.env.REACT_APP_API_KEY;\n"
        "  useEffect(() => {\n"
        f"    fetch(`/api/v{g.n(1, 3)}/customers/${{customerId}}/invoices?limit={g.n(10, 100)}`, "
        "{ headers: { 'x-api-key': apiKey } })\n"
        "      .then((r) => r.json())\n"
        "      .then((data) => setItems(data.items));\n"
        "  });\n"
        "  return items;\n"
        "}"
    )


def c_sql(g: Gen) -> str:
    return (
        "This query takes 40 seconds, how would you index it?\n\n"
        "SELECT c.id, c.country, sum(o.total_cents) AS revenue\n"
        "FROM customers c\n"
        "JOIN orders o ON o.customer_id = c.id\n"
        f"WHERE o.created_at >= '{g.date()}' AND o.status <> 'void'\n"
        "GROUP BY c.id, c.country\n"
        f"HAVING sum(o.total_cents) > {g.n(1000, 900000)}\n"
        f"ORDER BY revenue DESC LIMIT {g.n(10, 500)};"
    )


def c_config(g: Gen) -> str:
    return (
        "Convert this docker-compose service to a Kubernetes Deployment:\n\n"
        "services:\n"
        f"  {g.pick(REPOS)}:\n"
        f"    image: ghcr.io/acme/{g.pick(REPOS)}:{g.version()}\n"
        "    environment:\n"
        "      - DATABASE_URL=${DATABASE_URL}\n"
        "      - REDIS_URL=redis://redis:6379/0\n"
        "      - API_TOKEN=${API_TOKEN}\n"
        f"      - WORKERS={g.n(2, 16)}\n"
        "    ports:\n"
        f'      - "{g.pick([8000, 8080, 3000])}:{g.pick([8000, 8080, 3000])}"\n'
        "    healthcheck:\n"
        '      test: ["CMD", "curl", "-f", "http://localhost:8080/healthz"]\n'
        f"      interval: {g.n(5, 30)}s"
    )


def c_actions(g: Gen) -> str:
    return (
        "Why does this workflow not cache dependencies?\n\n"
        "jobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        f"      - uses: actions/setup-python@v5\n        with:\n          python-version: "
        f"'3.{g.n(10, 13)}'\n"
        "      - run: pip install -r requirements.txt\n"
        "      - run: pytest -q\n        env:\n"
        "          DATABASE_URL: ${{ secrets.DATABASE_URL }}\n"
        "          SENTRY_DSN: ${{ vars.SENTRY_DSN }}"
    )


def c_log(g: Gen) -> str:
    lines = []
    for _ in range(g.n(3, 7)):
        level = g.pick(["INFO", "INFO", "WARN", "ERROR", "DEBUG"])
        msg = g.pick(
            [
                f"job {g.uuid()} finished in {g.n(10, 9000)}ms",
                f"retrying request to payments-api (attempt {g.n(1, 5)}/5)",
                f"cache miss for key orders:{g.n(1000, 99999)}",
                f"connection pool exhausted (size={g.n(5, 50)}, waiting={g.n(1, 30)})",
                f"deployed build {g.sha(7)} to {g.pick(['staging', 'production'])}",
                f"slow query ({g.n(1, 30)}.{g.n(0, 9)}s): SELECT * FROM invoices WHERE id = $1",
                f"worker-{g.n(1, 8)} heartbeat ok, queue depth {g.n(0, 4000)}",
            ]
        )
        lines.append(f"{g.date()} {g.clock()},{g.digits(3)} {level} [{g.pick(REPOS)}] {msg}")
    return "Summarise what went wrong here:\n" + "\n".join(lines)


def c_email(g: Gen) -> str:
    company = g.company()[0]
    return (
        "Rewrite this email so it sounds friendlier:\n\n"
        f"Hi {g.pick(FIRST)},\n\n"
        f"Your renewal for {company} is due on {g.date()}. The new price is {g.money()} per "
        f"year for {g.n(10, 400)} seats, which includes the {g.pick(PRODUCTS)} add-on. If we do "
        f"not hear back by Friday we will downgrade the account to the Starter plan.\n\n"
        f"Regards,\n{g.name()}\nCustomer Success, {company}"
    )


def c_incident(g: Gen) -> str:
    return (
        f"Draft a postmortem from these facts. Incident {g.ticket()} on {g.date()}: the "
        f"{g.pick(PRODUCTS)} returned 502s for {g.n(4, 90)} minutes after release {g.version()}. "
        f"Root cause was a config change that lowered the connection limit to {g.n(5, 20)}. "
        f"About {g.n(2, 40)}% of checkout requests failed; {g.n(100, 5000)} orders were retried "
        "automatically. We rolled back at the first alert plus 12 minutes."
    )


def c_product(g: Gen) -> str:
    return (
        f"Write release notes for version {g.version()} of the {g.pick(PRODUCTS)}:\n"
        f"- faster exports (up to {g.n(2, 9)}x on files over {g.n(10, 500)} MB)\n"
        f"- new filter by region ({', '.join(g.r.sample(CITIES, 3))})\n"
        f"- fixed: totals were off by one cent when the tax rate was {g.n(5, 25)}%\n"
        f"- dropped support for API v{g.n(1, 2)} (deprecated since {g.date()})"
    )


def c_translate(g: Gen) -> str:
    return (
        f"Translate into {g.pick(['German', 'French', 'Spanish', 'Japanese', 'Portuguese'])}: "
        f'"Thanks for your order. Your parcel left our warehouse in {g.pick(CITIES)} on '
        f"{g.date()} and should arrive within {g.n(2, 7)} working days. You can track it in "
        'your account under Orders."'
    )


def c_analysis(g: Gen) -> str:
    rows = "\n".join(
        f"{city},{g.n(100, 9000)},{g.n(1, 99)}.{g.n(0, 9)}%,{g.money()}"
        for city in g.r.sample(CITIES, 4)
    )
    return (
        "Here are last month's numbers by city. What stands out?\n"
        f"city,orders,conversion,revenue\n{rows}"
    )


def c_stacktrace(g: Gen) -> str:
    return (
        "What causes this?\n\n"
        "Traceback (most recent call last):\n"
        f'  File "/app/{g.pick(REPOS)}/worker.py", line {g.n(10, 400)}, in handle\n'
        "    result = client.post(url, json=payload, timeout=5)\n"
        '  File "/usr/lib/python3.11/site-packages/httpx/_client.py", line 1145, in post\n'
        "    return self.request(\n"
        "httpx.ReadTimeout: The read operation timed out\n"
        f"(request id {g.uuid()}, after {g.n(5000, 30000)} ms)"
    )


def c_terraform(g: Gen) -> str:
    return (
        "Is there a problem with this Terraform?\n\n"
        f'resource "aws_s3_bucket" "{g.word()}" {{\n'
        f'  bucket = "acme-{g.word()}-{g.pick(REGIONS)}"\n'
        "  tags = {\n"
        f'    team        = "{g.pick(TEAMS)}"\n'
        f'    cost_center = "{g.n(1000, 9999)}"\n'
        "  }\n}\n\n"
        'variable "db_password" {\n  type      = string\n  sensitive = true\n}'
    )


def c_hr_policy(g: Gen) -> str:
    return (
        "Summarise this policy for new joiners in five bullet points: Employees accrue "
        f"{g.n(20, 30)} days of paid leave per year. Requests over {g.n(3, 10)} consecutive days "
        f"need manager approval two weeks ahead. Expenses above {g.money()} require a receipt "
        "and a cost center. Laptops are refreshed every three years; report a lost device "
        "to IT within 24 hours."
    )


def c_chat(g: Gen) -> str:
    a, b = g.pick(FIRST), g.pick(FIRST)
    return (
        f"[{g.n(9, 17)}:{g.n(10, 59)}] {a}: did the {g.pick(PRODUCTS)} deploy go out?\n"
        f"[{g.n(9, 17)}:{g.n(10, 59)}] {b}: yes, build {g.sha(7)} is live in "
        f"{g.pick(REGIONS)}, p99 went from {g.n(200, 900)}ms to {g.n(100, 400)}ms\n"
        f"[{g.n(9, 17)}:{g.n(10, 59)}] {a}: nice. can you update {g.ticket()} and ping "
        f"#{g.pick(TEAMS)}?\nSummarise this thread in one sentence."
    )


def c_package(g: Gen) -> str:
    name, version = f"{g.word()}-utils", g.version()
    return (
        "Why does npm ci fail with this lockfile entry?\n\n"
        f'"node_modules/{name}": {{\n'
        f'  "version": "{version}",\n'
        f'  "resolved": "https://registry.npmjs.org/{name}/-/{name}-{version}.tgz",\n'
        f'  "integrity": "sha512-{g.s(B64, 86)}==",\n'
        '  "license": "MIT"\n}'
    )


def ean13(g: Gen) -> str:
    body = g.pick(["400", "401", "540", "590", "800", "690", "471"]) + g.digits(9)
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def c_products(g: Gen) -> str:
    rows = "\n".join(
        f"SKU-{g.digits(5)},{ean13(g)},{g.word()} {g.pick(['mug', 'lamp', 'notebook', 'chair'])},"
        f"{g.n(1, 400)}.{g.digits(2)},{g.n(0, 900)}"
        for _ in range(g.n(3, 6))
    )
    return f"Find duplicate products in this feed:\nsku,ean,title,price,stock\n{rows}"


def c_k8s(g: Gen) -> str:
    return (
        "Why is the pod stuck in CreateContainerConfigError?\n\n"
        "containers:\n"
        f"  - name: {g.pick(REPOS)}\n"
        f"    image: registry.internal/{g.pick(REPOS)}:{g.sha(7)}\n"
        "    env:\n"
        "      - name: DB_PASSWORD\n"
        "        valueFrom:\n"
        "          secretKeyRef:\n"
        "            name: db-credentials\n"
        "            key: password\n"
        "      - name: API_TOKEN\n"
        "        valueFrom:\n"
        "          secretKeyRef: {name: api-token, key: token}\n"
        f"    resources:\n      limits: {{cpu: {g.n(1, 4)}, memory: {g.pick([256, 512, 1024])}Mi}}"
    )


def c_readme(g: Gen) -> str:
    return (
        "Proofread this README section:\n\n"
        "## Configuration\n\n"
        "Copy `.env.example` to `.env` and fill in:\n\n"
        "    OPENAI_API_KEY=your-api-key-here\n"
        "    DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DB\n"
        "    SECRET_KEY=<generate with `openssl rand -hex 32`>\n\n"
        f"Then run `make migrate` and `make run`. The app listens on port {g.n(3000, 9000)}. "
        "Never commit the `.env` file; rotate any key that was pasted in a chat."
    )


def c_ml(g: Gen) -> str:
    return (
        "Why is my batch size limited?\n\n"
        "tokenizer = AutoTokenizer.from_pretrained(model_name)\n"
        f"tokens = tokenizer(texts, truncation=True, max_length={g.pick([256, 512, 1024])})\n"
        f"token_count = sum(len(t) for t in tokens['input_ids'])\n"
        f"response = client.chat.completions.create(model=model, max_tokens={g.n(64, 4096)}, "
        f"temperature=0.{g.n(0, 9)}, messages=messages)"
    )


def c_forms(g: Gen) -> str:
    return (
        "Add validation to this form:\n\n"
        "class SignupForm(forms.Form):\n"
        "    email = forms.EmailField()\n"
        "    password = forms.CharField(widget=forms.PasswordInput, min_length=12)\n"
        "    password_confirm = forms.CharField(widget=forms.PasswordInput)\n\n"
        "    def clean(self):\n"
        "        data = super().clean()\n"
        "        if data.get('password') != data.get('password_confirm'):\n"
        "            raise ValidationError('Passwords do not match')\n"
        "        return data"
    )


def c_shell(g: Gen) -> str:
    return (
        "Explain what this script does:\n\n"
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        f'BACKUP_DIR="/var/backups/{g.pick(REPOS)}"\n'
        'TOKEN="$(vault kv get -field=token secret/ci/deploy)"\n'
        'tar -czf "$BACKUP_DIR/$(date +%F).tgz" /srv/app/data\n'
        f'find "$BACKUP_DIR" -mtime +{g.n(7, 60)} -delete\n'
        'curl -sf -H "Authorization: Bearer $TOKEN" -X POST https://ci.internal/api/notify'
    )


def c_legal(g: Gen) -> str:
    a, b = g.n(1, 14), g.n(1, 9)
    return (
        "Simplify this clause for a customer FAQ:\n\n"
        f"{a}.{b} Service Credits. If Availability in a calendar month falls below "
        f"{g.n(95, 99)}.{g.n(0, 9)}%, Customer is entitled to the credits in Section "
        f"{a}.{b}.{g.n(1, 5)} (see also clause {g.n(1, 9)}.{g.n(1, 9)}.{g.n(1, 9)}.{g.n(1, 9)}), "
        f"capped at {g.n(10, 30)}% "
        f"of the monthly fee of {g.money()}. Claims must be made within {g.n(15, 60)} days."
    )


def c_ids(g: Gen) -> str:
    return (
        "Why would these two events be processed twice?\n"
        f"event_id={g.n(10**18, 2 * 10**18)} ts={g.n(1_700_000_000_000, 1_720_000_000_000)} "
        f"shop=1{g.digits(9)} order=#{g.n(1000, 99999)} amount_cents={g.n(100, 99999)}\n"
        f"event_id={g.n(10**18, 2 * 10**18)} ts={g.n(1_700_000_000_000, 1_720_000_000_000)} "
        f"shop=1{g.digits(9)} order=#{g.n(1000, 99999)} amount_cents={g.n(100, 99999)}\n"
        f"USPS tracking 9400 1{g.digits(3)} {g.digits(4)} {g.digits(4)} {g.digits(4)} {g.digits(2)}"
    )


def c_oauth(g: Gen) -> str:
    return (
        "Explain this flow to a junior developer:\n"
        "1. Redirect the user to /authorize with client_id, redirect_uri and a random state.\n"
        "2. Exchange the authorization code for an access token: POST /oauth/token with "
        "grant_type=authorization_code.\n"
        f"3. Store the refresh token encrypted; access tokens expire after {g.n(5, 60)} minutes.\n"
        "4. Never log the token itself, only its hash."
    )


def c_support(g: Gen) -> str:
    return (
        "Draft a reply to this customer:\n\n"
        f"\"Hi, I reset my password twice today and I still can't log in to the "
        f"{g.pick(PRODUCTS)}. The page says my token is invalid. Order #{g.n(10000, 99999)} "
        f'is waiting and I need the invoice for {g.money()} by {g.date()}."'
    )


CLEAN_BODIES: tuple[Callable[[Gen], str], ...] = (
    c_meeting,
    c_code_python,
    c_code_js,
    c_sql,
    c_config,
    c_actions,
    c_log,
    c_email,
    c_incident,
    c_product,
    c_translate,
    c_analysis,
    c_stacktrace,
    c_terraform,
    c_hr_policy,
    c_chat,
    c_package,
    c_shell,
    c_products,
    c_k8s,
    c_readme,
    c_ml,
    c_forms,
    c_legal,
    c_ids,
    c_oauth,
    c_support,
)

CLEAN_SOURCES = {
    c_code_python: "code",
    c_code_js: "code",
    c_sql: "code",
    c_config: "config",
    c_actions: "config",
    c_terraform: "code",
    c_log: "log",
    c_stacktrace: "log",
    c_email: "email",
    c_chat: "chat",
    c_package: "config",
    c_shell: "code",
    c_k8s: "config",
    c_ml: "code",
    c_forms: "code",
}


# --------------------------------------------------------------------------- wrappers

INTROS = (
    "The deploy to staging fails since this morning.",
    "I'm trying to get this working locally and I'm stuck.",
    "Customer escalation, need an answer today.",
    "Quick question about the setup below.",
    "This worked yesterday and now it doesn't.",
    "Handing this over before my holiday, context below.",
)
OUTROS = (
    "Can you tell me what's wrong?",
    "What should I change?",
    "Please summarise the issue for the ticket.",
    "Thanks in advance!",
    "Let me know if you need more details.",
)


def wrap(g: Gen, body: Doc) -> tuple[str, Doc]:
    style = g.pick(["ticket", "chat", "email", "code", "prose", "bare"])
    if style == "ticket":
        doc = fill(
            "Ticket [[tid]]\nPriority: P[[p]]\nReporter: [[who]]\n\n[[intro]]\n\n[[body]]\n\n"
            "[[outro]]",
            tid=g.ticket(),
            p=str(g.n(1, 4)),
            who=g.name(),
            intro=g.pick(INTROS),
            body=body,
            outro=g.pick(OUTROS),
        )
    elif style == "chat":
        a, b = g.pick(FIRST), g.pick(FIRST)
        doc = fill(
            "[[[t1]]] [[a]]: [[intro]]\n[[[t1]]] [[a]]: [[body]]\n[[[t2]]] [[b]]: looking",
            t1=f"{g.n(9, 17)}:{g.n(10, 59)}",
            t2=f"{g.n(9, 17)}:{g.n(10, 59)}",
            a=a,
            b=b,
            intro=g.pick(INTROS),
            body=body,
        )
    elif style == "email":
        doc = fill(
            "Subject: [[subj]]\n\nHi [[first]],\n\n[[intro]]\n\n[[body]]\n\n[[outro]]\n\n"
            "Best,\n[[name]]",
            subj=f"Re: {g.pick(PRODUCTS)} issue",
            first=g.pick(FIRST),
            intro=g.pick(INTROS),
            body=body,
            outro=g.pick(OUTROS),
            name=g.name(),
        )
    elif style == "code":
        doc = fill(
            "[[intro]] [[outro]]\n\n```\n[[body]]\n```",
            intro=g.pick(INTROS),
            outro=g.pick(OUTROS),
            body=body,
        )
    elif style == "prose":
        doc = fill(
            "[[intro]]\n[[body]]\n[[outro]]", intro=g.pick(INTROS), body=body, outro=g.pick(OUTROS)
        )
    else:
        doc = body
    return style, doc


# --------------------------------------------------------------------------- assembly


def _sample(i: int, kind: str, source: str, doc: Doc, prefix: str = "") -> Sample:
    assert unicodedata.normalize("NFKC", doc.text) == doc.text, doc.text
    return Sample(f"{prefix}{kind}-{i:04d}", kind, source, doc.text, doc.labels)


@lru_cache(maxsize=4)
def _build(seed: int, positives: int, negatives: int, clean: int) -> tuple[Sample, ...]:
    g = Gen(seed)
    out: list[Sample] = []
    for i in range(positives):
        if i % 2 == 0:
            body = SECRET_SNIPPETS[(i // 2) % len(SECRET_SNIPPETS)](g)
            if g.chance(0.15):
                body = join([body, g.pick(PII_SNIPPETS)(g)], "\n\n")
        else:
            body = PII_SNIPPETS[(i // 2) % len(PII_SNIPPETS)](g)
            if g.chance(0.1):
                body = join([body, g.pick(SECRET_SNIPPETS)(g)], "\n\n")
        if g.chance(0.25):
            body = join([Doc(g.pick(CLEAN_BODIES)(g)), body], "\n\n")
        if g.chance(0.2):
            body = join([body, g.pick(NEGATIVE_SNIPPETS)(g)], "\n")
        source, doc = wrap(g, body)
        out.append(_sample(i, "positive", source, doc))
    for i in range(negatives):
        parts = [g.pick(NEGATIVE_SNIPPETS)(g) for _ in range(g.n(1, 3))]
        source, doc = wrap(g, join(parts))
        out.append(_sample(i, "hard_negative", source, doc))
    for i in range(clean):
        fns = [g.pick(CLEAN_BODIES) for _ in range(g.pick([1, 1, 1, 2]))]
        text = "\n\n".join(fn(g) for fn in fns)
        out.append(_sample(i, "clean", CLEAN_SOURCES.get(fns[0], "prose"), Doc(text)))
    return tuple(out)


def corpus(
    seed: int = SEED, positives: int = 1400, negatives: int = 600, clean: int = 1200
) -> list[Sample]:
    """The labelled corpus: round 1 (positives, hard negatives, clean prompts, in that
    order), then round 2 (see `round2`)."""
    return list(_build(seed, positives, negatives, clean)) + round2()


# --------------------------------------------------------------------------- round 2
#
# Written for issue 16 after the outside evaluation: national phone formats, IP look-alikes
# (four-part versions, OIDs, timestamps), generic assignments in more shapes, Azure keys
# and connection strings, Twilio identifiers. Generated apart from round 1 (own seed, own
# sample ids) so that round 1 stays what it was.

US_AREAS = ("212", "415", "646", "312", "617", "206", "512", "303", "404", "416", "604", "713")


def national_phone(g: Gen) -> str:
    """A number as people write it at home, without a country code: NANP, UK, Germany,
    France, India and Australia (the default region hints)."""
    d = g.digits
    npa = g.pick(US_AREAS)
    nxx = f"{g.n(2, 9)}{g.pick([x for x in range(10, 100) if x not in (11, 55)])}"
    formats: list[Callable[[], str]] = [
        lambda: f"({npa}) {nxx}-{d(4)}",
        lambda: f"{npa}-{nxx}-{d(4)}",
        lambda: f"{npa}.{nxx}.{d(4)}",
        lambda: f"{npa} {nxx} {d(4)}",
        lambda: f"1-{npa}-{nxx}-{d(4)}",
        lambda: f"1 ({npa}) {nxx}-{d(4)}",
        lambda: f"020 {g.pick('378')}{d(3)} {d(4)}",
        lambda: (
            f"07{g.pick(['700', '711', '723', '745', '766', '786', '812', '836', '903', '956'])}"
            f" {d(6)}"
        ),
        lambda: f"0161 {g.n(2, 8)}{d(2)} {d(4)}",
        lambda: f"0113 {g.n(2, 8)}{d(2)} {d(4)}",
        lambda: f"030 {g.n(2, 9)}{d(7)}",
        lambda: f"089 {g.n(2, 9)}{d(6)}",
        lambda: f"0{g.pick(['151', '152', '160', '170', '171', '176'])} {d(8)}",
        lambda: f"0{g.pick(['30', '40', '69', '221'])}/{g.n(2, 9)}{d(6)}",
        lambda: f"01 {g.n(40, 79)} {d(2)} {d(2)} {d(2)}",
        lambda: f"06 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"07 {g.n(50, 89)} {d(2)} {d(2)} {d(2)}",
        lambda: f"04.{g.n(72, 91)}.{d(2)}.{d(2)}.{d(2)}",
        lambda: f"{g.n(7, 9)}{d(4)} {d(5)}",
        lambda: f"0{g.n(7, 9)}{d(4)}-{d(5)}",
        lambda: f"022 {g.n(2, 6)}{d(3)} {d(4)}",
        lambda: f"(02) 9{d(3)} {d(4)}",
        lambda: f"04{g.n(0, 9)}{d(1)} {d(3)} {d(3)}",
    ]
    return g.pick(formats)()


def r2_phone(g: Gen) -> Doc:
    phone = pii(national_phone(g) if g.chance(0.75) else g.phone(), "phone")
    other = pii(national_phone(g), "phone")
    template = g.pick(
        [
            "Caller: [[name]]\nCallback number: [[phone]]\nIssue: cannot export invoices",
            "Hi, it's [[first]] from accounts. Please call me back on [[phone]] when you get "
            "a chance.",
            "--\n[[name]]\nSupport Engineer\nOffice: [[phone]]\nMobile: [[other]]",
            '{"customer": "[[name]]", "phone": "[[phone]]", "plan": "pro"}',
            "BEGIN:VCARD\nVERSION:3.0\nFN:[[name]]\nTEL;TYPE=cell:[[phone]]\nEND:VCARD",
            "Kontakt: [[name]], Tel.: [[phone]], bitte vormittags anrufen.",
            "Rappel client : [[name]], tél : [[phone]], préfère être joint le matin.",
            "text me at [[phone]] if the deploy goes sideways",
            "[[date]] 10:02:11 INFO sms.sent to=[[phone]] template=otp status=queued",
            "name,phone,city\n[[name]],[[phone]],[[city]]\n[[name2]],[[other]],[[city]]",
            "Emergency contact: [[name]] ([[phone]])",
            "The driver could not reach the customer at [[phone]], parcel returned to depot.",
            "phone: [[phone]]\nalt_phone: [[other]]",
        ]
    )
    return fill(
        template,
        phone=phone,
        other=other,
        name=g.name(),
        name2=g.name(),
        first=g.pick(FIRST),
        date=g.date(),
        city=g.pick(CITIES),
    )


def r2_phone_plain(g: Gen) -> Doc:
    """Digits only, written where the text says it is a phone number."""
    number = g.pick([f"{g.pick(US_AREAS)}{g.n(2, 9)}{g.digits(6)}", f"07{g.n(4, 9)}{g.digits(8)}"])
    if number.startswith("07"):
        number = f"07{g.pick(['700', '711', '723', '745', '766', '786'])}{g.digits(6)}"
    template = g.pick(
        ["mobile: [[phone]]", "Phone [[phone]]", "call [[phone]] after 6pm", "tel=[[phone]]"]
    )
    return fill(template, phone=pii(number, "phone"))


def r2_ip(g: Gen) -> Doc:
    ip = pii(g.private_ip() if g.chance(0.6) else g.public_ip(), "ip_address")
    ip2 = pii(g.private_ip(), "ip_address")
    template = g.pick(
        [
            "2: eth0: <BROADCAST,MULTICAST,UP> mtu 1500\n    inet [[ip]]/24 scope global eth0",
            "ssh -i ~/.ssh/deploy.pem ubuntu@[[ip]]",
            "curl -s http://[[ip]]:9200/_cluster/health?pretty",
            "host    all    all    [[ip]]/32    scram-sha-256",
            "[Peer]\nPublicKey = [[wg]]\nAllowedIPs = [[ip]]/32\nEndpoint = [[ip2]]:51820",
            "nameserver [[ip]]\nnameserver [[ip2]]",
            "Connection refused: [[ip]]:5432 - is the replica up?",
            "the build server [[ip]] ran out of disk again",
            "NAME       READY   STATUS    IP\napi-7d9f   1/1     Running   [[ip]]",
            "X-Real-IP: [[ip]]\nX-Forwarded-For: [[ip]], [[ip2]]",
            '{"event": "login_failed", "src_ip": "[[ip]]", "attempts": [[n]]}',
            "Please whitelist [[ip]] for the release pipeline.",
            "upgraded the firewall at [[ip]] to the new release tonight",
        ]
    )
    return fill(template, ip=ip, ip2=ip2, wg=g.s(B64, 43) + "=", n=str(g.n(3, 40)))


def r2_generic(g: Gen) -> Doc:
    pw = sec(g.password(), "generic_secret", "generic.password")
    key = sec(g.s(ALNUM, g.pick([32, 40, 48])), "generic_secret", "generic.api_key")
    hexkey = sec("0x" + g.s(HEX, 64), "generic_secret", "generic.private_key")
    laravel = sec(
        "base64:" + base64.b64encode(g.r.randbytes(32)).decode(),
        "generic_secret",
        "generic.app_key",
    )
    punct = sec(g.s(ALNUM + "!#%&*+-=?@^_;,<>", g.n(14, 22)), "generic_secret", "generic.password")
    template = g.pick(
        [
            "DB_PASS=[[pw]]",
            "SMTP_PASS: [[pw]]",
            "transporter = nodemailer.createTransport({\n  host: 'smtp.[[dom]]',\n"
            "  auth: { user: 'alerts', pass: '[[pw]]' },\n});",
            "app.config['SECRET_KEY'] = '[[key]]'",
            'os.environ["DB_PASSWORD"] = "[[pw]]"',
            "ENV['STRIPE_SECRET'] = '[[key]]'",
            "ACCESS_KEY=[[key]]",
            'accessKey: "[[key]]"',
            "PRIVATE_KEY=[[hexkey]]",
            "APP_KEY=[[laravel]]",
            "LICENSE_KEY=[[key]]",
            "MAPBOX_KEY=[[key]]",
            '"apiToken": "[[key]]",',
            'password = "[[punct]]"',
            "GET /export/download?token=[[key]]&format=csv HTTP/1.1",
            "kubectl create secret generic db --from-literal=password='[[pw]]'",
            "  datasource:\n    username: app\n    password: '[[punct]]'",
            'Set-Item Env:DB_PASSWORD "[[pw]]"',
            "The new wifi passphrase is [[pw]] (the old one stops working on Monday).",
        ]
    )
    return fill(
        template,
        pw=pw,
        key=key,
        hexkey=hexkey,
        laravel=laravel,
        punct=punct,
        dom=g.company()[1],
    )


def r2_azure(g: Gen) -> Doc:
    account = f"{g.word()}{g.pick(['prod', 'data', 'logs', 'backup'])}{g.n(1, 99)}"
    key = g.azure_account_key()
    which = g.n(0, 7)
    if which == 0:
        value = sec(
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
            f"BlobEndpoint=https://{account}.blob.core.windows.net/;"
            f"QueueEndpoint=https://{account}.queue.core.windows.net/",
            "cloud_credential",
            "azure.connection_string",
        )
        template = '"StorageConnection": "[[v]]"'
    elif which == 1:
        value = sec(
            f"AccountName={account};AccountKey={key};EndpointSuffix=core.windows.net",
            "cloud_credential",
            "azure.connection_string",
        )
        template = "STORAGE=[[v]]"
    elif which == 2:
        value = sec(key, "cloud_credential", "azure.account_key")
        template = g.pick(
            [
                "AZURE_STORAGE_KEY=[[v]]",
                "export AZURE_STORAGE_ACCESS_KEY=[[v]]",
                'storage_account_key = "[[v]]"',
                "az storage blob upload --account-name [[acct]] --account-key [[v]] "
                "--container-name backups --file db.dump",
            ]
        )
    elif which == 3:
        value = sec(key, "cloud_credential", "azure.account_key")
        template = (
            '[\n  {\n    "creationTime": "[[stamp]]",\n    "keyName": "key1",\n'
            '    "permissions": "FULL",\n    "value": "[[v]]"\n  }\n]'
        )
    elif which == 4:
        value = sec(
            f"Endpoint=sb://{account}.servicebus.windows.net/;"
            f"SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={g.s(B64, 43)}=",
            "cloud_credential",
            "azure.service_bus",
        )
        template = g.pick(['"ServiceBus": "[[v]]"', "SERVICEBUS_CONNECTION=[[v]]"])
    elif which == 5:
        value = sec(
            f"AccountEndpoint=https://{account}.documents.azure.com:443/;AccountKey={key};",
            "cloud_credential",
            "azure.cosmos",
        )
        template = 'var client = new CosmosClient("[[v]]");'
    else:
        value = sec(
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
            "EndpointSuffix=core.windows.net",
            "cloud_credential",
            "azure.storage_connection_string",
        )
        template = g.pick(
            [
                'spark.conf.set("fs.azure.account.key", "[[v]]")',
                '<add name="Storage" connectionString="[[v]]" />',
            ]
        )
    return fill(template, v=value, acct=account, stamp=g.stamp())


def r2_twilio(g: Gen) -> Doc:
    sid = g.twilio_sid()
    token = sec(g.s(HEX, 32), "saas_token", "twilio.auth_token")
    template = g.pick(
        [
            "account_sid = '[[sid]]'\nauth_token = '[[token]]'\nclient = Client(account_sid, "
            "auth_token)",
            "curl 'https://api.twilio.com/2010-04-01/Accounts/[[sid]]/Calls.json' -u "
            "'[[sid]]:[[token]]'",
            "TWILIO_ACCOUNT_SID=[[sid]]\nTWILIO_AUTH_TOKEN=[[token]]",
        ]
    )
    return fill(template, sid=sid, token=token)


R2_POSITIVES: tuple[Callable[[Gen], Doc], ...] = (
    r2_phone,
    r2_phone,
    r2_phone,
    r2_phone_plain,
    r2_ip,
    r2_ip,
    r2_generic,
    r2_generic,
    r2_azure,
    r2_twilio,
)


def n_r2_numbers(g: Gen) -> Doc:
    """Numbers that are not phone numbers, in the places they occur."""
    d = g.digits
    options = [
        f"Order {g.n(2, 9)}{d(9)} was refunded on {g.date()}",
        f"invoice INV-{g.n(2019, 2025)}-{d(6)} is overdue by {g.n(2, 40)} days",
        f"Reported {g.date()} {g.clock()}, resolved {g.date()} {g.clock()}",
        f"Valid from {g.n(1, 28):02d}.{g.n(1, 12):02d}.{g.n(2020, 2026)} to "
        f"{g.n(1, 28):02d}.{g.n(1, 12):02d}.{g.n(2020, 2026)}",
        f"shipping to ZIP {g.n(10000, 99999)}-{d(4)}, weight {g.n(1, 30)}.{d(1)} kg",
        f"total {g.pick(['$', '€'])}{g.n(1, 999)},{d(3)},{d(3)}.{d(2)} across {g.n(2, 90)} "
        "accounts",
        f"ISBN 978-{g.n(0, 1)}-{d(3)}-{d(5)}-{g.n(0, 9)}",
        f"CVE-{g.n(2019, 2025)}-{g.n(10000, 49999)} affects {g.n(1, 9)}.{g.n(0, 20)}.{g.n(0, 9)}",
        f"epoch {g.n(1_600_000_000, 1_750_000_000)} ms {g.n(1_600_000_000_000, 1_750_000_000_000)}",
        f"resolution {g.pick(['1920 x 1080', '2560 x 1440', '3840 x 2160'])} at "
        f"{g.pick(['60', '120', '144'])} Hz",
        f"coordinates {g.n(10, 60)}.{d(6)}, -{g.n(0, 120)}.{d(6)}",
        f"ports {g.pick(['8080 8443 9090 9443', '3000 3001 5432 6379', '80 443 8000 8888'])}",
        f"tracking 1Z {g.s(UPPER_DIGITS, 3)} {g.s(UPPER_DIGITS, 3)} {d(2)} {d(4)} {d(4)}",
        f"PO number {d(4)} {d(4)} {d(2)}, cost centre {d(4)}",
        f"account no. {d(8)}, sort code {d(2)}-{d(2)}-{d(2)}",
        f"build {g.n(2020, 2025)}{g.n(1, 12):02d}{g.n(1, 28):02d}.{g.n(1, 9)} passed "
        f"{g.n(100, 999)} tests in {g.n(10, 99)}.{d(2)} s",
        f"| {g.n(2019, 2025)} | {g.n(1, 999)},{d(3)} | {g.n(1, 999)},{d(3)} | "
        f"{g.n(1, 99)}.{d(1)}% |",
        "pi to 14 places is 3.14159265358979, e is 2.71828182845904",
        f"Serial number: {g.s(UPPER_DIGITS, 4)}-{d(4)}-{d(4)}-{d(4)}",
        f"memory {g.n(1000, 9999)} MiB / {g.n(10000, 65000)} MiB, {g.n(100, 999)} threads",
        f"the batch processed {g.n(1, 9)} {d(3)} {d(3)} rows in {g.n(2, 59)} minutes",
        f"GTIN {d(14)} / EAN {d(13)} on the pallet label",
        f"Process ID {g.n(1000, 65000)}, parent {g.n(1000, 65000)}, started {g.date()}T{g.clock()}",
    ]
    return Doc(g.pick(options))


def n_r2_dotted(g: Gen) -> Doc:
    """Four-part dotted numbers that are versions, OIDs and timestamps, not addresses."""
    big = lambda: g.n(10, 250)  # noqa: E731 - octet-sized parts, the hard case
    small = lambda: g.n(0, 30)  # noqa: E731
    v4 = f"{g.n(2, 24)}.{small()}.{big()}.{big()}"
    options = [
        f"version {v4}",
        f"Version: {v4}",
        f"upgrade to release {v4} before Friday",
        f"pip install acme-sdk=={v4}",
        f"acme-client>={v4},<{g.n(25, 30)}.0",
        f'<PackageReference Include="Acme.Core" Version="{v4}" />',
        f'[assembly: AssemblyFileVersion("{v4}")]',
        f"System.Runtime, Version={v4}, Culture=neutral, PublicKeyToken={g.sha(16)}",
        f"Firmware {v4} (build {g.n(1000, 9999)})",
        f"Installed: acme-agent-{v4}.msi",
        f"AcmeAgent/{v4} (Linux x86_64)",
        f"running v{v4} since {g.date()}",
        f"OID {g.pick(['2.5.29.17', '2.5.29.37', '2.5.29.19', '2.5.4.10', '2.5.29.31'])} is the "
        "extension we need",
        f"extendedKeyUsage (OID 1.3.6.1.5.5.7.3.{g.n(1, 9)}) missing",
        f"{g.date()} {g.n(10, 23)}.{g.n(10, 59)}.{g.n(10, 59)}.{g.n(10, 250)} ERROR queue full",
        f"see section {g.n(2, 12)}.{g.n(1, 20)}.{g.n(10, 40)}.{g.n(10, 40)} of the contract",
        f"Chrome/{g.n(100, 126)}.0.{g.n(100, 250)}.{g.n(10, 200)}",
        f"build {v4} is the release candidate",
    ]
    return Doc(g.pick(options))


def n_r2_secrets(g: Gen) -> Doc:
    """Assignments that hold no secret, and identifiers that look like keys."""
    options = [
        "PASSWORD_MIN_LENGTH=12\nPASSWORD_RESET_TIMEOUT=3600",
        'api_key_header = "X-API-Key"',
        'secret_name = "prod/db/password"',
        'cache_key = f"user:{user_id}:profile"',
        "PARTITION_KEY=tenant_id\nSORT_KEY=created_at",
        f"STRIPE_PUBLISHABLE_KEY=pk_live_{g.s(ALNUM, 24)}",
        "primary_key=True, nullable=False",
        "DB_PASS=${DB_PASS}",
        "pass: process.env.SMTP_PASS",
        "bypass_cache = true",
        "PASS_MAX_DAYS   99999\nPASS_MIN_DAYS   0",
        'token_type: "Bearer"',
        "secret: {{ .Values.redis.secretName }}",
        'key_vault_name = "kv-prod-weu-01"',
        "SSH_KEY_PATH=~/.ssh/id_ed25519",
        f"TWILIO_ACCOUNT_SID={g.twilio_sid()}",
        f"POST /2010-04-01/Accounts/{g.twilio_sid()}/Messages.json 201",
        f"account_sid={g.twilio_sid()} message_sid=SM{g.s(HEX, 32)} status=delivered",
        f"AZURE_STORAGE_ACCOUNT={g.word()}prod{g.n(1, 99)}",
        "AccountKey=<storage-account-key>",
        "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;"
        "AccountKey=${AZURE_STORAGE_KEY};EndpointSuffix=core.windows.net",
        f'"integrity": "sha512-{g.s(B64, 86)}=="',
        "password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
        'token = await get_token(scope="orders:read")',
    ]
    return Doc(g.pick(options))


R2_NEGATIVES: tuple[Callable[[Gen], Doc], ...] = (n_r2_numbers, n_r2_dotted, n_r2_secrets)
R2_SEED = 20251116


@lru_cache(maxsize=2)
def _build_round2(seed: int, positives: int, negatives: int) -> tuple[Sample, ...]:
    g = Gen(seed)
    out: list[Sample] = []
    for i in range(positives):
        body = R2_POSITIVES[i % len(R2_POSITIVES)](g)
        if g.chance(0.2):
            body = join([Doc(g.pick(CLEAN_BODIES)(g)), body], "\n\n")
        if g.chance(0.3):
            body = join([body, g.pick(R2_NEGATIVES)(g)], "\n")
        source, doc = wrap(g, body)
        out.append(_sample(i, "positive", source, doc, "r2-"))
    for i in range(negatives):
        parts = [g.pick(R2_NEGATIVES)(g) for _ in range(g.n(1, 3))]
        source, doc = wrap(g, join(parts))
        out.append(_sample(i, "hard_negative", source, doc, "r2-"))
    return tuple(out)


def round2(seed: int = R2_SEED, positives: int = 600, negatives: int = 500) -> list[Sample]:
    """The round-2 samples alone (ids start with ``r2-``)."""
    return list(_build_round2(seed, positives, negatives))


def latency_prompts(seed: int = SEED) -> dict[str, str]:
    """Prompts for the latency figures: clean 2 KB, 2 KB with findings, clean 100 KB."""
    samples = corpus(seed)
    clean = [s.text for s in samples if s.kind == "clean"]
    dirty = [s.text for s in samples if s.kind == "positive" and len(s.labels) >= 2]

    def up_to(texts: list[str], size: int) -> str:
        out, n, i = [], 0, 0
        while n < size:
            out.append(texts[i % len(texts)])
            n += len(out[-1]) + 2
            i += 1
        return "\n\n".join(out)[:size]

    findings = up_to(dirty[:3], 900) + "\n\n" + up_to(clean[50:], 2048)
    return {
        "clean 2 KB": up_to(clean, 2048),
        "2 KB with findings": findings[:2048],
        "clean 100 KB": up_to(clean[100:], 100_000),
    }


def to_json(samples: list[Sample]) -> str:
    return json.dumps([asdict(s) for s in samples])


def from_json(text: str) -> list[Sample]:
    return [
        Sample(d["id"], d["kind"], d["source"], d["text"], tuple(Label(**lb) for lb in d["labels"]))
        for d in json.loads(text)
    ]
