"""Labelled prompts for the personal-data tier (person names, street addresses, dates of
birth), written to bench/data/pii_dev.json and bench/data/pii_heldout.json.

Two sides made by different generators, so that the held-out side measures formats the
detectors were not tuned on:
- dev: Faker's en_US locale, template set A (the tier was tuned on it);
- held out: Faker's en_GB, de_DE and fr_FR locales, template set B (other wording, other
  cues, other date and address shapes), never looked at while tuning.
Each side has positives (one to three labelled values per prompt) and negatives: clean
business text and hard negatives (capitalised product and place names, companies,
deadlines and release dates, numbered lists next to street-like words).

Run: .venv/bin/python -m bench.pii_data   (deterministic: fixed seeds)"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

from faker import Faker

DATA = Path(__file__).resolve().parent / "data"
Sample = dict[str, object]


class Doc:
    """Text built from pieces; a labelled piece records its span."""

    def __init__(self) -> None:
        self.text = ""
        self.labels: list[dict[str, object]] = []

    def add(self, piece: str, category: str | None = None) -> Doc:
        if category is not None:
            self.labels.append(
                {"start": len(self.text), "end": len(self.text) + len(piece), "category": category}
            )
        self.text += piece
        return self


def fill(template: str, values: dict[str, tuple[str, str | None]]) -> Doc:
    """`template` with {slot}s replaced; a slot's category (or None) labels its span."""
    doc = Doc()
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        doc.add(literal)
        if field is not None:
            value, category = values[field]
            doc.add(value, category)
    return doc


def _dob(fake: Faker, style: int) -> str:
    d = fake.date_of_birth(minimum_age=18, maximum_age=90)
    return [
        d.isoformat(),
        d.strftime("%m/%d/%Y"),
        d.strftime("%B %-d, %Y"),
        d.strftime("%-d %B %Y"),
        d.strftime("%d.%m.%Y"),
        d.strftime("%d/%m/%Y"),
    ][style % 6]


def _address(fake: Faker) -> str:
    return str(fake.address()).replace("\n", ", ")


# --------------------------------------------------------------------------- template set A

A_POSITIVE = [
    "Hi, my name is {name} and I need help updating my account.",
    "Dear {name},\n\nThank you for your order. It will ship to {address}.",
    "Patient: {name}\nDOB: {dob}\nComplaint: recurring headaches",
    "Please draft a reply to {name} about the delayed refund.",
    "Customer: {name}, born {dob}, lives at {address}. Summarise the claim.",
    "Update the shipping address to {street} for order 1182.",
    "Can you check whether {name} is eligible? Date of birth: {dob}.",
    "Send the contract to {address} by Friday.",
    "Thanks for the call!\n\nBest regards,\n{name}",
    "Mr. {last} asked us to move the meeting to Tuesday.",
    "Employee: {name}\nAddress: {address}\nStart date: 2024-03-01",
    "Write a birthday message for {first}, birthday {dob}.",
]
A_NEGATIVE = [
    "Summarise the Q3 report from {company} and list the risks.",
    "The release is planned for {date}; the deadline for feedback is {date2}.",
    "Compare Machine Learning Engineer and Data Scientist roles at {company}.",
    "We moved the Kubernetes Cluster to the New York region last week.",
    "Book a table for 4 people near {city} for Thursday.",
    "Write unit tests for the PaymentService class and the OrderRepository.",
    "List 3 Street Fighter games and 5 Park Rangers series.",
    "Our office hours changed on {date}; please update the FAQ.",
    "Explain the difference between Grace Period and Late Fee in the Terms.",
    "Draft a post about Customer Success at {company} for LinkedIn.",
]

# --------------------------------------------------------------------------- template set B

