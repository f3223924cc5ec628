"""Grounded answers through the gateway's own pipeline, as the asking employee.

One flow serves both doors: `POST /api/navigator/answer` (Navigator's API) and the model
alias `navigator` on `/v1/chat/completions` (any OpenAI client). The question is
retrieved against the sources the caller may read; the prompt with the numbered passages
is inspected under the tenant's policy (a secret in the question blocks it exactly as on
/v1, an instruction planted in a retrieved document is flagged), admitted under the
key's limits, answered by the tenant's answer model (or extractively, in-process, when
there is none), inspected again on the way out and metered with origin `navigator`.
Citations to numbers that were not provided are removed, never shown as dead links."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, cast

import msgspec
import structlog
from litestar import asgi
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from posturio.config import Settings
from posturio.gateway.asgi import SSE, Receive, response_headers, scope_token, send_json, serve
from posturio.gateway.decode import parse
from posturio.gateway.errors import GatewayError, invalid
from posturio.gateway.inspection.engine import normalize
from posturio.gateway.inspection.segments import Segment, chat_segments
from posturio.gateway.pipeline import Call, Gateway, Send, estimate_chat
from posturio.gateway.policy.evaluate import replace_spans
from posturio.gateway.providers.base import SSE_DONE, sse
from posturio.gateway.providers.writer import Writer
from posturio.gateway.routing import ResolvedRoute, builtin_route
from posturio.gateway.schemas import ChatShape
from posturio.gateway.tokens import estimate_prompt, message_text
from posturio.navigator.grounding import (
    CitationStream,
    Passage,
    clean_citations,
    extractive_reply,
    grounded_messages,
    relevant,
    sources_footer,
    weak_evidence,
)
from posturio.navigator.indexing import embedder
from posturio.navigator.models import Answer
from posturio.navigator.search import Filters, SearchHit, hybrid_search
from posturio.navigator.settings import answer_model
from posturio.navigator.sources import viewer_groups
from posturio.platform.db import tenant_session
from posturio.platform.errors import PosturioError
from posturio.platform.keyauth import CachedKey
from posturio.platform.logging import current_request_id, new_request_id

log = structlog.get_logger("posturio.navigator")
NAVIGATOR_ALIAS = "navigator"
# Extractive answers and "nothing found" are written in-process, at no cost, by the
# gateway provider WRITER (see Answerer.attach).
WRITER = "navigator"
LOCAL = builtin_route(NAVIGATOR_ALIAS, "chat", WRITER, "extractive")
ANSWER_ID_HEADER = "x-posturio-answer-id"
PASSAGE_TOKENS = 300  # a chunk is at most 256 word pieces; with its label, about this
# Request fields not passed on to the answer model: the conversation is ours to build,
# one answer, and a grounded answer calls no tools.
_NOT_FORWARDED = {"model", "messages", "stream", "stream_options", "n", "tools", "tool_choice"}


class AskIn(msgspec.Struct, forbid_unknown_fields=True):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    stream: bool = False
    source_ids: list[uuid.UUID] | None = None
    kinds: list[Annotated[str, msgspec.Meta(max_length=10)]] | None = None
    since: datetime | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None


@dataclass(slots=True)
class Ask:
    conversation: list[dict[str, Any]]  # what follows our instructions and sources
    question: str  # what is searched for
    filters: Filters
    stream: bool
    options: dict[str, Any]  # forwarded to the answer model (temperature, max_tokens, …)
    max_out: int | None


@dataclass(slots=True)
class Grounded:
    answer_id: uuid.UUID
    passages: list[Passage]
    payload: dict[str, Any]
    route: ResolvedRoute

    @property
    def mode(self) -> str:
        if not self.passages:
            return "none"
        return "extractive" if self.route is LOCAL else "generative"

    base_url: str
    question: str  # as kept: every finding in it masked

    def record(self, call: Call) -> Answer:
        """The answer as kept, for feedback to be read in context."""
        assert call.key is not None
        return Answer(
            id=self.answer_id,
            tenant_id=call.key.tenant_id,
            request_id=call.request_id,
            asked_by=f"key:{call.key.prefix}",
            key_id=call.key.id,
            question=self.question[:4000],
            mode=self.mode,
            model=self.route.alias if self.route is not LOCAL else None,
            citations=self.sources,
        )

    @property
    def sources(self) -> list[dict[str, Any]]:
        return [p.citation(self.base_url) for p in self.passages]

    def citations(self, cited: list[int]) -> list[dict[str, Any]]:
        by_n = {p.n: p for p in self.passages}
        return [by_n[n].citation(self.base_url) for n in cited if n in by_n]


def stored_question(content: Any, at: int, hits: list[dict[str, Any]] | None) -> str:
    """The question as kept with its answer: every finding in it — whatever the policy
    did with it (a flagged secret is still in the prompt) — replaced by its category."""
    where = f"messages[{at}].content"
    found = [
        h for h in hits or () if h.get("direction") == "input" and h["where"].startswith(where)
    ]
    if not isinstance(content, str):
        text = message_text(content)
        kinds = sorted({h["category"] for h in found})
        return f"[withheld: it contained {', '.join(kinds)}]" if kinds else text
    return masked(normalize(content), [(*h["span"], h["category"]) for h in found])


def masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with each (start, end, category) span replaced by `[CATEGORY]`."""
    return replace_spans(text, [(start, end, f"[{c.upper()}]") for start, end, c in spans])


