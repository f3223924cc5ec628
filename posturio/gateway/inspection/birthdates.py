"""Dates of birth: a valid calendar date shortly after a cue ("born", "DOB", "date of
birth", "birthday", "geb.", "Geburtsdatum", "né le", "fecha de nacimiento"). A date alone is
not personal data (deadlines, releases, logs); the cue makes it one. Dates are checked with
the standard library: the day exists, the year is between 1900 and this year.

What it misses: a birth date without a cue in front (a "DOB" column header far above a
CSV row, "1985-03-12 (birthday)"), two-digit years, dates written out in words."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

_CUE = re.compile(
    r"\b(?:born(?:[ \t]+(?:on|in))?|d\.?o\.?b\.?|date[ \t]+of[ \t]+birth|birth[ \t]?date|"
    r"birthday|b\.|geb\.|geboren(?:[ \t]+am)?|geburtsdatum|geburtstag|n[ée]e?[ \t]+le|"
    r"date[ \t]+de[ \t]+naissance|fecha[ \t]+de[ \t]+nacimiento|nacid[oa][ \t]+el|"
    r"data[ \t]+di[ \t]+nascita|nato[ \t]+il|nata[ \t]+il)(?!\w)",
    re.IGNORECASE,
)
# Between the cue and the date: a colon, "is", "on", "am", "le", at most 16 characters.
_GAP = re.compile(r"[ \t]*(?:[:=\-\u2013)]|is|was|on|am|le|el|il|of|[ \t])*[ \t]*", re.IGNORECASE)
_MONTHS = {
    **dict.fromkeys(("jan", "january", "januar", "jänner", "janvier", "enero", "gennaio"), 1),
    **dict.fromkeys(("feb", "february", "februar", "février", "fevrier", "febrero"), 2),
    **dict.fromkeys(("mar", "march", "märz", "mär", "maerz", "mars", "marzo"), 3),
    **dict.fromkeys(("apr", "april", "avril", "abril", "aprile"), 4),
    **dict.fromkeys(("may", "mai", "mayo", "maggio"), 5),
    **dict.fromkeys(("jun", "june", "juni", "juin", "junio", "giugno"), 6),
    **dict.fromkeys(("jul", "july", "juli", "juillet", "julio", "luglio"), 7),
    **dict.fromkeys(("aug", "august", "août", "aout", "agosto"), 8),
    **dict.fromkeys(("sep", "sept", "september", "septembre", "septiembre", "settembre"), 9),
    **dict.fromkeys(("oct", "october", "oktober", "okt", "octobre", "octubre", "ottobre"), 10),
    **dict.fromkeys(("nov", "november", "novembre", "noviembre"), 11),
    **dict.fromkeys(
        ("dec", "december", "dezember", "dez", "décembre", "decembre", "diciembre"), 12
    ),
}
_MONTH = r"(?P<mon>[A-Za-zäéû]{3,9})\.?"
_DAY = r"(?P<day>[0-9]{1,2})(?:st|nd|rd|th|er)?\.?"
_YEAR = r"(?P<year>(?:19|20)[0-9]{2})"
_DATES = [
    re.compile(r"(?P<year>(?:19|20)[0-9]{2})-(?P<a>[0-9]{1,2})-(?P<b>[0-9]{1,2})"),
    re.compile(rf"(?P<a>[0-9]{{1,2}})[./-](?P<b>[0-9]{{1,2}})[./-]{_YEAR}"),
    re.compile(rf"{_DAY}[ \t]+(?:of[ \t]+|de[ \t]+)?{_MONTH},?[ \t]+(?:de[ \t]+)?{_YEAR}"),
    re.compile(rf"{_MONTH}[ \t]+{_DAY},?[ \t]+{_YEAR}"),
]


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return False
    return 1900 <= year and date <= dt.date.today()


def _date_at(text: str, pos: int) -> re.Match[str] | None:
    """The valid date that starts at `pos` (both day/month orders tried for 01/02/1990)."""
    for index, pattern in enumerate(_DATES):
        m = pattern.match(text, pos)
        if m is None:
            continue
        year = int(m.group("year"))
        if index == 0:
            ok = _valid(year, int(m.group("a")), int(m.group("b")))
        elif index == 1:
            a, b = int(m.group("a")), int(m.group("b"))
            ok = _valid(year, b, a) or _valid(year, a, b)
        else:
            month = _MONTHS.get(m.group("mon").lower())
            ok = month is not None and _valid(year, month, int(m.group("day")))
        if ok and not text[m.end() : m.end() + 1].isdigit():
            return m
    return None


def find(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, evidence) of each date of birth."""
    for cue in _CUE.finditer(text):
        gap = _GAP.match(text, cue.end())
        pos = gap.end() if gap is not None and gap.end() - cue.end() <= 16 else cue.end()
        date = _date_at(text, pos)
        if date is not None:
            yield date.start(), date.end(), f"date after '{cue.group(0).lower()}'"
