"""The output guard on streamed answers (issue 19, item 5): with a redacting output rule, a
streamed answer must reach the client exactly as the same answer does without streaming,
whatever the chunk size, and never with a secret's characters in it. The guard is driven
directly with the upstream's SSE events; one test goes through the running gateway."""

from __future__ import annotations

import base64
import json
import random
import string
from typing import Any

import httpx
import pytest

from posturio.gateway.inspection.rules import RULES
from posturio.gateway.inspection.segments import Segment
from posturio.gateway.policy.evaluate import CompiledPolicy, Context, Labels, redact
from posturio.gateway.policy.schema import Match, PolicyDoc, PolicyRule
from posturio.gateway.policy.stream import HOLD, StreamGuard
from tests.gateway.fake_upstream import CHUNKED
from tests.gateway.helpers import deployment, put_route, sdk
from tests.gateway.test_detection_quality import REAL_SHAPES
from tests.gateway.test_inspection import POSITIVES

rng = random.Random(19)
ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _hex(n: int) -> str:
    return _rand(n, "0123456789abcdef")


ISSUE_ANSWER = (
    "Sure, here are the credentials: AKIAQ3EGRTWXB7NVKP2Z and "
    "aws_secret_access_key=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 for the backup bucket."
)
PEM_BODY = "\n".join(_rand(64, ALNUM + "+/") for _ in range(6))
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"

# One valid value per rule the existing tests do not already carry, each checked below.
MORE = [
    (f"aws_session_token = {_rand(120)}", "aws.session_token"),
    (f"ya29.{_rand(60)}", "google.oauth_token"),
    (f"AC{_hex(32)}:{_hex(32)}", "twilio.account"),
    (f"SK{_hex(32)}", "twilio.api_key"),
    (f"twilio auth token: {_rand(32)}", "twilio.auth_token"),
    (f"shpat_{_hex(32)}", "saas.prefixed_token"),
    (f"dop_v1_{_hex(64)}", "cloud.prefixed_token"),
    (
        "Authorization: Basic " + base64.b64encode(b"deploy:Tq8rV2mxLp9z").decode(),
        "http.basic_auth",
    ),
    (f"Authorization: Bearer {_rand(40)}", "http.bearer_token"),
    ("mysql -u root -pTq8rV2mxLp9z orders", "generic.cli_flag"),
    # Longer than HOLD, spread over lines: held from BEGIN until END arrives.
    (PEM, "private_key"),
    (
        '{"type": "service_account", "project_id": "billing-prod", '
        f'"private_key_id": "{_hex(40)}", "private_key": "{PEM}", '
        '"client_email": "exporter@billing-prod.iam.gserviceaccount.com"}',
        "google.service_account",
    ),
    (ISSUE_ANSWER, "aws.secret_access_key"),
]
SAMPLES = [*POSITIVES, *REAL_SHAPES, *MORE]
SIZES = [1, 2, 3, 7, 16, 64]
AWS = "AKIAQ3EGRTWXB7NVKP2Z"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    doc = PolicyDoc(
        rules=[
            PolicyRule(
                id="redact-out",
                action="redact",
                match=Match(detectors=["secrets", "pii"], direction="output"),
            )
        ]
    )
    return CompiledPolicy(None, 1, doc, b"stream-guard-test-key-0123456789")


CTX = Context(None, frozenset(), "m", direction="output")


def in_prose(sample: str) -> str:
    return f"Of course. {sample}\nThat is all I have; tell me if you need more."


def unstreamed(policy: CompiledPolicy, text: str) -> str:
    """What the same answer becomes without streaming (the pipeline's inspect_output)."""
    body: dict[str, Any] = {"choices": [{"message": {"content": text}}]}
    segment = Segment("choices[0].message.content", text, body["choices"][0]["message"], "content")
    redact([segment], policy.evaluate([segment], CTX), Labels())
    return segment.text


def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return f"data: {json.dumps({'id': 'c', 'choices': [choice]})}\n\n".encode()


def streamed(policy: CompiledPolicy, text: str, size: int) -> str:
    """The text the client receives when the upstream sends `text` in `size` pieces."""
    guard = StreamGuard(policy, CTX)
    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": text[i : i + size]}) for i in range(0, len(text), size)]
    events += [event({}, "stop"), b"data: [DONE]\n\n"]
    received = []
    for out in map(guard.feed, events):
        for part in out.split(b"\n\n"):
            if part.startswith(b"data: {"):
                choices = json.loads(part[6:])["choices"]
                received += [c["delta"].get("content") or "" for c in choices]
    return "".join(received)


def values(policy: CompiledPolicy, text: str) -> list[str]:
    return [
        text[h.finding.start : h.finding.end]
        for h in policy.evaluate([Segment("x", text, {}, "text")], CTX).hits
    ]


