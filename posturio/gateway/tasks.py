"""Gateway jobs: drain the usage stream into Postgres (scheduled every second); classify a
served request for prompt injection after the fact (classify_injection, enqueued by the
drain once the request's row is committed)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.inspection.classifier import RULE_ID, Score, classifier
from posturio.gateway.inspection.engine import Inspector
from posturio.gateway.models import PolicyDecision, UsageEvent
from posturio.gateway.policy.evaluate import (
    QUOTE_CHARS,
    SNAPSHOT_CHARS,
    classifier_finding,
    clip,
    fingerprint_key,
)
from posturio.gateway.usage import (
    GROUP,
    STREAM,
    UsageRecord,
    consumer_name,
    ensure_group,
    parse_entries,
    store,
)
from posturio.platform.jobs.actors import system_actor, tenant_actor
from posturio.platform.jobs.outbox import defer
from posturio.platform.jobs.runtime import resources, unit_of_work
from posturio.platform.repository import scoped

log = structlog.get_logger("posturio.usage")
BATCH = 20  # stream entries per read; each holds up to 500 usage records
MAX_BATCHES_PER_RUN = 20
RECLAIM_IDLE_MS = 60_000


async def _process(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    redis = resources().redis
    by_tenant, poison = parse_entries(entries)
    stored = 0
    for tenant_id, rows in by_tenant.items():
        async with unit_of_work(tenant_id) as session:
            stored += await store(session, rows)
            owed = [_deferred(r) for r in rows if r.classify is not None]
            if owed:  # one job for the batch, sent once this transaction commits
                defer(session, classify_injection, str(tenant_id), owed)
    # Acknowledge only after every tenant's transaction committed: a crash before this
    # line leaves the entries pending, and they are claimed again (inserts are idempotent).
    ids = [entry_id for entry_id, _ in entries]
    if ids:
        await redis.xack(STREAM, GROUP, *ids)
    if poison:
        log.error("usage_poison_entries_skipped", count=len(poison))
    return stored


@system_actor(max_retries=0, time_limit=60_000)
async def drain_usage() -> None:
    redis = resources().redis
    await ensure_group(redis)
    me = consumer_name()
    stored = 0
    # Entries another consumer took and never acknowledged (it died): take them over.
    # Redis 6.2 answers [next, entries]; 7+ adds the ids of deleted entries.
    # redis-py types stream replies loosely (bytes | str, one union for every reply shape).
    reclaimed: Any = await redis.xautoclaim(
        STREAM, GROUP, me, min_idle_time=RECLAIM_IDLE_MS, start_id="0-0", count=BATCH
    )
    claimed = reclaimed[1]
    if claimed:
        stored += await _process(claimed)
    for _ in range(MAX_BATCHES_PER_RUN):
        response: Any = await redis.xreadgroup(GROUP, me, {STREAM: ">"}, count=BATCH)
        entries = response[0][1] if response else []
        if not entries:
            break
        stored += await _process(entries)
        if len(entries) < BATCH:
            break
    if stored:
        log.debug("usage_drained", stored=stored)  # every second under traffic: routine


# ------------------------------------------------------------ injection classifier, deferred


def _deferred(r: UsageRecord) -> tuple[str, dict[str, Any], list[list[str]]]:
    """classify_injection's (request id, call, segments) for a stored request that owes
    the classifier."""
    assert r.classify is not None
    call = {
        "occurred_at": r.occurred_at.isoformat(),
        "key_id": str(r.key_id) if r.key_id else None,
        "alias": r.alias,
        "origin": r.origin,
        "policy_id": str(r.classify.policy_id) if r.classify.policy_id else None,
        "policy_version": r.classify.policy_version,
        "rule_id": r.classify.rule_id,
    }
    return r.request_id, call, r.classify.segments


class UsageNotStoredYet(Exception):
    """The request's usage record (and any decision it carries) is not drained yet."""


