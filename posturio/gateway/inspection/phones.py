"""Phone numbers, national and international, validated with libphonenumber.

The one-pass scan only says that a window holds a run of seven digits or more (PREFILTER);
a prompt without one never gets here. In such a window each run of digits and phone
punctuation is a candidate: cheap shape checks turn down what is plainly something else
(part of an identifier, a date, a dotted quad, bare digits nobody called a phone number),
then libphonenumber parses the run for each region hint in turn and keeps it when the
number is valid for its country (the `VALID` leniency of its own matcher: a valid number,
and the national prefix present where the country writes one). The matcher itself is not
used: it scans the text again with a pattern of its own and costs several times more per
candidate.

A number written without a country code means nothing without a region, so the region
hints decide which national formats are found: the tenant's regions, else
DEFAULT_REGIONS."""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers
from phonenumbers import Leniency, NumberParseException
from phonenumbers.phonenumbermatcher import _verify  # the matcher's VALID check

# North America, the UK, Germany, France, India, Australia: where most of our tenants'
# national-format numbers come from. Numbers with a country code are found whatever the
# hints say.
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN", "AU")

# Hyperscan-compatible: seven digits with at most three punctuation characters between.
PREFILTER = r"[0-9](?:[ ()./\-]{0,3}[0-9]){6}"
# The same, in full. It starts at a digit (several times faster in Python's `re` than an
# optional + or parenthesis first): find() takes those in front of it back.
_RUN = re.compile(r"[0-9](?:[ ()./\-]{0,3}[0-9]){6,}\)?")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")
_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?![.\d])")  # also 10.0.0.0/16, 10.0.0.1:80
_DECIMAL = re.compile(r"\d+\.\d+")
# Bare digits count only where the text says they are a phone number; any digits do not
# where it says they are something else (and not a phone number).
_PHONE_WORD = (
    r"(?:phone|tel|mobile|mob|cell|call(?:back)?|fax|sms|text|whatsapp|signal|dial|ring"
    r"|telefon|handy|t[ée]l[ée]phone|portable|m[óo]vil|contact|reach)\b"
)
_SAID_PHONE = re.compile(_PHONE_WORD + r"[^\n\d]{0,16}$", re.IGNORECASE)
_SAID_OTHER = re.compile(
    r"\b(?:order|invoice|inv|po|tracking|account|acct|serial|ref|reference|ticket|case"
    r"|sku|gtin|ean|isbn|id|build|version|batch)\b[^\n]{0,24}$",
    re.IGNORECASE,
)
_PHONE_BEFORE = re.compile(_PHONE_WORD, re.IGNORECASE)
# Ranges set aside for fiction and documentation: NANP 555-0100..0199; Ofcom's drama
# numbers (national significant number prefixes).
_FICTIONAL_UK = (
    "1134960",
    "1144960",
    "1154960",
    "1164960",
    "1174960",
    "1184960",
    "1214960",
    "1314960",
    "1414960",
    "1514960",
    "1614960",
    "2079460",
    "1914980",
    "2890180",
    "2920180",
    "1632960",
    "7700900",
    "8081570",
    "9098790",
    "3069990",
)


def documented_number(number: phonenumbers.PhoneNumber) -> bool:
    national = str(number.national_number)
    if number.country_code == 1:
        return national[3:7] == "5550" and national[7] == "1"
    return number.country_code == 44 and national.startswith(_FICTIONAL_UK)


def _word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _glued(text: str, start: int, end: int) -> bool:
    """Part of an identifier or a longer number: ORD-2024-0015673, /Accounts/123…, v1.2."""
    b2, b1 = text[start - 2 : start - 1] if start > 1 else "", text[start - 1 : start]
    a1, a2 = text[end : end + 1], text[end + 1 : end + 2]
    left = _word(b1) or (b1 in ("-", ".", "/") and b1 != "" and _word(b2))
    right = _word(a1) or (a1 in ("-", ".", "/") and a1 != "" and _word(a2))
    return left or right


def _plausible(text: str, start: int, run: str) -> bool:
    """Shape checks before any parsing: most digit runs in prompts are not numbers."""
    digits = sum(c.isdigit() for c in run)
    if digits > 15 or _DATE.match(run) or _ADDRESS.match(run) or _DECIMAL.fullmatch(run):
        return False
    if run.isdigit():
        return _SAID_PHONE.search(text, max(0, start - 40), start) is not None
    said_other = _SAID_OTHER.search(text, max(0, start - 40), start)
    return said_other is None or _PHONE_BEFORE.search(said_other.group(0)) is not None


def _parse(run: str, regions: tuple[str, ...]) -> phonenumbers.PhoneNumber | None:
    """The first reading of `run` that is a valid number; with a country code, one try."""
    international = run.lstrip("(").startswith("+")
    for region in regions[:1] if international else regions:
        try:
            number = phonenumbers.parse(run, region, keep_raw_input=True)
        except NumberParseException:
            continue
        # The VALID check never reads the matcher; the stub types it as always required.
        if _verify(Leniency.VALID, number, run, None):  # type: ignore[arg-type]
            return number
    return None


def find(
    text: str, start: int, end: int, regions: tuple[str, ...]
) -> Iterator[tuple[int, int, str, bool]]:
    """(start, end, evidence, documented test value) for each valid number in the window."""
    for match in _RUN.finditer(text, start, end):
        run_start, run_end = match.span()
        while run_start > start and run_start > match.start() - 2 and text[run_start - 1] in "+(":
            run_start -= 1
        run = text[run_start:run_end]
        if run.endswith(")") and "(" not in run:
            run, run_end = run[:-1], run_end - 1
        if _glued(text, run_start, run_end) or not _plausible(text, run_start, run):
            continue
        number = _parse(run, regions or DEFAULT_REGIONS)
        if number is None:
            continue
        region = phonenumbers.region_code_for_number(number) or "international"
        if documented_number(number):
            yield run_start, run_end, f"fictional {region} number", True
        else:
            yield run_start, run_end, f"valid {region} number (libphonenumber)", False
