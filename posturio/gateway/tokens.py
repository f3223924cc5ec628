"""Token estimates for when a provider does not report usage, and for limits reserved
before a call. About 4 characters a token for English text (OpenAI's rule of thumb);
real counts from the provider replace the estimate whenever it reports them."""

from __future__ import annotations

from typing import Any

PER_MESSAGE_OVERHEAD = 4


def estimate_text(text: str) -> int:
    return (len(text) + 3) // 4


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a multi-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        )
    return ""


def estimate_prompt(messages: list[dict[str, Any]]) -> int:
    total = 0
    for m in messages:
        total += PER_MESSAGE_OVERHEAD + estimate_text(message_text(m.get("content")))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {} if isinstance(call, dict) else {}
            total += estimate_text(str(fn.get("arguments", ""))) + estimate_text(
                str(fn.get("name", ""))
            )
    return total
