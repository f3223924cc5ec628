"""The personal-data tier: person names, street addresses, dates of birth.

These detectors read words, not formats, so they cost more than the one-pass scan and
are wrong more often (see bench.detection's tier section for precision, recall and
latency). They are off unless a tenant's policy has a rule that names one of their
categories or rule ids (policy.evaluate decides); the default policy never runs them.

Data: `probablepeople` (census name tables) and `usaddress` (a CRF model), both MIT,
datamade, shipped in their PyPI wheels; nothing is downloaded at run time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from posturio.gateway.inspection import addresses, birthdates, names


@dataclass(frozen=True, slots=True)
class PersonalRule:
    id: str
    category: str
    score: float  # below the format detectors': where they overlap, a format wins
    find: Callable[[str], Iterator[tuple[int, int, str]]]  # text -> (start, end, evidence)
    detector: str = "pii"


PERSONAL_RULES: tuple[PersonalRule, ...] = (
    PersonalRule("pii.person_name", "person_name", 0.7, names.find),
    PersonalRule("pii.street_address", "street_address", 0.75, addresses.find),
    PersonalRule("pii.date_of_birth", "date_of_birth", 0.8, birthdates.find),
)
CATEGORIES = frozenset(r.category for r in PERSONAL_RULES)


def warm() -> None:
    """Load the name tables and the address model now (about half a second, once per
    process) instead of on the first prompt."""
    names.warm()
    addresses.warm()