async def masked_comment(gateway: Gateway, tenant_id: uuid.UUID, comment: str) -> str:
    """A free-text comment as stored: what the tenant's detectors find in it, masked."""
    policy = await gateway.policies.get(tenant_id)
    text = normalize(comment)
    return masked(text, [(f.start, f.end, f.category) for f in policy.inspector.inspect(text)])


def _unavailable(exc: Exception) -> GatewayError:
    # No index, no grounded answer: say so at once rather than answer ungrounded.
    log.warning("navigator_index_unavailable", error=str(exc)[:200])
    return GatewayError(
        503,
        "Navigator's index is unavailable right now; try again shortly",
        code="index_unavailable",
        retry_after=5,
    )


class StreamBroken(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


async def admit_search(gateway: Gateway, key: CachedKey, client_ip: str | None) -> None:
    """A search costs an embedding and two index walks: the key's plan, allowed models and
    rate limits apply to it as to an answer (it reserves no tokens and is not metered)."""
    call = Call(request_id=new_request_id(), endpoint="navigator.search", key=key)
    call.client_ip = client_ip
    try:
        gateway.allow(call, NAVIGATOR_ALIAS)
        await gateway.admit(call, LOCAL, 0, 0)
    except GatewayError as exc:
        raise PosturioError(
            exc.message,
            code=exc.code,
            status_code=exc.status,
            retry_after=int(exc.retry_after) if exc.retry_after else None,
        ) from None


class Answerer:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker

    # ------------------------------------------------------------ the governed flow

    def attach(self, gateway: Gateway) -> None:
        """Serve the extractive writer as the gateway's `navigator` provider (LOCAL's)."""
        if WRITER not in gateway.providers:
            gateway.providers[WRITER] = Writer(self._write)

    def _write(self, messages: list[dict[str, Any]]) -> str:
        return extractive_reply(messages, embedder(self.settings.navigator_model))

    async def ground(self, gateway: Gateway, call: Call, ask: Ask) -> Grounded:
        """Govern the question, retrieve, inspect the passages, build the prompt; record
        the answer."""
        key = call.key
        assert key is not None
        gateway.allow(call, NAVIGATOR_ALIAS)
        call.origin = "navigator"
        call.stream = ask.stream
        try:
            async with tenant_session(self.sessionmaker, key.tenant_id) as session:
                writer = await self._writer(gateway, session, key.tenant_id)
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(exc) from None
        # The caller's own words go through the gateway's governing step (size limits,
        # the full policy, the key's limits) before the retrieval, the costly part: a
        # blocked or refused question costs no embedding. The reservation covers the
        # passages it may be given.
        passages_max = self.settings.navigator_answer_passages
        max_out = ask.max_out or gateway.tier(call).max_output_tokens or 1024
        at = max(i for i, m in enumerate(ask.conversation) if m.get("role") == "user")
        asked_text = ask.conversation[at].get("content")  # before any redaction replaces it
        call.prompt_estimate = estimate_prompt(ask.conversation)
        served = await gateway.govern(
            call,
            writer,
            chat_segments({"messages": ask.conversation}),
            messages=len(ask.conversation),
            max_out=ask.max_out,
            reserve_out=max_out + PASSAGE_TOKENS * passages_max,
        )
        # A policy's reroute picks another model for a model call; an answer written
        # in-process (extractive, or "nothing found") never leaves the machine anyway.
        route = writer if writer is LOCAL else served
        model = await asyncio.to_thread(embedder, self.settings.navigator_model)
        vector = (await asyncio.to_thread(model.encode, [ask.question]))[0]
        # One unit of work: retrieval and the answer's record. The row is written here,
        # not by a worker, because the caller gets its id with the answer to send feedback
        # on it; it is one INSERT in a transaction already open.
        try:
            async with tenant_session(self.sessionmaker, key.tenant_id) as session:
                groups = await viewer_groups(session, key.tenant_id, key.id, key.scopes)
                filters = Filters(
                    ask.filters.source_ids, ask.filters.kinds, ask.filters.since, groups=groups
                )
                hits = await hybrid_search(
                    session,
                    key.tenant_id,
                    ask.question,
                    model,
                    k=passages_max * 2,
                    filters=filters,
                    vector=vector,
                )
                passages = await self._evidence(gateway, call, ask.question, hits)
                grounded = self._prompt(ask, passages, route if passages else LOCAL)
                grounded.question = stored_question(asked_text, at, call.hits)
                session.add(grounded.record(call))
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(exc) from None
        return grounded

    async def _evidence(
        self, gateway: Gateway, call: Call, question: str, hits: list[SearchHit]
    ) -> list[Passage]:
        """The passages to answer from — none when the best evidence is weak — as the
        model may read them: retrieved from approved documents, they are inspected under
        the tenant's policy but never block the question (Gateway.inspect_context): what
        the policy would not send is redacted, and it is flagged for review."""
        passages = relevant(
            hits, self.settings.navigator_min_similarity, self.settings.navigator_answer_passages
        )
        if weak_evidence(question, passages):
            return []
        holders = [{"text": p.content} for p in passages]
        segments = [
            Segment(f"sources[{p.n}]", h["text"], h, "text")
            for p, h in zip(passages, holders, strict=True)
        ]
        await gateway.inspect_context(call, segments)
        return [replace(p, text=h["text"]) for p, h in zip(passages, holders, strict=True)]

    def _prompt(self, ask: Ask, passages: list[Passage], route: ResolvedRoute) -> Grounded:
        messages = grounded_messages(ask.conversation, passages) if passages else ask.conversation
        payload = {**ask.options, "model": route.alias, "messages": messages, "stream": ask.stream}
        return Grounded(uuid.uuid4(), passages, payload, route, self.settings.base_url, "")

    async def _writer(
        self, gateway: Gateway, session: AsyncSession, tenant_id: uuid.UUID
    ) -> ResolvedRoute:
        """The route that writes this tenant's answers, or LOCAL (extractive)."""
        alias = await answer_model(session, tenant_id, self.settings)
        route = (await gateway.routes.get(tenant_id)).get(alias) if alias else None
        if route is not None and route.kind == "chat" and route.targets:
            return route
        return LOCAL

    async def complete(
        self, gateway: Gateway, call: Call, g: Grounded
    ) -> tuple[dict[str, Any], list[int]]:
        """The whole answer: an OpenAI chat completion body with citations cleaned."""
        call.prompt_estimate = estimate_chat(g.payload)
        body = (await gateway.complete(call, g.route, g.payload)).body
        cited: list[int] = []
        for choice in body.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                message["content"], cited = clean_citations(message["content"], len(g.passages))
        body["model"] = NAVIGATOR_ALIAS
        return body, cited

    async def open_stream(
        self, gateway: Gateway, call: Call, g: Grounded
    ) -> AsyncGenerator[bytes, None]:
        """The answer's event stream through the gateway's relay (the output guard, and
        metering when it ends), opened before any byte is sent: an upstream that fails
        first is still a plain error response."""
        call.prompt_estimate = estimate_chat(g.payload)
        opened = await gateway.open_stream(call, g.route, g.payload, False)
        # relay is an async generator (annotated as an iterator): closable, as _pump needs.
        relayed = gateway.relay(call, opened, gateway.stream_guard(call))
        return cast(AsyncGenerator[bytes, None], relayed)

    # ------------------------------------------------------------ the two doors

    async def answer_api(self, gateway: Gateway, call: Call, body: bytes, send: Send) -> None:
        """POST /api/navigator/answer: `{answer_id, mode, answer, citations}` or a stream of
        `sources`, `delta` … and `done` events."""
        _, data = parse(body, AskIn)
        question = data.question
        ask = Ask(
            conversation=[{"role": "user", "content": question}],
            question=question,
            filters=Filters(
                tuple(data.source_ids) if data.source_ids else None,
                tuple(data.kinds) if data.kinds else None,
                data.since,
            ),
            stream=data.stream,
            options={"max_tokens": data.max_tokens} if data.max_tokens else {},
            max_out=data.max_tokens,
        )
        g = await self.ground(gateway, call, ask)
        extra = {ANSWER_ID_HEADER: str(g.answer_id)}
        if not data.stream:
            completion, cited = await self.complete(gateway, call, g)
            answer = completion["choices"][0]["message"].get("content") or ""
            out = {
                "answer_id": str(g.answer_id),
                "mode": g.mode,
                "answer": answer,
                "citations": g.citations(cited),
                "request_id": call.request_id,
            }
            await send_json(send, call, 200, msgspec.json.encode(out), extra)
            return
        relayed = await self.open_stream(gateway, call, g)
        first = _event_bytes(
            "sources", {"answer_id": str(g.answer_id), "mode": g.mode, "sources": g.sources}
        )
        citing = CitationStream(len(g.passages))

        async def delta(text: str) -> None:
            await _event(send, "delta", {"text": text})

        if error := await _pump(send, call, extra, relayed, citing, delta, first):
            await _event(send, "error", error)
        else:
            await _event(
                send,
                "done",
                {
                    "cited": citing.cited,
                    "citations": g.citations(citing.cited),
                    "decision": call.decision,
                    "output_decision": call.output_decision,
                    "request_id": call.request_id,
                },
            )
        await send({"type": "http.response.body", "body": b""})

    async def v1_model(
        self, gateway: Gateway, call: Call, payload: dict[str, Any], shape: ChatShape, send: Send
    ) -> None:
        """The `navigator` model on /v1/chat/completions: the last user message is the
        question, the conversation is kept; the cited sources are listed at the end of the
        answer and in a `citations` field."""
        messages: list[dict[str, Any]] = payload["messages"]
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        question = message_text(users[-1].get("content")).strip() if users else ""
        if not question:
            raise invalid("the last user message must contain the question", "messages")
        ask = Ask(
            conversation=messages,
            question=question,
            filters=Filters(),
            stream=shape.stream,
            options={k: v for k, v in payload.items() if k not in _NOT_FORWARDED},
            max_out=shape.max_completion_tokens or shape.max_tokens,
        )
        g = await self.ground(gateway, call, ask)
        extra = {ANSWER_ID_HEADER: str(g.answer_id)}
        if not shape.stream:
            body, cited = await self.complete(gateway, call, g)
            message = body["choices"][0]["message"]
            message["content"] = (message.get("content") or "") + sources_footer(g.passages, cited)
            body["citations"] = g.citations(cited)
            await send_json(send, call, 200, msgspec.json.encode(body), extra)
            return
        relayed = await self.open_stream(gateway, call, g)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
            return sse(
                msgspec.json.encode(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": NAVIGATOR_ALIAS,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        **more,
                    }
                )
            )

        citing = CitationStream(len(g.passages))

        async def delta(text: str) -> None:
            await _body(send, chunk({"content": text}))

        first = chunk({"role": "assistant", "content": ""})
        if error := await _pump(send, call, extra, relayed, citing, delta, first):
            await _body(send, sse(msgspec.json.encode({"error": error})))
        else:
            footer = sources_footer(g.passages, citing.cited)
            await _body(
                send,
                chunk({"content": footer}, "stop", citations=g.citations(citing.cited)),
            )
            await _body(send, SSE_DONE)
        await send({"type": "http.response.body", "body": b""})


