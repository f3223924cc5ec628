"""The personal-data tier (names, street addresses, dates of birth), off unless a policy
names it, and the policy's phone region."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from posturio.gateway.inspection import addresses, birthdates, names
from posturio.gateway.inspection.engine import Inspector
from posturio.gateway.policy.evaluate import CompiledPolicy, Context
from posturio.gateway.policy.schema import DEFAULT_POLICY, decode
from tests.gateway.helpers import deployment, put_route, sdk

NAME = "Margaret Holloway"
STREET = "1742 Evergreen Terrace, Springfield, IL 62704"
PROMPT = (
    f"Please draft a reply to {NAME} about the delayed refund. She was born on "
    f"14 March 1961 and the cheque goes to {STREET}."
)
TIER_RULE = {
    "id": "redact-people",
    "action": "redact",
    "match": {"categories": ["person_name", "street_address", "date_of_birth"]},
}


def found(text: str) -> list[tuple[str, str]]:
    return [
        (f.category, text[f.start : f.end])
        for f in Inspector(b"k").inspect(text, personal=True)
        if f.category in ("person_name", "street_address", "date_of_birth")
    ]


# --------------------------------------------------------------------------- detectors


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Dear Günther Schmidt,\nthe invoice is attached.", "Günther Schmidt"),
        ("Patient: Hans-Peter Müller, 54, chest pain", "Hans-Peter Müller"),
        ("Thanks for the call!\n\nKind regards,\nAmélie Dubois", "Amélie Dubois"),
        ("Mr. O'Brien asked us to move the meeting.", "O'Brien"),
        ("Can you ask Mary Johnson about the contract?", "Mary Johnson"),
        ("Summarise the notes Jennifer Lawson sent yesterday.", "Jennifer Lawson"),
    ],
)
def test_names_in_context_are_found(text: str, name: str) -> None:
    assert ("person_name", name) in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "Describe the Golden Gate Bridge and the Great Barrier Reef.",
        "We moved the Kubernetes Cluster to the New York region.",
        "Compare Machine Learning Engineer and Data Scientist roles.",
        "Will Smith-style intros are overdone; Grace Period ends Monday.",
        "Send it to Product Marketing and cc Customer Support.",
        "Your renewal for Tyrell Analytics is due on 2024-02-10.",
        "Invoice from Wayne Freight, signed by Acme Corp.",
    ],
)
def test_capitalised_things_are_not_names(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (f"ship to {STREET} please", STREET),
        ("Adresse: Hauptstraße 12, 10115 Berlin", "Hauptstraße 12, 10115 Berlin"),
        ("Mon adresse: 54, rue Maurice Bertrand, 75002 Paris", "54, rue Maurice Bertrand, 75002 Paris"),  # noqa: E501
        ("meet at 10 Downing Street, London SW1A 2AA", "10 Downing Street, London SW1A 2AA"),
        ("Flat 8, Bryan Highway, Lake Bernardtown, WF8 2PS", "Flat 8, Bryan Highway, Lake Bernardtown, WF8 2PS"),  # noqa: E501
    ],
)  # fmt: skip
def test_street_addresses_are_found_with_city_and_postcode(text: str, address: str) -> None:
    assert [("street_address", address)] == found(text)


def test_numbers_next_to_street_words_are_not_addresses() -> None:
    for text in ("We have 3 park rangers.", "12 Monkeys is a film.", "List 3 Street Fighter games"):
        assert found(text) == [], text


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("DOB: 1985-03-12", "1985-03-12"),
        ("born on March 3, 1985 in Ohio", "March 3, 1985"),
        ("Geburtsdatum: 03.12.1985", "03.12.1985"),
        ("née le 3 mars 1985", "3 mars 1985"),
        ("date of birth 12/31/1990", "12/31/1990"),
    ],
)
def test_dates_after_a_birth_cue_are_found(text: str, date: str) -> None:
    start = text.index(date)
    assert [(s, e) for s, e, _ in birthdates.find(text)] == [(start, start + len(date))]


@pytest.mark.parametrize(
    "text",
    ["deadline 2024-05-01", "date of birth 02/30/1990", "birthday: 31 Dec 2999", "born 1985"],
)
def test_other_dates_and_impossible_dates_are_not_birth_dates(text: str) -> None:
    assert list(birthdates.find(text)) == []


def test_tier_findings_carry_no_raw_values() -> None:
    findings = Inspector(b"k").inspect(PROMPT, personal=True)
    assert {f.category for f in findings} == {"person_name", "street_address", "date_of_birth"}
    for f in findings:
        shown = str(f.as_dict())
        assert NAME not in shown and "Evergreen" not in shown and "1961" not in shown


def test_inspector_without_the_tier_finds_none_of_it() -> None:
    assert Inspector(b"k").inspect(PROMPT) == []
    assert list(names.find("")) == [] and list(addresses.find("")) == []


def test_only_a_rule_naming_the_tier_switches_it_on() -> None:
    ctx = Context(None, frozenset(), "echo")
    default = CompiledPolicy(None, 0, DEFAULT_POLICY, b"k")
    assert not default.personal_tier(ctx)
    scoped = decode({"rules": [{**TIER_RULE, "match": {**TIER_RULE["match"], "models": ["ext"]}}]})
    policy = CompiledPolicy(None, 1, scoped, b"k")
    assert not policy.personal_tier(ctx)
    assert policy.personal_tier(Context(None, frozenset(), "ext"))
    by_detector = decode(
        {"rules": [{"id": "r", "action": "redact", "match": {"detectors": ["pii"]}}]}
    )
    assert not CompiledPolicy(None, 1, by_detector, b"k").personal_tier(
        Context(None, frozenset(), "ext")
    )


# --------------------------------------------------------------------------- through /v1


@pytest.fixture
async def tenant(make_tenant, server):
    return await make_tenant()


async def put_policy(server: str, tenant: Any, document: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        return await http.put("/api/policy", json={"document": document})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def test_a_redact_rule_on_names_redacts_before_the_upstream(server, fake, tenant):
    alias, model = f"ext-{uuid.uuid4().hex[:6]}", f"m-{uuid.uuid4().hex[:6]}"
    await put_route(server, tenant, alias, [deployment("cloud", model, fake.base_url)])
    scoped = {**TIER_RULE, "match": {**TIER_RULE["match"], "models": [alias]}}
    r = await put_policy(server, tenant, {"rules": [scoped]})
    assert r.status_code == 200, r.text
    raw = await sdk(server, tenant.gateway_key).chat.completions.with_raw_response.create(
        model=alias, messages=user(PROMPT)
    )
    assert raw.headers["x-posturio-decision"] == "redact"
    assert raw.headers["x-posturio-findings"] == ("date_of_birth=1,person_name=1,street_address=1")
    sent = fake.calls(model)[-1]["body"]["messages"][0]["content"]
    assert sent == (
        "Please draft a reply to [PERSON_NAME_1] about the delayed refund. She was born on "
        "[DATE_OF_BIRTH_1] and the cheque goes to [STREET_ADDRESS_1]."
    )
    # The rule names one model: the built-in echo model gets the prompt as written.
    echoed = await sdk(server, tenant.gateway_key).chat.completions.create(
        model="echo", messages=user(PROMPT)
    )
    assert echoed.choices[0].message.content == PROMPT


async def test_the_default_policy_does_not_look_for_names(server, tenant):
    raw = await sdk(server, tenant.gateway_key).chat.completions.with_raw_response.create(
        model="echo", messages=user(PROMPT)
    )
    assert raw.headers["x-posturio-decision"] == "allow"
    assert raw.headers["x-posturio-findings"] == "none"
    assert raw.parse().choices[0].message.content == PROMPT


# --------------------------------------------------------------------------- phone region


def test_phone_region_is_read_first() -> None:
    spanish = "phone: 912 345 678"
    redact_pii = {"id": "pii", "action": "redact", "match": {"detectors": ["pii"]}}
    default = CompiledPolicy(None, 0, decode({"rules": [redact_pii]}), b"k")
    spain = CompiledPolicy(None, 1, decode({"rules": [redact_pii], "phone_region": "ES"}), b"k")
    assert default.inspector.inspect(spanish) == []
    [finding] = spain.inspector.inspect(spanish)
    assert finding.evidence == "valid ES number (libphonenumber)"
    german = "Tel: 030 12345678"
    germany = CompiledPolicy(None, 1, decode({"rules": [redact_pii], "phone_region": "DE"}), b"k")
    assert [f.evidence for f in default.inspector.inspect(german)] == [
        "valid GB number (libphonenumber)"
    ]
    assert [f.evidence for f in germany.inspector.inspect(german)] == [
        "valid DE number (libphonenumber)"
    ]


async def test_phone_region_in_a_policy_redacts_national_numbers(server, tenant):
    client = sdk(server, tenant.gateway_key)
    prompt = "Call the client back on 912 345 678 today"
    before = await client.chat.completions.create(model="echo", messages=user(prompt))
    assert before.choices[0].message.content == prompt
    rules = [{"id": "pii", "action": "redact", "match": {"detectors": ["pii"]}}]
    r = await put_policy(server, tenant, {"rules": rules, "phone_region": "ES"})
    assert r.status_code == 200, r.text
    after = await client.chat.completions.create(model="echo", messages=user(prompt))
    assert after.choices[0].message.content == "Call the client back on [PHONE_1] today"


@pytest.mark.parametrize("region", ["XX", "de", "Germany"])
async def test_unknown_phone_regions_are_refused(server, tenant, region):
    r = await put_policy(server, tenant, {"rules": [], "phone_region": region})
    assert r.status_code == 400 and "phone_region" in r.text
