"""Person names in free text, without a language model.

Two ways a run of capitalised words becomes a name:

- a cue says so: "my name is", "Name:", "Patient:", "Dear", "Mr"/"Dr"/"Frau"/"Mme", a
  sign-off line ("Kind regards," then the name on the next line). The run must still
  look like a name (no stop word, no all-capitals, no code);
- without a cue, a given name followed by a surname, both in the US census name tables
  that `probablepeople` ships (MIT; 5,163 given names and 154,292 census names with the
  share of people who bear each as a given name). probablepeople's CRF tagger is not used:
  it tags any two capitalised words as a person ("Kubernetes Cluster").

What it misses: single names without a cue, names written in lower case, names outside
the census tables without a cue (most non-US surnames when nothing introduces them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

_UPPER = "A-ZÀ-ÖØ-Þ"
_LOWER = "a-zß-öø-ÿ"
_WORD = rf"(?:Mc|Mac|O['\u2019])?[{_UPPER}][{_LOWER}]+(?:-[{_UPPER}][{_LOWER}]+)?"
_PARTICLE = (
    r"(?:van der|van den|van de|van|von der|von|de la|de los|del|de|da|di|dos|du|le|la|bin|al)"
)
# Given name, optional middle name or initial, optional particle, surname.
_FULL = rf"{_WORD}(?:[ \t]+(?:{_WORD}|[{_UPPER}]\.))?(?:[ \t]+{_PARTICLE})?[ \t]+{_WORD}"
_CAPITAL = re.compile(rf"(?<![\w.@/#$-]){_WORD}")
_RUN = re.compile(rf"(?:{_FULL}|{_WORD})(?![\w@(-])")
_PAIR = re.compile(rf"{_FULL}(?![\w@(-])")

# What the words before a capitalised run say of it. title: a surname alone after it is
# a name; strong and sign-off (the name on the line after "Kind regards,"): any name-like
# run; greeting: a known given name, alone too; weak: a known given name and more;
# article: a thing ("the Golden Gate Bridge"), not a person.
_TITLES = "mr mrs ms miss mx dr prof herr frau mme mlle sr sra m".split()
_LABELS = (
    "my name is|my name's|full name|first name|last name|surname|name|patient|customer|"
    "client|employee|applicant|candidate|tenant|guest|passenger|beneficiary|account holder|"
    "cardholder|policyholder|insured|contact|recipient|sender|attn|attention|from|to|cc|"
    "signed|dear|ich heiße|mein name ist|je m'appelle|me llamo|nom|vorname|nachname"
).split("|")
_INTRODUCERS = (
    "my name is|my name's|dear|signed|sincerely|ich heiße|mein name ist|je m'appelle|"
    "me llamo|liebe|lieber|sehr geehrte|sehr geehrter|cher|chère"
).split("|")
_SIGN_OFFS = (
    "regards|best|thanks|thank you|cheers|sincerely|yours|warmly|best wishes|"
    "mit freundlichen grüßen|viele grüße|grüße|cordialement|bien à vous|saludos|atentamente"
).split("|")
_GREETINGS = "hi|hello|hey|thanks|thank you|hallo|bonjour|salut".split("|")
_WEAK = (
    "this is|i am|i'm|ich bin|je suis|ask|asked|call|email|tell|told|met|meet|with|by|and|"
    "for|to|from|cc"
).split("|")
_ARTICLES = "the|a|an|our|your|their|this|that".split("|")


def _backwards(words: list[str]) -> str:
    """An alternation of `words` as they read in the reversed text, whole words only."""
    return "(?:" + "|".join(re.escape(w[::-1]) for w in words) + r")(?!\w)"


# Matched at one place, in the reversed lower-cased text: what ends right before a
# capitalised word, read backwards (one anchored match per word, not a scan).
_CUES = re.compile(
    "(?:"
    rf"(?P<title>[ \t]+\.?{_backwards(_TITLES)})"
    rf"|(?P<strong>[ \t]*:[ \t]*{_backwards(_LABELS)}|[ \t]+{_backwards(_INTRODUCERS)}"
    rf"|[ \t]*\n[ \t]*[,.!]?{_backwards(_SIGN_OFFS)})"
    rf"|(?P<greeting>[ \t,]+{_backwards(_GREETINGS)})"
    rf"|(?P<weak>[ \t,]+{_backwards(_WEAK)})"
    rf"|(?P<article>[ \t]+{_backwards(_ARTICLES)})"
    ")"
)
# Capitalised words that a cue may stand before but that are not names.
_STOP = frozenset(
    """
    The A An This That These Those It Its I We You He She They My Our Your Their His Her
    Is Are Was Were Be Been Am Not No Yes Please Thanks Thank Hello Hi Hey Dear All Team
    Everyone Folks Guys Sir Madam Customer Support Service Sales Admin Manager Director
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday Today Tomorrow Yesterday
    January February March April May June July August September October November December
    New Old North South East West Street Road Avenue City State County Inc Ltd Llc Corp
    Company Group Bank University Hospital School Department Project Account Order
    Invoice Ticket Error Warning Info Debug True False None Null Test Example Sample
    Name Subject From To Cc Re Fw Fwd Date Note Update Question Request Issue Hier Mein
    Ich Bonjour Merci Madame Monsieur Herr Frau Mit Viele Je Le La Les Un Une Und Der Die
    Das Den Dem Ein Eine Here There Just Also And Or But If When Then So As At By For In
    Of On With Without About After Before Over Under Via Per Best Kind Warm Regards Cheers
    Python Java Docker Kubernetes Linux Windows Google Microsoft Amazon Apple Azure Slack
    Github Gitlab Jira Excel Word Outlook Teams Zoom Api Sdk Cli Json Sql Http
    """.split()
)
# Words that end a company's name, not a person's ("Tyrell Analytics", "Wayne Freight":
# both words are in the census tables). A run ending in one is an organisation.
_ORGANISATIONS = frozenset(
    """
    Analytics Freight Logistics Systems Solutions Technologies Technology Tech Labs Lab
    Software Services Consulting Partners Capital Holdings Industries Group Networks Media
    Energy Health Healthcare Pharma Pharmaceuticals Foods Motors Airlines Airways Insurance
    Bank Bancorp Financial Finance Ventures Studios Robotics Dynamics Electronics Security
    Cloud Data Digital Global International Enterprises Retail Shipping Construction
    Manufacturing Legal Law Associates Brothers Foundation Institute Academy Clinic
    Pharmacy Hotels Resorts Realty Properties Estates Trust Markets Marketing Design Works
    Mobility Aerospace Chemicals Materials Mining Power Utilities Telecom Communications
    Wireless Games Entertainment Publishing Press News Records Music Films Pictures Apparel
    Beverages Brewing Coffee Bakery Farms Transport Transit Express Cargo Couriers Travel
    Tours Rentals Automotive Supply Supplies Stores Outlet Corporation Incorporated Limited
    Co Corp Inc Ltd Llc Gmbh Ag Plc Pty Llp
    """.split()
)
# Given names that are also everyday words: without a cue they do not start a name.
_WORD_NAMES = frozenset(
    """
    Will May Can Mark Bill Page Chase Grant Max Art Rich Hope Faith Joy Sky Summer Autumn
    Winter April June August Lane Dean Guy Pat Sue Don Rose Iris Ivy Jade Ruby Pearl Dawn
    Eve Holly Crystal Amber Destiny Price Royal King Major Young Long Short Early Case
    Chance Cash Miles Frank Gay Harmony Honor Justice Lance Lincoln Mason Penny Rob Ray
    Reed Rod Sandy Skip Sterling Stone Storm Tag Ward Wade Wood Gene Jack Jean Carol Sage
    """.split()
)


@functools.cache
def _tables() -> tuple[frozenset[str], dict[str, float]]:
    """(given names, census names -> share borne as a given name), upper case; loaded on
    first use (about a third of a second): only a policy that asks for names pays it."""
    from probablepeople.gender import gender_names
    from probablepeople.ratios import ratios

    given = frozenset(n.upper() for n in gender_names) | frozenset(
        n for n, share in ratios.items() if share >= 0.9
    )
    return given, ratios


def warm() -> None:
    _tables()


def _words(run: str) -> list[str]:
    return [w for w in re.split(r"[ \t]+", run) if w and not re.fullmatch(_PARTICLE, w)]


def _name_like(run: str) -> bool:
    """A run a cue introduced: every word capitalised, none a stop word."""
    words = _words(run)
    return (
        bool(words)
        and words[-1] not in _ORGANISATIONS
        and not any(w in _STOP or (w.isupper() and len(w) > 2) for w in words)
    )


def _census_pair(run: str) -> bool:
    """Without a cue: a given name first (a middle name too) and a census surname last."""
    given, census = _tables()
    words = _words(run)
    first, last = words[0], words[-1]
    if first in _WORD_NAMES or first in _STOP or last in _STOP or last in _ORGANISATIONS:
        return False
    middle = words[1:-1]
    if middle and not (middle[0].endswith(".") or middle[0].upper() in given):
        return False
    first_key, last_key = first.split("-")[0].upper(), last.split("-")[-1].upper()
    return first_key in given and last_key in census


def _cue(backwards: str, start: int) -> str | None:
    """The kind of cue that ends at `start` (see _CUES), None if none does."""
    m = _CUES.match(backwards, len(backwards) - start)
    return m.lastgroup if m is not None else None


def _trimmed(text: str, start: int, end: int) -> int:
    """The run's end without trailing stop words ("Dear Jane Doe Team" -> "Jane Doe")."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while len(words) > 1 and words[-1].group(0) in _STOP:
        words.pop()
    return start + words[-1].end()