# ---------------------------------------------------------------- helpers


async def _pump(
    send: Send,
    call: Call,
    headers: dict[str, str],
    relayed: AsyncGenerator[bytes, None],
    cited: CitationStream,
    on_delta: Callable[[str], Awaitable[None]],
    first: bytes,
) -> dict[str, Any] | None:
    """Start the response, send `first`, then the answer's text deltas; the error to
    report if it broke off. Once the response has started, whatever fails ends it with an
    error event (a second response cannot be sent); the stream is closed whatever
    happens."""
    async with contextlib.aclosing(relayed):
        await _start_stream(send, call, headers)
        try:
            await _body(send, first)
            async for text in _texts(relayed, cited):
                await on_delta(text)
        except StreamBroken as broken:
            return broken.error
        except ConnectionResetError:
            raise
        except Exception:
            log.exception("navigator_stream_failed", request_id=call.request_id)
            call.status, call.error_code = 500, "server_error"
            return {
                "message": f"internal error (request id {call.request_id})",
                "type": "api_error",
                "param": None,
                "code": "server_error",
            }
    return None


async def _texts(relayed: AsyncGenerator[bytes, None], cited: CitationStream) -> AsyncIterator[str]:
    """The answer's text deltas with citations cleaned. Raises StreamBroken on a break."""
    async with contextlib.aclosing(relayed):
        async for delta in _deltas(relayed):
            if out := cited.feed(delta):
                yield out
    if rest := cited.flush():
        yield rest


