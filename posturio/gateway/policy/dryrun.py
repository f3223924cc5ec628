"""Run a prompt through a policy without calling upstream: the findings, the decision and
the prompt as it would be sent. Used by the admin API, the CLI and the console."""

from __future__ import annotations

import copy
import uuid
from typing import Annotated, Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.inspection.segments import chat_segments, embeddings_segments
from posturio.gateway.policy.evaluate import (
    CompiledPolicy,
    Context,
    Labels,
    fingerprint_key,
    redact,
)
from posturio.gateway.policy.schema import Direction, Origin, PolicyDoc, validate
from posturio.gateway.policy.store import aliases, in_force
from posturio.platform.errors import PosturioError
from posturio.platform.keys import get_key
from posturio.platform.models import Role
from posturio.platform.principal import Principal

MAX_TEXT = 1_000_000


class DryRunIn(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of messages (chat), input (embeddings) or text."""

    messages: list[dict[str, Any]] | None = None
    input: str | list[str] | None = None
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] | None = None
    model: Annotated[str, msgspec.Meta(max_length=200)] = ""
    key_id: uuid.UUID | None = None
    origin: Origin = "api"
    direction: Direction = "input"
    policy: PolicyDoc | None = None  # a candidate to try instead of the policy in force


class DryRunOut(msgspec.Struct):
    policy: str
    decision: str
    rule: str | None
    reroute_to: str | None
    findings_summary: str
    findings: list[dict[str, Any]]
    redacted: Any
    blocked_message: str | None = None


async def dry_run(
    session: AsyncSession, principal: Principal, secret: bytes, data: DryRunIn
) -> DryRunOut:
    principal.require(Role.reviewer)
    given = [x is not None for x in (data.messages, data.input, data.text)]
    if sum(given) != 1:
        raise PosturioError("give exactly one of messages, input or text", code="invalid_request")
    key = fingerprint_key(secret, principal.tenant_id)
    if data.policy is not None:
        doc = validate(data.policy, await aliases(session, principal.tenant_id))
        policy = CompiledPolicy(None, -1, doc, key)
    else:
        row, doc = await in_force(session, principal.tenant_id)
        policy = CompiledPolicy(row.id if row else None, row.version if row else 0, doc, key)
    tags: frozenset[str] = frozenset()
    if data.key_id is not None:
        tags = frozenset((await get_key(session, principal, str(data.key_id))).tags)
    ctx = Context(data.key_id, tags, data.model, data.origin, data.direction)
    if data.messages is not None:
        payload: dict[str, Any] = {"messages": copy.deepcopy(data.messages)}
        segments = chat_segments(payload)
    elif data.input is not None:
        payload = {"input": copy.deepcopy(data.input)}
        segments = embeddings_segments(payload)
    else:
        payload = {"input": data.text}
        segments = embeddings_segments(payload)
    verdict = await policy.evaluate_off_loop(segments, ctx)
    blocked = verdict.block_message()
    if blocked is None:
        redact(segments, verdict, Labels())
    return DryRunOut(
        policy=policy.label if data.policy is None else "candidate",
        decision=verdict.action,
        rule=verdict.rule.id if verdict.rule else None,
        reroute_to=verdict.reroute_to,
        findings_summary=verdict.findings_header(),
        findings=[h.as_dict() for h in verdict.hits],
        redacted=None if blocked else payload.get("messages", payload.get("input")),
        blocked_message=blocked,
    )