def find(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, evidence) of each name."""
    given = _tables()[0]
    backwards: str | None = None
    taken = -1
    for word in _CAPITAL.finditer(text):
        start = word.start()
        if start < taken:
            continue
        if backwards is None:  # only for a text with a capitalised word
            lower = text.lower()
            backwards = (lower if len(lower) == len(text) else text)[::-1]
        cue = _cue(backwards, start)
        if cue is not None and cue != "article":
            run = _RUN.match(text, start)
            if run is not None:
                end = _trimmed(text, start, run.end())
                name = text[start:end]
                first = _words(name)[0].split("-")[0].upper()
                known = first in given
                # A single word is a name after a title, a greeting or a strong cue
                # ("Dear Anna"), and only if known; two or more after a strong cue.
                single = " " not in name
                strong = cue == "title" or (cue == "strong" and not single)
                known = known and (not single or cue != "weak")
                known = known and not (cue == "weak" and name.split()[0] in _WORD_NAMES)
                if _name_like(name) and (known or strong):
                    taken = end
                    yield start, end, f"name after a {cue} cue"
                    continue
        # No cue, or nothing name-like after it: a given name + surname pair, unless
        # an article makes it a thing.
        if cue == "article":
            continue
        pair = _PAIR.match(text, start)
        if pair is not None and _census_pair(pair.group(0)):
            taken = pair.end()
            yield start, pair.end(), "given name and surname (census tables)"
