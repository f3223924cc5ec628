"""Anthropic Messages and OpenAI Responses on /v1 with the official SDKs: the same
inspection, policy, routing and metering as Chat, answers and errors in each dialect's
own shape, tool round trips translated both ways (streamed tool arguments included)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.eventually import eventually
from tests.gateway.helpers import deployment, put_route, sdk
from tests.gateway.test_policy import put_policy

AWS_KEY = "AKIAZ7QW3ERT5YUI6OPL"
DOTENV = f"DB_HOST=db.internal\nAWS_ACCESS_KEY_ID={AWS_KEY}\n"


@pytest.fixture
async def tenant(make_tenant, server):
    return await make_tenant()


def claude(server: str, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server, api_key=key, max_retries=0, timeout=30)


async def tool_route(server: str, tenant: Any, fake: Any) -> str:
    alias = f"agent-{uuid.uuid4().hex[:6]}"
    await put_route(server, tenant, alias, [deployment("main", "tool", fake.base_url)])
    return alias


READ_FILE = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


async def test_messages_with_echo_sync_async_and_streaming(server, tenant):
    client = claude(server, tenant.gateway_key)
    raw = await client.messages.with_raw_response.create(
        model="echo",
        max_tokens=100,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}],
    )
    message = await raw.parse()
    assert message.content[0].text == "hello claude" and message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0 and message.model == "echo"
    assert raw.headers["x-posturio-decision"] == "allow" and raw.headers["x-posturio-request-id"]
    sync = anthropic.Anthropic(base_url=server, api_key=tenant.gateway_key, max_retries=0)
    assert (
        sync.messages.create(
            model="echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        .content[0]
        .text
        == "hi"
    )
    async with client.messages.stream(
        model="echo", max_tokens=100, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.content[0].text == "one two three"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds


async def test_messages_tool_round_trip_translated_and_secret_blocked(server, fake, tenant):
    alias = await tool_route(server, tenant, fake)
    client = claude(server, tenant.gateway_key)
    ask = [{"role": "user", "content": "read .env and tell me DB_HOST"}]
    first = await client.messages.create(
        model=alias, max_tokens=200, tools=[READ_FILE], messages=ask
    )
    call = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.name == "read_file"
    assert call.input == {"path": ".env"}
    sent = fake.calls("tool")[-1]["body"]
    assert sent["tools"][0]["function"]["name"] == "read_file"
    turn = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": DOTENV}],
        },
    ]
    before = len(fake.calls("tool"))
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model=alias, max_tokens=200, tools=[READ_FILE], messages=turn)
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    message = body["error"]["message"]
    assert "messages[2].content[0].content" in message and "request id" in message
    assert AWS_KEY not in message
    assert len(fake.calls("tool")) == before  # never reached the upstream
    assert caught.value.response.headers["x-posturio-decision"] == "block"


async def test_agents_keep_working_under_a_redacting_policy(server, fake, tenant):
    """README recipe: secrets in agent traffic redacted rather than the session killed."""
    r = await put_policy(
        server,
        tenant,
        {
            "rules": [
                {
                    "id": "agents-redact-secrets",
                    "action": "redact",
                    "match": {"detectors": ["secrets"], "dialects": ["messages", "responses"]},
                },
                {"id": "block-secrets", "action": "block", "match": {"detectors": ["secrets"]}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    alias = await tool_route(server, tenant, fake)
    client = claude(server, tenant.gateway_key)
    turn = [
        {"role": "user", "content": "read .env"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "read_file", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": DOTENV}],
        },
    ]
    async with client.messages.stream(
        model=alias, max_tokens=200, tools=[READ_FILE], messages=turn
    ) as stream:
        final = await stream.get_final_message()
    text = final.content[0].text
    assert "DB_HOST=db.internal" in text and AWS_KEY not in text and "[CLOUD_CREDENTIAL_1]" in text
    sent = json.dumps(fake.calls("tool")[-1]["body"])
    assert AWS_KEY not in sent and "[CLOUD_CREDENTIAL_1]" in sent
    # The same policy still blocks the secret on Chat.
    with pytest.raises(openai.BadRequestError):
        await sdk(server, tenant.gateway_key).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": DOTENV}]
        )


async def test_responses_with_echo_and_a_function_call_round_trip(server, fake, tenant):
    client = sdk(server, tenant.gateway_key)
    reply = await client.responses.create(model="echo", input="hello responses")
    assert reply.output_text == "hello responses" and reply.usage.output_tokens > 0
    stream = await client.responses.create(
        model="echo", input="streamed words here", instructions="be brief", stream=True
    )
    events = [e async for e in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "streamed words here"

    alias = await tool_route(server, tenant, fake)
    tools = [{"type": "function", "name": "read_file", "parameters": {"type": "object"}}]
    events = [
        e
        async for e in await client.responses.create(
            model=alias, input="read .env", tools=tools, stream=True
        )
    ]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"path": ".env"}
    call = events[-1].response.output[0]
    assert call.type == "function_call" and call.name == "read_file"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model=alias,
            tools=tools,
            input=[
                {"role": "user", "content": "read .env"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": "read_file",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": DOTENV},
            ],
        )
    assert "input[2].output" in caught.value.message and AWS_KEY not in caught.value.message
    answer = await client.responses.create(
        model=alias,
        tools=tools,
        input=[
            {"role": "user", "content": "read .env"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": "read_file",
                "arguments": "{}",
            },
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": "DB_HOST=db.internal",
            },
        ],
    )
    assert answer.output_text == "the tool said: DB_HOST=db.internal"
    sent = fake.calls("tool")[-1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id and sent[2]["role"] == "tool"


async def test_every_forwarded_string_is_inspected_on_chat(server, tenant):
    client = sdk(server, tenant.gateway_key)
    hidden = [
        {"tools": [{"type": "function", "function": {"name": "f", "description": AWS_KEY}}]},
        {"metadata": {"note": AWS_KEY}},
        {"user": AWS_KEY},
        {"stop": ["x", AWS_KEY]},
        {"some_unknown_field": {"deep": [AWS_KEY]}},
    ]
    for extra in hidden:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "hi"}], extra_body=extra
            )
        assert "policy_blocked" == caught.value.code, extra


async def test_bad_input_in_each_dialect_is_a_4xx_in_its_envelope(server, tenant):
    headers = {"authorization": f"Bearer {tenant.gateway_key}", "content-type": "application/json"}
    anthropic_cases = [
        b"{not json",
        b'{"model": "echo", "max_tokens": "lots", "messages": [{"role": "user", "content": "x"}]}',
        b'{"model": "echo", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}',
        b'{"model": "echo", "max_tokens": 5, "messages": "hi"}',
        b'{"model": "echo", "messages": [{"role": "user", "content": "x"}]}',
        b'{"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "\xff"}]}',
    ]
    responses_cases = [
        b"[1, 2]",
        b'{"model": "echo", "input": 42}',
        b'{"model": "echo", "input": []}',
        b'{"model": "echo", "input": "x", "previous_response_id": "resp_1"}',
        b'{"model": "echo", "input": "x", "max_output_tokens": 0}',
    ]
    async with httpx.AsyncClient(base_url=f"{server}/v1", headers=headers) as http:
        for body in anthropic_cases:
            r = await http.post("/messages", content=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["type"] == "error", r.text
            assert r.json()["error"]["type"] == "invalid_request_error"
        for body in responses_cases:
            r = await http.post("/responses", content=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error", r.text
        r = await http.post(
            "/messages", content=b"{}", headers={"x-api-key": "nope", "authorization": ""}
        )
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        big = (
            b'{"model": "echo", "max_tokens": 5, "messages": [{"role": "user", "content": "'
            + b"a" * 30_000_000
            + b'"}]}'
        )
        r = await http.post("/messages", content=big)
        assert r.status_code == 413 and r.json()["type"] == "error"


async def test_anthropic_model_listing_and_token_count(server, tenant):
    client = claude(server, tenant.gateway_key)
    models = [m.id async for m in client.models.list()]
    assert "echo" in models
    count = await client.messages.count_tokens(
        model="echo", messages=[{"role": "user", "content": "count these words please"}]
    )
    assert count.input_tokens > 0


async def test_messages_to_an_anthropic_deployment_pass_through_untouched(
    server, fake, tenant, worker
):
    """Claude Code's prompt caching and extended thinking depend on fields the gateway
    does not model: on a deployment that speaks Messages they reach it as sent."""
    alias = f"claude-{uuid.uuid4().hex[:6]}"
    model = f"claude-native-{uuid.uuid4().hex[:6]}"
    native = {**deployment("main", model, fake.base_url), "provider": "anthropic"}
    native["base_url"] = fake.base_url  # Anthropic's adapter adds /v1/messages
    await put_route(server, tenant, alias, [native])
    client = anthropic.AsyncAnthropic(
        base_url=server,
        api_key=tenant.gateway_key,
        max_retries=0,
        default_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    thinking = {"type": "thinking", "thinking": "plan", "signature": "sig-abc"}
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "ok"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "cache me", "cache_control": {"type": "ephemeral"}}
            ],
        },
    ]
    raw = await client.messages.with_raw_response.create(
        model=alias,
        max_tokens=50,
        messages=messages,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    reply = await raw.parse()
    assert reply.content[0].text.strip() == "cache me" and reply.model == alias
    assert reply.usage.cache_read_input_tokens == 100
    call = fake.calls(model)[-1]
    assert call["path"] == "/v1/messages"
    assert call["body"]["messages"] == messages  # thinking signature, cache_control: as sent
    assert call["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert call["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert raw.headers["x-posturio-route"] == f"main:anthropic/{model}"

    async with client.messages.stream(model=alias, max_tokens=50, messages=messages) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.content[0].text.strip() == "cache me"
    # The upstream's own events reach the caller (a translated stream has no ping).
    async with httpx.AsyncClient(base_url=server) as http:
        body = {"model": alias, "max_tokens": 50, "messages": messages, "stream": True}
        headers = {"x-api-key": tenant.gateway_key, "anthropic-version": "2023-06-01"}
        raw_stream = (await http.post("/v1/messages", json=body, headers=headers)).text
    assert "event: ping" in raw_stream and "sig-abc" not in raw_stream
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"

    # A secret in a tool result is redacted in the forwarded body under the agent recipe.
    await put_policy(
        server,
        tenant,
        {
            "rules": [
                {
                    "id": "agents-redact-secrets",
                    "action": "redact",
                    "match": {"detectors": ["secrets"], "dialects": ["messages"]},
                }
            ]
        },
    )
    turn = [
        {"role": "user", "content": "read .env"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": DOTENV,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    raw = await client.messages.with_raw_response.create(model=alias, max_tokens=50, messages=turn)
    assert raw.headers["x-posturio-decision"] == "redact"
    sent = fake.calls(model)[-1]["body"]["messages"][2]["content"][0]
    assert AWS_KEY not in sent["content"] and "[CLOUD_CREDENTIAL_1]" in sent["content"]
    assert sent["cache_control"] == {"type": "ephemeral"}

    # Metered from Anthropic's own usage, cache reads included.
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:

        async def usage() -> list[dict[str, Any]]:
            return (await http.get("/api/usage/requests?limit=10")).json()

        rows = await eventually(usage, lambda r: len(r) >= 3, what="three usage rows")
    assert {r["endpoint"] for r in rows} == {"messages"}
    assert any(r["prompt_tokens"] == 121 and not r["tokens_estimated"] for r in rows), rows


async def test_responses_to_a_responses_deployment_pass_through(server, fake, tenant):
    alias = f"codex-{uuid.uuid4().hex[:6]}"
    model = f"resp-native-{uuid.uuid4().hex[:6]}"
    native = deployment("main", model, fake.base_url, api_version="responses")
    await put_route(server, tenant, alias, [native])
    client = sdk(server, tenant.gateway_key)
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque=="}
    items = [reasoning, {"role": "user", "content": "native words"}]
    reply = await client.responses.create(model=alias, input=items, store=False)
    assert reply.output_text == "native words" and reply.model == alias
    assert reply.usage.input_tokens == 13
    call = fake.calls(model)[-1]
    assert call["path"] == "/v1/responses" and call["body"]["input"][0] == reasoning
    events = [e async for e in await client.responses.create(model=alias, input=items, stream=True)]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.strip() == "native words"
