"""Output inspection of a streamed answer.

When the policy redacts output, the guard releases only text whose redaction the rest of
the answer can no longer change, so that what the client receives is always a prefix of
what the same answer gets without streaming. Each round inspects a bounded window (some
already-released context plus everything not yet released) and releases up to a cut that
no match can still cross:

- at least HOLD characters before the end: a value becomes a match within that many
  characters of its start (an assignment's keyword, a key's prefix), so no match that is
  still invisible can start before the cut;
- not inside the unfinished word at the end: a run without whitespace may still grow into
  a token, or into a longer, different match (`secret=u8Jk…` is a generic secret, and the
  same text 30 characters on is an AWS secret key starting at `aws_`);
- not inside a finding that reaches past the cut, nor after the start of a match that is
  still open (a private key before its END line, a service-account file before its `}`).

What is released is redacted with the findings of the window that holds it whole. With
flag-only output rules nothing is held back. At the end the whole answer (bounded) is
evaluated once more for the decision record."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from posturio.gateway.inspection.engine import Finding
from posturio.gateway.inspection.segments import Segment
from posturio.gateway.policy.evaluate import (
    CompiledPolicy,
    Context,
    Hit,
    Labels,
    Normalized,
    Verdict,
    rewrite_raw,
)

HOLD = 160  # every built-in rule's match is visible within this many characters of its start
CONTEXT = 64  # released text kept before the cut: word boundaries and short key prefixes
STEP = 16  # rescan once this much more has arrived (a scan costs the same for 1 or 16)
PINNED = 640  # more than this held back: rescan only as it grows by half (linear in total)
MAX_PENDING = 65_536  # held back at most; past it the window is released as it reads now
KEEP = 65_536  # per choice, for the final evaluation

# Matches that can still grow across whitespace, arbitrarily far, once their closing part
# arrives: until then they are held from their start.
_OPEN: dict[str, Callable[[str], bool]] = {
    "private_key": lambda value: "-----END" not in value,
    "google.service_account": lambda value: not value.endswith("}"),
}
_SPACE = re.compile(r"\s")

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


CONTENT = -1  # the key of a choice's text; tool calls are keyed by their own index
Key = tuple[int, int]  # (choice index, CONTENT or tool-call index)


@dataclass(slots=True)
class _Choice:
    where: str
    text: str = ""  # as the upstream wrote it: released context, then what is held back
    sent: int = 0  # text[:sent] has been released
    rescan_at: int = 0  # scan again once this much is held back
    full: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def pending(self) -> int:
        return len(self.text) - self.sent


class Guard(Protocol):
    """What the relay asks of whatever watches a stream's text."""

    def feed(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def verdict(self) -> tuple[Verdict, list[Segment]]: ...


class StreamGuard:
    def __init__(self, policy: CompiledPolicy, ctx: Context) -> None:
        self._policy = policy
        self._ctx = ctx
        self._holding = any(r.action == "redact" for r in policy.output_rules(ctx))
        self._choices: dict[Key, _Choice] = {}
        self._labels = Labels()
        self._last: dict[str, Any] = {}
        self.redactions = 0

    @property
    def holding(self) -> bool:
        """Whether the guard may rewrite the answer (a redacting output rule applies)."""
        return self._holding

    def observe(self, text: str) -> None:
        """Text a stream in another shape added (a native dialect's delta): recorded for
        the verdict. Only for a guard that does not hold (flag-only output rules)."""
        self._advance((0, CONTENT), text, False)

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
            final = choice.get("finish_reason") is not None
            content = delta.get("content")
            if isinstance(content, str) or final:
                out = self._advance((index, CONTENT), content or "", final)
                if out != (content or ""):
                    delta["content"] = out
                    changed = True
            changed = self._tool_arguments(index, delta, final) or changed
        return b"data: " + _encode(event) + b"\n\n" if changed else chunk

    def _tool_arguments(self, index: int, delta: dict[str, Any], final: bool) -> bool:
        """Streamed tool-call arguments get the same guard as the text (the non-streamed
        path inspects them too); on the choice's last event, held arguments of calls the
        event does not name go out in it."""
        changed, named = False, set()
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                continue
            number = int(call.get("index") or 0)
            named.add(number)
            out = self._advance((index, number), function["arguments"], final)
            if out != function["arguments"]:
                function["arguments"] = out
                changed = True
        if final:
            held = [
                {"index": number, "function": {"arguments": out}}
                for (i, number), state in list(self._choices.items())
                if i == index and number != CONTENT and number not in named and state.pending
                if (out := self._advance((i, number), "", True))
            ]
            if held:
                delta["tool_calls"] = [*(calls if isinstance(calls, list) else []), *held]
                changed = True
        return changed

    def _advance(self, key: Key, content: str, final: bool) -> str:
        state = self._choices.get(key)
        if state is None:
            index, number = key
            where = f"choices[{index}].message." + (
                "content" if number == CONTENT else f"tool_calls[{number}].function.arguments"
            )
            state = self._choices[key] = _Choice(where)
        if state.size < KEEP:
            state.full.append(content[: KEEP - state.size])
            state.size += len(state.full[-1])
        if not self._holding:
            return content
        state.text += content
        if final or state.pending > MAX_PENDING or state.pending >= state.rescan_at:
            return self._release(state, final)
        return ""

    def _release(self, state: _Choice, final: bool) -> str:
        """Release what no later text can change, redacted as the whole answer would be."""
        norm = Normalized.of(state.text)
        window = Segment(state.where, norm.text, {}, "text")
        hits = self._policy.evaluate([window], self._ctx).hits
        sent = norm.index(state.sent)
        if final:
            cut = len(norm.text)
        elif state.pending > MAX_PENDING:
            cut = _forced_cut(norm.text, hits)
        else:
            cut = max(sent, _safe_cut(norm.text, hits))
        spans = [
            # A finding that reaches back into released text (possible only for a value
            # whose start shows more than HOLD characters before it matches) keeps the
            # rest held until it ends, then goes out redacted from the cut on.
            (max(h.finding.start, sent), h.finding.end, self._labels.render(h.finding, style))
            for h, style in _redacted(hits)
            if sent < h.finding.end <= cut
        ]
        self.redactions += len(spans)
        # A span ending inside what one written character became (ﬁ -> fi) takes it whole.
        raw_cut = max([norm.raw_offset(cut), *(norm.raw_span(s, e)[1] for s, e, _ in spans)])
        released = rewrite_raw(norm, spans)
        out = released[state.sent : len(released) - (len(state.text) - raw_cut)]
        state.sent = raw_cut
        self._forget(state)
        grow = state.pending // 2 if state.pending > PINNED else STEP
        state.rescan_at = state.pending + grow
        return out

    @staticmethod
    def _forget(state: _Choice) -> None:
        """Keep CONTEXT characters of released text, dropped at a word boundary."""
        drop = state.sent - CONTEXT
        if drop <= 0:
            return
        space = _SPACE.search(state.text, drop, state.sent)
        drop = space.end() if space else drop
        state.text = state.text[drop:]
        state.sent -= drop

    def flush(self) -> bytes:
        """What is still held back, after a last scan (when the upstream broke off: the
        caller keeps the text it was owed; a complete secret in it is still redacted)."""
        return self._flush_all()

    def _flush_all(self) -> bytes:
        deltas: dict[int, dict[str, Any]] = {}
        for (index, number), state in list(self._choices.items()):
            if not state.pending:
                continue
            out = self._advance((index, number), "", True)
            delta = deltas.setdefault(index, {})
            if number == CONTENT:
                delta["content"] = out
            else:
                call = {"index": number, "function": {"arguments": out}}
                delta.setdefault("tool_calls", []).append(call)
        if not deltas:
            return b""
        choices = [{"index": index, "delta": delta} for index, delta in deltas.items()]
        event = {**self._last, "choices": choices}
        return b"data: " + _encode(event) + b"\n\n"

    def verdict(self) -> tuple[Verdict, list[Segment]]:
        """The whole answer (as sent by the upstream) evaluated once, for the record."""
        segments = [
            Segment(s.where, "".join(s.full), {}, "text")
            for _, s in sorted(self._choices.items())
            if s.size
        ]
        return self._policy.evaluate(segments, self._ctx), segments


def _safe_cut(text: str, hits: list[Hit]) -> int:
    """The furthest point of `text` that no match, visible or still to come, can cross."""
    cut = min(len(text) - HOLD, _word_start(text))
    for f in _findings(hits):
        if f.start < cut and (f.end > cut or _still_open(text, f)):
            cut = f.start
    return cut


def _forced_cut(text: str, hits: list[Hit]) -> int:
    """Past MAX_PENDING: as far as the text reads now, never inside a finding."""
    cut = len(text) - HOLD
    for f in _findings(hits):
        if f.start < cut < f.end:
            cut = f.end
    return cut


def _redacted(hits: list[Hit]) -> list[tuple[Hit, str]]:
    return [(h, h.rule.redact_style) for h in hits if h.action == "redact" and h.rule]


def _findings(hits: list[Hit]) -> list[Finding]:
    """Latest first, so that stepping back to one finding's start can meet the next."""
    return sorted((h.finding for h in hits), key=lambda f: f.start, reverse=True)


def _still_open(text: str, f: Finding) -> bool:
    check = _OPEN.get(f.rule)
    return check is not None and check(text[f.start : f.end])


def _word_start(text: str) -> int:
    """Where the run without whitespace that ends the text begins."""
    i = len(text)
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    return i