@tenant_actor(max_retries=10, min_backoff=1_000, max_backoff=30_000, time_limit=120_000)
async def classify_injection(
    tenant_id: str, requests: list[tuple[str, dict[str, Any], list[list[str]]]]
) -> None:
    """The injection classifier on requests already served (their policy flags injection
    and blocks or reroutes on none, so the model did not run inline). When it fires, a
    request's input decision gains the finding, or one is created: a review-queue item.
    Enqueued by the usage drain (_process) after the requests' rows commit, one job per
    drained batch of a tenant: a job per request cost more in queueing than the
    classifier itself, on the cores the gateway serves from.

    Each request: (request id, `call`, `segments`). `call`: occurred_at (ISO), key_id,
    alias, origin, policy_id, policy_version, rule_id (the flag rule). `segments`: [where,
    text] with every detected value already masked (policy.evaluate.masked_segments).
    Runs after the usage drain stored the requests, so that a decision the hot path
    recorded is extended rather than raced."""
    texts = [text for _, _, segments in requests for _where, text in segments]
    scores = await asyncio.to_thread(classifier().score_many, texts)
    fired = []
    at = 0
    for request_id, call, segments in requests:
        mine, at = scores[at : at + len(segments)], at + len(segments)
        hits = [(w, t, s) for (w, t), s in zip(segments, mine, strict=True) if s.fired]
        if hits:
            fired.append((request_id, call, segments, hits))
    if not fired:
        return
    tid = uuid.UUID(tenant_id)
    settings = resources().settings
    inspector = Inspector(fingerprint_key(settings.resolved_secret_key().encode(), tid))
    async with unit_of_work(tid) as session:
        for request_id, call, segments, hits in fired:
            await _flag(session, tid, request_id, call, segments, _findings(hits, call, inspector))


def _findings(
    hits: list[tuple[str, str, Score]], call: dict[str, Any], inspector: Inspector
) -> list[dict[str, Any]]:
    findings = []
    for where, text, score in hits:
        finding = classifier_finding(text, score, inspector)
        quote = text[finding.start : finding.end]
        findings.append(
            {
                **finding.as_dict(),
                "preview": clip(quote, QUOTE_CHARS),
                "where": where,
                "action": "flag",
                "policy_rule": call["rule_id"],
                "deferred": True,
            }
        )
    return findings


async def _flag(
    session: AsyncSession,
    tid: uuid.UUID,
    request_id: str,
    call: dict[str, Any],
    segments: list[list[str]],
    findings: list[dict[str, Any]],
) -> None:
    """The request's input decision gains the findings, or one is created (flag)."""
    stored = await session.scalar(
        scoped(UsageEvent, tid)
        .where(UsageEvent.request_id == request_id)
        .with_only_columns(UsageEvent.request_id)
    )
    if stored is None:
        raise UsageNotStoredYet(request_id)  # the job is retried with backoff
    decision = await session.scalar(
        scoped(PolicyDecision, tid).where(
            PolicyDecision.request_id == request_id, PolicyDecision.direction == "input"
        )
    )
    if decision is not None:
        if any(f.get("rule") == RULE_ID for f in decision.findings):
            return  # a retry after a commit: already there
        decision.findings = [*decision.findings, *findings]
        if decision.action == "allow":
            decision.action, decision.rule_id = "flag", call["rule_id"]
        return
    session.add(
        PolicyDecision(
            tenant_id=tid,
            request_id=request_id,
            direction="input",
            occurred_at=datetime.fromisoformat(call["occurred_at"]),
            key_id=uuid.UUID(call["key_id"]) if call.get("key_id") else None,
            alias=call.get("alias"),
            origin=call.get("origin", "api"),
            action="flag",
            rule_id=call["rule_id"],
            shadow=False,
            policy_id=uuid.UUID(call["policy_id"]) if call.get("policy_id") else None,
            policy_version=int(call.get("policy_version", 0)),
            findings=findings,
            snapshot="\n".join(f"{w}: {t}" for w, t in segments)[:SNAPSHOT_CHARS],
        )
    )
