"""Street addresses in free text: US, UK, German and French shapes.

A candidate needs a house number next to a street word: "123 Main St", "10 Downing
Street", "Hauptstraße 12", "12 rue de la Paix". English-style candidates are then read by
`usaddress` (MIT, datamade; a CRF model shipped inside its wheel): it must tag a house
number and a street name, so "12 Monkeys" or "3 Street Fighter games" do not count. The
German and French shapes are specific enough on their own. A unit ("Apt 4"), a city with
a state and ZIP code, or a postal code and city that follow are part of the finding.

What it misses: addresses without a house number, PO boxes, street types outside the
lists below, other countries' shapes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

# USPS street suffixes (Publication 28, appendix C1: the common full and short forms).
_EN_TYPES = (
    "alley|aly|annex|anx|arcade|arc|avenue|ave|av|bayou|beach|bend|bluffs?|bottom|"
    "boulevard|blvd|branch|bridge|brooks?|burgs?|bypass|camp|canyon|cape|causeway|"
    "centers?|ctr|circles?|cir|cliffs?|club|commons?|corners?|course|courts?|ct|coves?|"
    "creek|crescent|crest|crossing|xing|crossroad|curve|dale|dam|divide|drives?|dr|"
    "estates?|expressway|expy|extensions?|falls?|ferry|fields?|flats?|fords?|forest|"
    "forges?|forks?|fort|freeway|fwy|gardens?|gateway|glens?|greens?|groves?|harbors?|"
    "haven|heights|hts|highway|hwy|hills?|hollow|inlet|islands?|isle|junctions?|jct|"
    "keys?|knolls?|lakes?|land|landing|lane|ln|lights?|loaf|locks?|lodge|loop|mall|"
    "manors?|meadows?|mews|mills?|mission|motorway|mount|mountains?|neck|orchard|oval|"
    "overpass|parks?|parkways?|pkwy|pass|passage|path|pike|pines?|place|pl|plains?|plaza|"
    "points?|pt|ports?|prairie|radial|ramp|ranch|rapids?|rest|ridges?|river|roads?|rd|"
    "route|row|run|shoals?|shores?|skyway|springs?|spurs?|squares?|sq|stations?|"
    "stravenue|streams?|streets?|st|summit|terrace|ter|throughway|trace|track|"
    "trafficway|trail|trl|trailer|tunnel|turnpike|tpke|underpass|unions?|valleys?|"
    "via|viaduct|views?|villages?|ville|vista|walks?|wall|ways?|wells?|"
    "close|grove|hill|row|rue|walk|wharf"
)
_CAP = r"[A-Z0-9][\w'\u2019.-]*"
# House number, one to five words of street name, a street type (any case: "Smith mews").
_EN = re.compile(
    rf"(?<![\w.,/-])[0-9]{{1,6}}[A-Za-z]?(?:-[0-9]{{1,4}})?[ \t]+(?:{_CAP}[ \t]+){{1,5}}"
    rf"(?i:{_EN_TYPES})\.?(?![\w])"
    r"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b)?"
)
# UK: a flat or studio before the street, which then has no number of its own.
_UK_FLAT = re.compile(
    rf"(?<![\w.,/-])(?:flat|studio|apartment|unit)[ \t]+[0-9]{{1,4}}[A-Za-z]?,?[ \t]*\n?[ \t]*"
    rf"(?:{_CAP}[ \t]+){{1,4}}(?i:{_EN_TYPES})(?![\w])",
    re.IGNORECASE,
)
_UNIT = re.compile(
    r",?[ \t]*(?:apt|apartment|suite|ste|unit|flat|fl|floor|#)\.?[ \t]*#?[\w-]{1,6}", re.I
)
# ", Springfield, IL 62704" or "\nNew Jenniferland, CA 12345"; a UK town and postcode.
_US_CITY = re.compile(
    r"(?:,[ \t]*|[ \t]*\n[ \t]*)(?:[A-Z][\w'.-]*[ \t]+){0,3}[A-Z][\w'.-]*,?[ \t]+"
    r"(?:[A-Z]{2}|[A-Z][a-z]+(?:[ \t][A-Z][a-z]+)?)[ \t]+[0-9]{5}(?:-[0-9]{4})?\b"
)
_UK_CITY = re.compile(
    r"(?:,[ \t]*|[ \t]*\n[ \t]*)(?:[A-Z][\w'.-]*[ \t]+){0,3}[A-Z][\w'.-]*,?[ \t]*\n?[ \t]*"
    r"[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}\b"
)
_DE = re.compile(
    r"(?<![\w-])(?:[A-ZÄÖÜ][\wäöüß.-]*[ \t-])?[A-ZÄÖÜ][\wäöüß-]*"
    r"(?i:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer|chaussee|steig|pfad)"
    r"[ \t]+[0-9]{1,4}(?:[ \t]?[a-z])?(?:[/-][0-9]{1,3})?(?![\w])"
)
_FR = re.compile(
    r"(?<![\w.,/-])[0-9]{1,4}(?:[ \t]?(?:bis|ter))?,?[ \t]+"
    r"(?:rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai|route|cours|square|"
    r"passage|rond-point|faubourg|voie)"
    r"(?:[ \t]+(?:de|du|des|la|le|l'|d'|[A-ZÀ-Ý][\w'\u2019-]*)){1,6}"
)
_POSTAL_CITY = re.compile(
    r",?[ \t]*\n?[ \t]*(?:[A-Z]-)?[0-9]{5}[ \t]+"
    r"[A-ZÀ-ÝÄÖÜ][\wäöüßà-ÿ'-]*(?:[ \t-][A-ZÀ-Ý][\wà-ÿ'-]*){0,2}"
)


@functools.cache
def _usaddress() -> Any:
    import usaddress  # the CRF model loads with the module (a few ms)

    return usaddress


def warm() -> None:
    _usaddress().tag("1 Main St")


def _street(candidate: str) -> bool:
    """usaddress reads a house number and a street name in it."""
    try:
        tags, kind = _usaddress().tag(candidate)
    except Exception:  # usaddress raises RepeatedLabelError on muddled input
        return False
    return kind == "Street Address" and "AddressNumber" in tags and "StreetName" in tags


def _extend(text: str, end: int, tails: tuple[re.Pattern[str], ...]) -> int:
    """The end after an optional unit and the first city/postcode tail that follows."""
    unit = _UNIT.match(text, end)
    if unit is not None:
        end = unit.end()
    for tail in tails:
        more = tail.match(text, end)
        if more is not None:
            return more.end()
    return end


def find(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, evidence) of each street address."""
    for m in _EN.finditer(text):
        if _street(m.group(0)):
            yield m.start(), _extend(text, m.end(), (_US_CITY, _UK_CITY)), "street (usaddress)"
    for m in _UK_FLAT.finditer(text):
        yield m.start(), _extend(text, m.end(), (_UK_CITY, _US_CITY)), "flat and street"
    for m in _DE.finditer(text):
        yield m.start(), _extend(text, m.end(), (_POSTAL_CITY,)), "German street and number"
    for m in _FR.finditer(text):
        yield m.start(), _extend(text, m.end(), (_POSTAL_CITY,)), "French street and number"
