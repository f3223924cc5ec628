"""Output inspection of a streamed answer.

Each choice's text is inspected over a sliding window (the tail already sent plus what is
held back), so a value split across chunks is still found. When the policy redacts output,
the last HOLD characters are held back until the next chunk (or the end) shows whether
they belong to a secret; with flag-only output rules nothing is held back. At the end the
whole answer (bounded) is evaluated once more for the decision record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from posturio.gateway.inspection.segments import Segment
from posturio.gateway.policy.evaluate import CompiledPolicy, Context, Labels, Verdict, redact

HOLD = 160  # longer than the secrets we redact in full; a longer one is still flagged
TAIL = 160  # context already sent, so a value straddling chunks is recognised
KEEP = 65_536  # per choice, for the final evaluation

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class _Choice:
    tail: str = ""
    held: str = ""
    full: list[str] = field(default_factory=list)
    size: int = 0


class StreamGuard:
    def __init__(self, policy: CompiledPolicy, ctx: Context) -> None:
        self._policy = policy
        self._ctx = ctx
        self._hold = HOLD if any(r.action == "redact" for r in policy.output_rules(ctx)) else 0
        self._choices: dict[int, _Choice] = {}
        self._labels = Labels()
        self._last: dict[str, Any] = {}
        self.redactions = 0

    def feed(self, chunk: bytes) -> bytes:
        """One SSE event in, the event to send out (possibly rewritten, or b"")."""
        if not chunk.startswith(b"data: "):
            return chunk
        data = chunk[6:].rstrip(b"\n")
        if data == b"[DONE]":
            return self._flush_all() + chunk
        try:
            event = _decode(data)
        except msgspec.DecodeError:
            return chunk
        choices = event.get("choices") if isinstance(event, dict) else None
        if not choices:
            return chunk
        self._last = {k: event.get(k) for k in ("id", "object", "created", "model")}
        changed = False
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            index = int(choice.get("index") or 0)
            content = delta.get("content")
            final = choice.get("finish_reason") is not None
            if isinstance(content, str) or final:
                out = self._advance(index, content if isinstance(content, str) else "", final)
                if out != (content or ""):
                    delta["content"] = out
                    changed = True
        return b"data: " + _encode(event) + b"\n\n" if changed else chunk

    def _advance(self, index: int, content: str, final: bool) -> str:
        state = self._choices.setdefault(index, _Choice())
        if state.size < KEEP:
            state.full.append(content[: KEEP - state.size])
            state.size += len(state.full[-1])
        state.held += content
        if self._hold:
            window = Segment("window", state.tail + state.held, {}, "text")
            verdict = self._policy.evaluate([window], self._ctx)
            # Only what lies wholly in the held part can still be changed.
            verdict.hits = [h for h in verdict.hits if h.finding.start >= len(state.tail)]
            if any(h.action == "redact" for h in verdict.hits):
                self.redactions += redact([window], verdict, self._labels)
                state.held = window.text[len(state.tail) :]
        cut = len(state.held) if final else max(0, len(state.held) - self._hold)
        out, state.held = state.held[:cut], state.held[cut:]
        state.tail = (state.tail + out)[-TAIL:]
        return out

    def flush(self) -> bytes:
        """What is still held back, after a last scan (when the upstream broke off: the
        caller keeps the text it was owed; a complete secret in it is still redacted)."""
        return self._flush_all()

    def _flush_all(self) -> bytes:
        choices = []
        for index, state in self._choices.items():
            if state.held:
                choices.append(
                    {"index": index, "delta": {"content": self._advance(index, "", True)}}
                )
        if not choices:
            return b""
        event = {**self._last, "choices": choices}
        return b"data: " + _encode(event) + b"\n\n"

    def verdict(self) -> tuple[Verdict, list[Segment]]:
        """The whole answer (as sent by the upstream) evaluated once, for the record."""
        segments = [
            Segment(f"choices[{i}].message.content", "".join(s.full), {}, "text")
            for i, s in sorted(self._choices.items())
            if s.size
        ]
        return self._policy.evaluate(segments, self._ctx), segments
