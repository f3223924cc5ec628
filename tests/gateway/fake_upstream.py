"""A fake upstream LLM server (OpenAI-compatible, Azure and Anthropic routes) that can
misbehave on demand. The upstream model name chooses the behaviour:

  ok                     answers (echoing the last user message)
  fail                   HTTP 500 every time
  flaky:N:tag            HTTP 500 the first N times (per tag), then answers
  ratelimit:N:tag        HTTP 429 with Retry-After: 0 the first N times, then answers
  slow:SECONDS           answers after sleeping
  reject                 HTTP 400 (the caller's fault)
  denied                 HTTP 401 (a bad upstream credential)
  cut                    streams two chunks, then drops the connection
  cite                   answers CITED_ANSWER, which cites sources [1], [2] and some
                         that a grounded prompt with fewer sources never provided
  junk                   like cite, with events that are not JSON in its streams
  chunks:N               streams its answer in pieces of N characters (not word by word)
  tool[:NAME:ARG=VALUE]  an agent's model: first calls the tool NAME({ARG: VALUE})
                         (default read_file({"path": ".env"})); once the last message
                         is a tool result, answers "the tool said: <it>"
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

from aiohttp import web

from posturio.platform.embedded import free_port

CHUNKED = "chunks"
CITED_ANSWER = "Thirty days of paid leave [1][9]. Book it in the portal [2, 12]. Or not [0]."


def _reply_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages", [])):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


class FakeUpstream:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.requests: list[dict[str, Any]] = []
        self._counts: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    # ------------------------------------------------------------ control

    def start(self) -> FakeUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def calls(self, model: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if model is None or r["body"].get("model") == model]

    # ------------------------------------------------------------ server

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/v1/embeddings", self._openai_embeddings)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._openai_chat)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/responses", self._responses)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    async def _misbehave(self, model: str) -> web.Response | None:
        parts = model.split(":")
        if parts[0] == "fail":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        if parts[0] in ("flaky", "ratelimit"):
            tag = model
            self._counts[tag] += 1
            if self._counts[tag] <= int(parts[1]):
                if parts[0] == "flaky":
                    return web.json_response({"error": {"message": "flaky"}}, status=500)
                return web.json_response(
                    {"error": {"message": "slow down"}}, status=429, headers={"retry-after": "0"}
                )
        if parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
        if parts[0] == "reject":
            return web.json_response({"error": {"message": "bad parameter 'foo'"}}, status=400)
        if parts[0] == "denied":
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        return None

    def _record(self, request: web.Request, body: dict[str, Any]) -> None:
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
                "at": time.time(),
            }
        )

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._record(request, body)
        model = body.get("model", "")
        failure = await self._misbehave(model)
        if failure is not None:
            return failure
        if model == "tool" or model.startswith("tool:"):
            return await self._tool_turn(request, body)
        text = CITED_ANSWER if model in ("cite", "junk") else _reply_text(body)
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "usage": usage,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                }
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return (
                "data: "
                + json.dumps(
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "model": model,
                        "created": 0,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )
                + "\n\n"
            ).encode()

        await response.write(chunk({"role": "assistant", "content": ""}))
        if model.startswith(f"{CHUNKED}:"):
            size = int(model.split(":")[1])
            pieces = [text[i : i + size] for i in range(0, len(text), size)]
        else:
            pieces = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
        for i, piece in enumerate(pieces):
            await response.write(chunk({"content": piece}))
            if model == "junk":
                await response.write(b"data: : keep-alive\n\ndata: [1, 2]\n\n")
            if model == "cut" and i == 0:
                await asyncio.sleep(0.05)
                request.transport.close()  # type: ignore[union-attr]
                return response
        await response.write(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(
                (
                    "data: "
                    + json.dumps(
                        {
                            "id": "chatcmpl-fake",
                            "object": "chat.completion.chunk",
                            "model": model,
                            "created": 0,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                    + "\n\n"
                ).encode()
            )
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _tool_turn(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        _, name, arg = [*body["model"].split(":", 2), "", ""][:3]
        name = name or "read_file"
        key, _, value = (arg or "path=.env").partition("=")
        arguments = json.dumps({key: value})
        # The tool's answer: a tool message after the last assistant turn (an agent may
        # add text of its own after the tool result).
        after = []
        for message in reversed(body["messages"]):
            if message.get("role") == "assistant":
                break
            after.append(message)
        last = next((m for m in after if m.get("role") == "tool"), {})
        usage = {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
        if last.get("role") == "tool":
            message: dict[str, Any] = {
                "role": "assistant",
                "content": f"the tool said: {last['content']}",
            }
            finish = "stop"
        else:
            call = {
                "id": "call_fake_1",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            message, finish = (
                {"role": "assistant", "content": None, "tool_calls": [call]},
                "tool_calls",
            )
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-tool",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "tool",
                    "usage": usage,
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                }
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            event = {"id": "chatcmpl-tool", "object": "chat.completion.chunk", "model": "tool"}
            event["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            await response.write(f"data: {json.dumps({**event, **extra})}\n\n".encode())

        await send({"role": "assistant", "content": None})
        if message.get("content"):
            for i in range(0, len(message["content"]), 10):
                await send({"content": message["content"][i : i + 10]})
        else:
            call = message["tool_calls"][0]
            head = {**call, "index": 0, "function": {"name": name, "arguments": ""}}
            await send({"tool_calls": [head]})
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        await send({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({}, None, usage=usage)
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API: answers the last user input's text."""
        body = await request.json()
        self._record(request, body)
        items = body["input"]
        if isinstance(items, str):
            text = items
        else:
            users = [i for i in items if i.get("role") == "user"]
            content = users[-1]["content"] if users else ""
            text = (
                content
                if isinstance(content, str)
                else " ".join(p.get("text", "") for p in content)
            )
        usage = {"input_tokens": 13, "output_tokens": 5, "total_tokens": 18}
        item = {
            "type": "message",
            "id": "msg_fake",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        done = {
            "id": "resp_fake",
            "object": "response",
            "status": "completed",
            "model": body["model"],
            "output": [item],
            "usage": usage,
        }
        if not body.get("stream"):
            return web.json_response(done)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        seq = 0

        async def event(name: str, **data: Any) -> None:
            nonlocal seq
            payload = {"type": name, "sequence_number": seq, **data}
            seq += 1
            await response.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())

        await event("response.created", response={**done, "status": "in_progress", "output": []})
        await event("response.output_item.added", output_index=0, item={**item, "content": []})
        for word in text.split(" "):
            await event(
                "response.output_text.delta",
                item_id="msg_fake",
                output_index=0,
                content_index=0,
                delta=word + " ",
            )
        await event("response.output_item.done", output_index=0, item=item)
        await event("response.completed", response=done)
        return response

    async def _openai_embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record(request, body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response(
            {
                "object": "list",
                "model": body["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                    for i, _ in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._record(request, body)
        failure = await self._misbehave(body.get("model", ""))
        if failure is not None:
            return failure
        wants_tool = bool(body.get("tools"))
        text = _reply_text(
            {
                "messages": [
                    {
                        "role": m["role"],
                        "content": m["content"]
                        if isinstance(m["content"], str)
                        else [b for b in m["content"] if b.get("type") == "text"],
                    }
                    for m in body["messages"]
                ]
            }
        )
        # Prompt caching, as Anthropic reports it, when the request marks a cache point.
        cached = 100 if "cache_control" in json.dumps(body) else 0
        if not body.get("stream"):
            content: list[dict[str, Any]] = [{"type": "text", "text": text}]
            if wants_tool:
                content.append(
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": body["tools"][0]["name"],
                        "input": {"city": "Paris"},
                    }
                )
            return web.json_response(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": content,
                    "stop_reason": "tool_use" if wants_tool else "end_turn",
                    "usage": {
                        "input_tokens": 21,
                        "output_tokens": 9,
                        "cache_read_input_tokens": cached,
                    },
                }
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        await event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [],
                    "stop_reason": None,
                    "usage": {
                        "input_tokens": 21,
                        "output_tokens": 1,
                        "cache_read_input_tokens": cached,
                    },
                },
            },
        )
        await event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await event("ping", {"type": "ping"})
        for word in text.split(" "):
            await event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word + " "},
                },
            )
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        if wants_tool:
            await event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": body["tools"][0]["name"],
                        "input": {},
                    },
                },
            )
            for part in ('{"city": ', '"Paris"}'):
                await event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": part},
                    },
                )
            await event("content_block_stop", {"type": "content_block_stop", "index": 1})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use" if wants_tool else "end_turn"},
                "usage": {"output_tokens": 9},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        return response
