"""/v1 refuses what OpenAI refuses (issue 19.10): HTTP 400 in OpenAI's envelope, `param`
naming the field; valid edge cases and unknown fields still pass."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from posturio.platform.inputs import MAX_JSON_DEPTH

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
USER = [{"role": "user", "content": "hello"}]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": USER, **fields}


def embed(**fields: Any) -> dict[str, Any]:
    return {"model": "text-embedding-local", "input": "hello", **fields}


# (endpoint, body, the field `param` must name)
REFUSED = [
    (CHAT, chat(temperature="hot"), "temperature"),
    (CHAT, chat(temperature=3), "temperature"),
    (CHAT, chat(temperature=-1), "temperature"),
    (CHAT, chat(temperature=[1]), "temperature"),
    (CHAT, chat(top_p=2), "top_p"),
    (CHAT, chat(top_p=-0.1), "top_p"),
    (CHAT, chat(top_p="all"), "top_p"),
    (CHAT, chat(frequency_penalty=3), "frequency_penalty"),
    (CHAT, chat(frequency_penalty=-2.5), "frequency_penalty"),
    (CHAT, chat(presence_penalty=2.1), "presence_penalty"),
    (CHAT, chat(presence_penalty=-3), "presence_penalty"),
    (CHAT, chat(presence_penalty="high"), "presence_penalty"),
    (CHAT, chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (CHAT, chat(stop=1), "stop"),
    (CHAT, chat(stop=[1]), "stop"),
    (CHAT, chat(response_format="json"), "response_format"),
    (CHAT, chat(response_format={"type": "xml"}), "response_format"),
    (CHAT, chat(response_format={}), "response_format"),
    (CHAT, chat(response_format={"type": "json_schema"}), "response_format"),
    (CHAT, chat(response_format={"type": "json_schema", "json_schema": {}}), "response_format"),
    (CHAT, chat(messages=[*USER, {"role": "tool", "content": "42"}]), "messages[1]"),
    (CHAT, chat(messages=[{"role": "wizard", "content": "hi"}]), "messages[0]"),
    (CHAT, chat(messages=[{"content": "hi"}]), "messages[0]"),
    (CHAT, chat(messages=[]), "messages"),
    (CHAT, chat(n=0), "n"),
    (CHAT, chat(n=-1), "n"),
    (CHAT, chat(max_tokens=0), "max_tokens"),
    (CHAT, chat(max_tokens=-5), "max_tokens"),
    (CHAT, chat(max_tokens="10"), "max_tokens"),
    (CHAT, chat(max_completion_tokens=0), "max_completion_tokens"),
    (CHAT, chat(logit_bias={"50256": 101}), "logit_bias"),
    (CHAT, chat(logit_bias={"50256": -101}), "logit_bias"),
    (CHAT, chat(logit_bias="none"), "logit_bias"),
    (CHAT, chat(seed=1.5), "seed"),
    (CHAT, chat(seed="42"), "seed"),
    (CHAT, chat(top_logprobs=21), "top_logprobs"),
    (CHAT, chat(logprobs="yes"), "logprobs"),
    (EMBEDDINGS, embed(input=""), "input"),
    (EMBEDDINGS, embed(input=[]), "input"),
    (EMBEDDINGS, embed(dimensions=0), "dimensions"),
    (EMBEDDINGS, embed(dimensions=-1), "dimensions"),
    (EMBEDDINGS, embed(dimensions="3"), "dimensions"),
    (EMBEDDINGS, embed(encoding_format="int8"), "encoding_format"),
    (EMBEDDINGS, {"model": "text-embedding-local"}, None),  # no input at all
]

ACCEPTED = [
    (CHAT, chat(temperature=0)),
    (CHAT, chat(temperature=2)),
    (CHAT, chat(temperature=1, top_p=1, frequency_penalty=-2, presence_penalty=2)),
    (CHAT, chat(stop="END")),
    (CHAT, chat(stop=["a", "b", "c", "d"])),
    (CHAT, chat(n=1, max_tokens=1, max_completion_tokens=16, seed=7)),
    (CHAT, chat(logit_bias={"50256": -100, "11": 100}, logprobs=True, top_logprobs=0)),
    (CHAT, chat(response_format={"type": "json_object"})),
    (
        CHAT,
        chat(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}),
    ),
    (
        CHAT,
        chat(
            messages=[
                *USER,
                {"role": "assistant", "content": None, "tool_calls": []},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            ]
        ),
    ),
    (CHAT, chat(x_vendor_field={"kept": True}, metadata={"a": "b"})),  # unknown fields pass
    (EMBEDDINGS, embed(input=["a", "b"], encoding_format="base64")),
    (EMBEDDINGS, embed(encoding_format="float", x_vendor_field=1)),
]


@pytest.fixture(scope="module")
async def http(server, sessionmaker):
    from tests.conftest import build_tenant

    tenant = await build_tenant(sessionmaker)
    headers = {"Authorization": f"Bearer {tenant.gateway_key}"}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=30) as client:
        yield client


@pytest.mark.parametrize(("endpoint", "body", "param"), REFUSED)
async def test_refused_like_openai(http, endpoint, body, param):
    r = await http.post(endpoint, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is None:
        return
    assert error["param"] == param or error["param"].startswith((f"{param}.", f"{param}[")), error
    assert error["param"].split("[")[0].split(".")[0] in error["message"]


@pytest.mark.parametrize(("endpoint", "body"), ACCEPTED)
async def test_valid_edge_cases_pass(http, endpoint, body):
    r = await http.post(endpoint, json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
async def test_deeply_nested_body_is_400(http, depth):
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    body = b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}], "x": '
    r = await http.post(
        CHAT, content=body + nested + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json"