def test_every_secret_and_personal_data_rule_has_a_sample(policy):
    found = {
        h.finding.rule
        for sample, _ in SAMPLES
        for h in policy.evaluate([Segment("x", in_prose(sample), {}, "text")], CTX).hits
    }
    assert {r.id for r in RULES} <= found
    for sample, rule in MORE:
        assert rule in {
            h.finding.rule for h in policy.evaluate([Segment("x", sample, {}, "text")], CTX).hits
        }, rule


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("sample", "rule"), SAMPLES, ids=[r for _, r in SAMPLES])
def test_a_streamed_answer_is_redacted_as_the_whole_answer(policy, sample, rule, size):
    text = in_prose(sample)
    expected = unstreamed(policy, text)
    assert expected != text  # something to redact
    received = streamed(policy, text, size)
    assert received == expected
    for value in values(policy, text):
        assert value not in received


def test_the_issue_answer_streams_fully_redacted(policy):
    expected = "Sure, here are the credentials: [CLOUD_CREDENTIAL_1] and [CLOUD_CREDENTIAL_2]"
    assert streamed(policy, ISSUE_ANSWER, 7).startswith(expected)


def test_invisible_characters_inside_a_secret_do_not_hide_it(policy):
    text = "key AKIA\u200bQ3EGRTWXB7NVKP2Z, x\u00b2 and caf\u0065\u0301 stay as written"
    expected = unstreamed(policy, text)
    assert expected == "key [CLOUD_CREDENTIAL_1], x\u00b2 and caf\u0065\u0301 stay as written"
    for size in SIZES:
        assert streamed(policy, text, size) == expected


def test_clean_text_is_released_while_the_stream_goes_on(policy):
    """Held back is the end of the text, not the whole answer."""
    guard = StreamGuard(policy, CTX)
    text = "word " * 200
    out = b"".join(guard.feed(event({"content": text[i : i + 7]})) for i in range(0, 1000, 7))
    released = "".join(
        json.loads(p[6:])["choices"][0]["delta"]["content"]
        for p in out.split(b"\n\n")
        if p.startswith(b"data: {")
    )
    assert text.startswith(released) and len(released) >= len(text) - HOLD - 7


async def test_the_issue_answer_through_the_gateway(server, fake, make_tenant):
    tenant = await make_tenant()
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        document = {
            "rules": [
                {"id": "let-in", "action": "allow", "match": {"detectors": ["secrets"]}},
                {
                    "id": "redact-out",
                    "action": "redact",
                    "match": {"detectors": ["secrets"], "direction": "output"},
                },
            ]
        }
        r = await http.put("/api/policy", json={"document": document})
        assert r.status_code == 200, r.text
    await put_route(server, tenant, "chunky", [deployment("c", f"{CHUNKED}:7", fake.base_url)])
    client = sdk(server, tenant.gateway_key)
    prompt = [{"role": "user", "content": ISSUE_ANSWER}]
    full = (await client.chat.completions.create(model="chunky", messages=prompt)).choices[0]
    stream = await client.chat.completions.create(model="chunky", messages=prompt, stream=True)
    chunks = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert full.message.content == (
        "Sure, here are the credentials: [CLOUD_CREDENTIAL_1] and [CLOUD_CREDENTIAL_2] "
        "for the backup bucket."
    )
    assert "".join(chunks) == full.message.content
    assert "u8Jk2nT4bR9x" not in "".join(chunks)


def streamed_arguments(policy: CompiledPolicy, arguments: str, size: int) -> str:
    """The tool-call arguments the client receives when they stream in `size` pieces."""
    guard = StreamGuard(policy, CTX)
    head = {"index": 0, "id": "call_1", "type": "function"}
    events = [event({"role": "assistant", "content": None})]
    events.append(event({"tool_calls": [{**head, "function": {"name": "run", "arguments": ""}}]}))
    events += [
        event({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + size]}}]})
        for i in range(0, len(arguments), size)
    ]
    events += [event({}, "tool_calls"), b"data: [DONE]\n\n"]
    received = []
    for out in map(guard.feed, events):
        for part in out.split(b"\n\n"):
            if part.startswith(b"data: {"):
                for choice in json.loads(part[6:])["choices"]:
                    for call in choice["delta"].get("tool_calls") or ():
                        received.append(call["function"].get("arguments") or "")
    return "".join(received)


@pytest.mark.parametrize("size", SIZES)
def test_streamed_tool_arguments_are_redacted_as_the_whole_answer(policy, size):
    """A model that puts a secret in a tool call's arguments (a shell command, a file it
    writes): the stream releases exactly what the non-streamed answer would."""
    arguments = json.dumps({"cmd": f"aws configure set aws_access_key_id {AWS} && ls"})
    expected = unstreamed(policy, arguments)
    assert AWS not in expected
    got = streamed_arguments(policy, arguments, size)
    assert got == expected and AWS not in got
    assert json.loads(got)["cmd"].startswith("aws configure set")
