"""OpenAI Responses (`POST /v1/responses`: Codex CLI, the Agents SDK, `client.responses`)
to and from Chat, streaming and function calls included.

The gateway is stateless: it keeps no responses, so `previous_response_id` is refused
with a 400 that says so (clients resend the conversation, as Codex does with `store:
false`), and every answer says `"store": false`. Reasoning items are dropped on a
translated route (a Chat deployment cannot read them)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec

from posturio.gateway.decode import parse
from posturio.gateway.dialects import (
    Dialect,
    Request,
    event_data,
    named_event,
    new_id,
    translate_stream,
)
from posturio.gateway.errors import GatewayError, invalid
from posturio.gateway.inspection.segments import Segment, body_segments
from posturio.gateway.tokens import estimate_text


class ResponsesShape(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    stream: bool = False
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None


def read(body: bytes) -> Request:
    payload, shape = parse(body, ResponsesShape)
    if shape.previous_response_id:
        raise invalid(
            "previous_response_id is not supported: this gateway stores no responses; "
            "send the whole conversation in `input`",
            "previous_response_id",
            code="unsupported_parameter",
        )
    items = [shape.input] if isinstance(shape.input, str) else shape.input
    if not items:
        raise invalid("input must not be empty", "input")
    return Request(
        payload=payload,
        model=shape.model,
        stream=shape.stream,
        max_output=shape.max_output_tokens,
        messages=len(items),
        prompt_estimate=estimate_text(shape.instructions or "")
        + estimate_text(json.dumps(shape.input))
        + (estimate_text(json.dumps(shape.tools)) if shape.tools else 0),
    )


# ------------------------------------------------------------------ Responses -> Chat


def _content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content or ():
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return "\n".join(
        str(p.get("text", "")) for p in output or () if isinstance(p, dict) and "text" in p
    )


def _messages(payload: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if payload.get("instructions"):
        messages.append({"role": "system", "content": payload["instructions"]})
    items = payload["input"]
    if isinstance(items, str):
        return [*messages, {"role": "user", "content": items}]
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            messages.append({"role": role, "content": _content(item.get("content"))})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls: one assistant turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": _output_text(item.get("output")),
                }
            )
        # reasoning and other items: nothing a Chat deployment can read
    return messages


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools in Chat's shape. Other kinds (hosted tools, custom or namespaced
    tools) exist only on Responses deployments: a Chat deployment could never call them,
    so they are left out rather than failing an agent that declares them all."""
    out = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        function = {"name": tool.get("name"), "parameters": tool.get("parameters") or {}}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def to_chat(payload: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": payload["model"], "messages": _messages(payload)}
    if payload.get("max_output_tokens"):
        chat["max_tokens"] = payload["max_output_tokens"]
    for name in ("temperature", "top_p", "stream", "parallel_tool_calls", "user", "metadata"):
        if payload.get(name) is not None:
            chat[name] = payload[name]
    if payload.get("stream"):
        chat["stream_options"] = {"include_usage": True}
    if tools := _tools(payload.get("tools") or []):
        chat["tools"] = tools
        choice = payload.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif choice in ("auto", "none", "required"):
            chat["tool_choice"] = choice
    fmt = (payload.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt.items() if k in ("name", "schema", "strict", "description")}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    effort = (payload.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort
    return chat


# ------------------------------------------------------------------ Chat -> Responses


def _usage(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = chat_usage or {}
    prompt, completion = (
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": prompt + completion,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _response(
    request: Request, response_id: str, status: str, output: list[Any], usage: Any
) -> dict[str, Any]:
    payload = request.payload
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": request.model,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "parallel_tool_calls": payload.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": payload.get("reasoning"),
        "store": False,
        "temperature": payload.get("temperature"),
        "text": payload.get("text") or {"format": {"type": "text"}},
        "tool_choice": payload.get("tool_choice", "auto"),
        "tools": payload.get("tools") or [],
        "top_p": payload.get("top_p"),
        "truncation": "disabled",
        "metadata": payload.get("metadata") or {},
    }


def from_chat(body: dict[str, Any], request: Request) -> dict[str, Any]:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(_message_item(new_id("msg"), message["content"]))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        output.append(
            _call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                fn.get("name", ""),
                fn.get("arguments", ""),
                "completed",
            )
        )
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    response = _response(request, new_id("resp"), status, output, _usage(body.get("usage")))
    if status == "incomplete":
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    return response


class _StreamState:
    """Chat chunks -> the Responses event sequence, each event numbered."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.id = new_id("resp")
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.text: str | None = None  # the open message item's text
        self.calls: dict[int, int] = {}  # chat tool_calls index -> output index
        self.open_call: int | None = None
        self.usage: Any = _usage(None)
        self.finish: str | None = None

    def event(self, name: str, **data: Any) -> bytes:
        out = named_event(name, {"type": name, "sequence_number": self.seq, **data})
        self.seq += 1
        return out

    def snapshot(self, status: str) -> dict[str, Any]:
        usage = self.usage if status != "in_progress" else None
        return _response(self.request, self.id, status, list(self.output), usage)

    def start(self) -> list[bytes]:
        opening = self.snapshot("in_progress")  # the same empty response, announced twice
        return [
            self.event("response.created", response=opening),
            self.event("response.in_progress", response=opening),
        ]

    def _close_text(self) -> list[bytes]:
        if self.text is None:
            return []
        index, text = len(self.output) - 1, self.text
        item = self.output[index] = _message_item(self.output[index]["id"], text)
        part = item["content"][0]
        self.text = None
        ref = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self.event("response.output_text.done", **ref, text=text),
            self.event("response.content_part.done", **ref, part=part),
            self.event("response.output_item.done", output_index=index, item=item),
        ]

    def _close_call(self) -> list[bytes]:
        if self.open_call is None:
            return []
        index, item = self.open_call, self.output[self.open_call]
        item["status"] = "completed"
        self.open_call = None
        return [
            self.event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            ),
            self.event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def feed(self, event: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if event.get("usage"):
            self.usage = _usage(event["usage"])
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.text is None:
                    out += self._close_call()
                    item = _message_item(new_id("msg"), "", "in_progress")
                    item["content"] = []
                    self.output.append(item)
                    self.text = ""
                    index = len(self.output) - 1
                    out.append(
                        self.event("response.output_item.added", output_index=index, item=item)
                    )
                    out.append(
                        self.event(
                            "response.content_part.added",
                            item_id=item["id"],
                            output_index=index,
                            content_index=0,
                            part={"type": "output_text", "text": "", "annotations": []},
                        )
                    )
                self.text += delta["content"]
                out.append(
                    self.event(
                        "response.output_text.delta",
                        item_id=self.output[-1]["id"],
                        output_index=len(self.output) - 1,
                        content_index=0,
                        delta=delta["content"],
                    )
                )
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                if call.get("index", 0) not in self.calls:
                    out += self._close_text() + self._close_call()
                    item = _call_item(
                        new_id("fc"),
                        call.get("id") or new_id("call"),
                        fn.get("name", ""),
                        "",
                        "in_progress",
                    )
                    self.output.append(item)
                    self.open_call = self.calls[call.get("index", 0)] = len(self.output) - 1
                    out.append(
                        self.event(
                            "response.output_item.added",
                            output_index=self.open_call,
                            item=dict(item),
                        )
                    )
                if fn.get("arguments") and self.open_call is not None:
                    item = self.output[self.open_call]
                    item["arguments"] += fn["arguments"]
                    out.append(
                        self.event(
                            "response.function_call_arguments.delta",
                            item_id=item["id"],
                            output_index=self.open_call,
                            delta=fn["arguments"],
                        )
                    )
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def end(self) -> list[bytes]:
        out = self._close_text() + self._close_call()
        if self.finish == "length":
            response = self.snapshot("incomplete")
            response["incomplete_details"] = {"reason": "max_output_tokens"}
            return [*out, self.event("response.incomplete", response=response)]
        return [*out, self.event("response.completed", response=self.snapshot("completed"))]

    def failed(self, message: str) -> bytes:
        response = self.snapshot("failed")
        response["error"] = {"code": "server_error", "message": message}
        return self.event("response.failed", response=response)


def stream_from_chat(chunks: AsyncIterator[bytes], request: Request) -> AsyncIterator[bytes]:
    return translate_stream(_StreamState(request), chunks)


def error_body(exc: GatewayError, request_id: str | None) -> dict[str, Any]:
    return exc.body(request_id)  # OpenAI's envelope, as on Chat


def output_segments(body: dict[str, Any]) -> list[Segment]:
    return body_segments({"output": body.get("output")})


_DELTAS = (b"response.output_text.delta", b"response.function_call_arguments.delta")


def event_text(chunk: bytes) -> str:
    return str((event_data(chunk, _DELTAS) or {}).get("delta") or "")


def stream_error(message: str) -> bytes:
    return named_event("error", {"type": "error", "code": "stream_interrupted", "message": message})


RESPONSES = Dialect(
    name="responses",
    endpoint="responses",
    parse=read,
    to_chat=to_chat,
    from_chat=from_chat,
    stream_from_chat=stream_from_chat,
    error_body=error_body,
    output_segments=output_segments,
    event_text=event_text,
    stream_error=stream_error,
)