B_POSITIVE = [
    "I'm {name}, I'd like to change my delivery address to {address}.",
    "Kunde: {name}\nGeburtsdatum: {dob}\nAnschrift: {address}",
    "Bonjour, je m'appelle {name}, né le {dob}. Mon adresse: {address}.",
    "Attn: {name}\nRe: your subscription\nPlease confirm your details.",
    "Applicant {name} (date of birth {dob}) currently resides at {address}.",
    "Please forward this to {name} and cc {name2}.",
    "Sincerely,\n{name}\n{address}",
    "Dr. {last} will see the patient, D.O.B. {dob}, on Monday.",
    "The parcel for {name} was returned from {street}.",
    "Hello {first}, thanks for reaching out about the invoice.",
    "Tenant: {name}, flat at {address}, rent overdue since March.",
    "Our records show {name} was born on {dob}.",
]
B_NEGATIVE = [
    "Translate the {company} press release into English.",
    "The sprint ends on {date}; retro on {date2}.",
    "Describe the Great Barrier Reef and the Golden Gate Bridge in two sentences.",
    "Give me 10 Downing-style titles for a blog about Product Marketing.",
    "Our team in {city} uses Visual Studio Code and Google Cloud Platform.",
    "Version 3 Update notes: Dark Mode, Quick Search, Smart Folders.",
    "Rank the top 5 Premier League clubs by revenue in {year}.",
    "Explain how Apple Pay and Google Wallet tokenise cards.",
    "Write a haiku about Autumn Leaves and Winter Light.",
    "Schedule the board meeting for {date} at {company} headquarters.",
]


def _values(fake: Faker, rnd: random.Random, style: int) -> dict[str, tuple[str, str | None]]:
    first, last = fake.first_name(), fake.last_name()
    return {
        "name": (f"{first} {last}", "person_name"),
        "name2": (fake.name_nonbinary() if rnd.random() < 0.3 else fake.name(), "person_name"),
        "first": (first, "person_name"),
        "last": (last, "person_name"),
        "address": (_address(fake), "street_address"),
        "street": (str(fake.street_address()), "street_address"),
        "dob": (_dob(fake, style), "date_of_birth"),
        "company": (str(fake.company()), None),
        "city": (str(fake.city()), None),
        "date": (fake.date_between("-2y", "+1y").strftime("%B %-d, %Y"), None),
        "date2": (fake.date_between("-2y", "+1y").isoformat(), None),
        "year": (str(rnd.randint(2015, 2025)), None),
    }


def side(
    name: str,
    locales: list[str],
    positives: list[str],
    negatives: list[str],
    n: int,
    seed: int,
) -> list[Sample]:
    rnd = random.Random(seed)
    fakers = []
    for i, locale in enumerate(locales):
        fake = Faker(locale)
        fake.seed_instance(seed + i)
        fakers.append(fake)
    out: list[Sample] = []
    make: list[tuple[str, list[str]]] = [("positive", positives), ("negative", negatives)]
    for i in range(n):
        kind, templates = make[i % 3 == 2]  # two positives for each negative
        fake = fakers[i % len(fakers)]
        doc = fill(templates[rnd.randrange(len(templates))], _values(fake, rnd, i))
        # Names the generator writes with a name in a "name" slot but the labels say
        # nothing of (the company slot may hold "Smith, Jones and Brown"): not labelled.
        out.append({"id": f"{name}-{i}", "kind": kind, "text": doc.text, "labels": doc.labels})
    return out


def build() -> dict[str, list[Sample]]:
    return {
        "pii_dev": side("dev", ["en_US"], A_POSITIVE, A_NEGATIVE, 600, seed=1),
        "pii_heldout": side(
            "held", ["en_GB", "de_DE", "fr_FR"], B_POSITIVE, B_NEGATIVE, 600, seed=2
        ),
    }


def load(name: str) -> list[Sample]:
    data: list[Sample] = json.loads((DATA / f"{name}.json").read_text())
    return data


def main() -> None:
    for name, samples in build().items():
        (DATA / f"{name}.json").write_text(json.dumps(samples, ensure_ascii=False, indent=0))
        print(f"{name}: {len(samples)} prompts")


if __name__ == "__main__":
    main()
