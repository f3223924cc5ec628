"""Where the text of a request or response lives, so each piece can be inspected and,
when the policy redacts, written back in place.

Inspected: every message's content (all roles, every text part of multi-part content,
tool results), tool-call and legacy function-call arguments, embeddings input strings,
and on the way back each choice's content and tool-call arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Segment:
    where: str  # e.g. "messages[2].content[0].text"
    text: str
    holder: dict[str, Any] | list[Any]
    key: str | int

    def replace(self, text: str) -> None:
        self.holder[self.key] = text  # type: ignore[index]
        self.text = text


def _text(out: list[Segment], where: str, holder: Any, key: str | int) -> None:
    value = holder[key] if isinstance(holder, list) else holder.get(key)
    if isinstance(value, str) and value:
        out.append(Segment(where, value, holder, key))


def _calls(out: list[Segment], where: str, message: dict[str, Any]) -> None:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                _text(out, f"{where}.tool_calls[{j}].function.arguments", function, "arguments")
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        _text(out, f"{where}.function_call.arguments", legacy, "arguments")


def _message(out: list[Segment], where: str, message: Any) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        _text(out, f"{where}.content", message, "content")
    elif isinstance(content, list):
        for k, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                _text(out, f"{where}.content[{k}].text", part, "text")
    _calls(out, where, message)


def chat_segments(payload: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    for i, message in enumerate(payload.get("messages") or ()):
        _message(out, f"messages[{i}]", message)
    return out


def embeddings_segments(payload: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    value = payload.get("input")
    if isinstance(value, str):
        _text(out, "input", payload, "input")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                _text(out, f"input[{i}]", value, i)
    return out


def response_segments(body: dict[str, Any]) -> list[Segment]:
    out: list[Segment] = []
    for i, choice in enumerate(body.get("choices") or ()):
        if isinstance(choice, dict):
            _message(out, f"choices[{i}].message", choice.get("message"))
    return out


def total_chars(segments: list[Segment]) -> int:
    return sum(len(s.text) for s in segments)
