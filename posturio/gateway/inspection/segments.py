"""Where the text of a request or response lives, so each piece can be inspected and,
when the policy redacts, written back in place.

A request is inspected whole: every string anywhere in the body the caller sent (every
message and content block, tool definitions and their schemas, tool inputs and results,
metadata, stop sequences, fields the gateway does not know), in the caller's own
dialect, named by its path there (`messages[2].content[0].content`, `input[5].output`).
Only identifiers and enumerations the upstream reads as such (model, role, type, ids)
and binary payloads (base64 images and documents) are skipped: a secret placed anywhere
else would otherwise reach the upstream uninspected. On the way back, each choice's
content and tool-call arguments."""

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
    value = holder.get(key) if isinstance(holder, dict) else holder[key]
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


# Values the upstream reads as identifiers or enumerations, never as text.
STRUCTURAL = frozenset(
    {
        "model",
        "role",
        "type",
        "id",
        "tool_call_id",
        "tool_use_id",
        "call_id",
        "media_type",
        "signature",
        "encrypted_content",
        "detail",
        "status",
        "object",
        "service_tier",
        "reasoning_effort",
        "effort",
        "truncation",
        "encoding_format",
    }
)


def _binary(holder: dict[str, Any], key: str, value: str) -> bool:
    """Base64 payloads (images, PDFs): opaque to text inspection."""
    if key == "data" and holder.get("type") == "base64":
        return True
    return value.startswith("data:") and ";base64," in value[:200]


def _walk(out: list[Segment], where: str, node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(value, str):
                if value and key not in STRUCTURAL and not _binary(node, key, value):
                    out.append(Segment(path, value, node, key))
            elif isinstance(value, dict | list):
                _walk(out, path, value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                if value:
                    out.append(Segment(f"{where}[{i}]", value, node, i))
            elif isinstance(value, dict | list):
                _walk(out, f"{where}[{i}]", value)


def body_segments(payload: dict[str, Any]) -> list[Segment]:
    """Every inspectable string of a request body, in any dialect."""
    out: list[Segment] = []
    _walk(out, "", payload)
    return out


def chat_segments(payload: dict[str, Any]) -> list[Segment]:
    return body_segments(payload)


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