async def _deltas(relayed: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The text deltas in a relayed OpenAI event stream (events may span chunks)."""
    buffer = b""
    async for chunk in relayed:
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]" or not data:
                    continue
                try:
                    obj = msgspec.json.decode(data)
                except msgspec.DecodeError:
                    continue  # not an event of ours (a provider's keep-alive, say)
                if not isinstance(obj, dict):
                    continue
                if isinstance(obj.get("error"), dict):
                    raise StreamBroken(obj["error"])
                for choice in obj.get("choices") or ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(content, str) and content:
                        yield content


async def _start_stream(send: Send, call: Call, extra: dict[str, str]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": response_headers(call, SSE, extra),
        }
    )


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


def _event_bytes(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + msgspec.json.encode(data) + b"\n\n"


async def _event(send: Send, name: str, data: dict[str, Any]) -> None:
    await _body(send, _event_bytes(name, data))


Authenticate = Callable[[Call], Awaitable[None]]


async def serve_answer(
    scope: dict[str, Any], receive: Receive, send: Send, authenticate: Authenticate
) -> None:
    """One answer request, however its caller is authenticated."""
    app = scope["app"]
    answerer: Answerer = app.state.answerer
    call = Call(request_id=current_request_id() or new_request_id(), endpoint="navigator.answer")
    await serve(app.state.gateway, call, scope, receive, send, answerer.answer_api, authenticate)


@asgi("/api/navigator/answer", include_in_schema=False, copy_scope=False)
async def answer_endpoint(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Grounded answers for a key with the gateway scope (see Answerer.answer_api)."""
    gateway: Gateway = scope["app"].state.gateway

    async def authenticate(call: Call) -> None:
        if scope["method"] != "POST":
            raise GatewayError(405, "use POST", code="method_not_allowed")
        await gateway.authenticate(call, scope_token(scope))

    await serve_answer(scope, receive, send, authenticate)
