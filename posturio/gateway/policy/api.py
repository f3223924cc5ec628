"""Admin API of the policy: the version in force, history, changes (each a new version),
rollback, dry-run, and the decision records behind the review queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter

from posturio.gateway.models import Policy, PolicyDecision
from posturio.gateway.policy import store
from posturio.gateway.policy.dryrun import DryRunIn, DryRunOut, dry_run
from posturio.gateway.policy.schema import DEFAULT_POLICY, PolicyDoc, to_builtins
from posturio.platform.dependencies import (
    Caller,
    Db,
    provide_api_principal,
    provide_tenant_db,
)
from posturio.platform.invalidation import POLICIES
from posturio.platform.models import Role
from posturio.platform.tenant_cache import invalidate_after_commit

# A version number as the column holds it (int4): larger ones are a 400, not a database error.
VersionNumber = Annotated[int, PathParameter(ge=0, le=2**31 - 1)]


class PolicyOut(msgspec.Struct):
    id: str | None
    version: int
    comment: str
    created_by: str | None
    created_at: datetime | None
    document: dict[str, Any]


class PolicyIn(msgspec.Struct, forbid_unknown_fields=True):
    document: PolicyDoc
    comment: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True):
    status: str


class DecisionOut(msgspec.Struct):
    id: str
    request_id: str
    direction: str
    occurred_at: datetime
    key_id: str | None
    alias: str | None
    origin: str
    action: str
    rule_id: str | None
    shadow: bool
    policy_id: str | None
    policy_version: int
    findings: list[dict[str, Any]]
    snapshot: str
    status: str
    reviewed_by: str | None
    reviewed_at: datetime | None


def policy_out(row: Policy | None) -> PolicyOut:
    if row is None:
        return PolicyOut(None, 0, "built-in default", None, None, to_builtins(DEFAULT_POLICY))
    return PolicyOut(
        str(row.id), row.version, row.comment, row.created_by, row.created_at, row.document
    )


def decision_out(d: PolicyDecision) -> DecisionOut:
    return DecisionOut(
        id=str(d.id),
        request_id=d.request_id,
        direction=d.direction,
        occurred_at=d.occurred_at,
        key_id=str(d.key_id) if d.key_id else None,
        alias=d.alias,
        origin=d.origin,
        action=d.action,
        rule_id=d.rule_id,
        shadow=d.shadow,
        policy_id=str(d.policy_id) if d.policy_id else None,
        policy_version=d.policy_version,
        findings=d.findings,
        snapshot=d.snapshot,
        status=d.status,
        reviewed_by=d.reviewed_by,
        reviewed_at=d.reviewed_at,
    )


def policy_changed(request: Request, db: Db, tenant_id: uuid.UUID) -> None:
    state = request.app.state
    invalidate_after_commit(db, state.redis, state.gateway.policies, POLICIES, tenant_id)


class PolicyApi(Controller):
    path = "/api"
    tags = ["policy"]
    dependencies = {"principal": Provide(provide_api_principal), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @get("/policy", summary="The policy in force (version 0 is the built-in default)")
    async def get_policy(self, db: Db, principal: Caller) -> PolicyOut:
        principal.require(Role.reviewer)
        return policy_out(await store.latest(db, principal.tenant_id))

    @put("/policy", summary="Change the policy: saved as a new version, audited, applied at once")
    async def put_policy(
        self, request: Request, db: Db, principal: Caller, data: JSONBody[PolicyIn]
    ) -> PolicyOut:
        row = await store.save(db, principal, data.document, data.comment)
        policy_changed(request, db, principal.tenant_id)
        return policy_out(row)

    @get("/policy/versions", summary="Every version, newest first")
    async def list_versions(self, db: Db, principal: Caller) -> list[PolicyOut]:
        principal.require(Role.reviewer)
        return [policy_out(r) for r in await store.versions(db, principal.tenant_id)]

    @get("/policy/versions/{number:int}", summary="One version")
    async def get_version(self, db: Db, principal: Caller, number: VersionNumber) -> PolicyOut:
        principal.require(Role.reviewer)
        return policy_out(await store.version(db, principal.tenant_id, number))

    @post("/policy/versions/{number:int}/restore", summary="Make an old version current again")
    async def restore(
        self, request: Request, db: Db, principal: Caller, number: VersionNumber
    ) -> PolicyOut:
        row = await store.rollback_to(db, principal, number)
        policy_changed(request, db, principal.tenant_id)
        return policy_out(row)

    @post(
        "/policy/dry-run",
        summary="Findings and decision for a prompt; nothing is sent",
        status_code=200,
    )
    async def dry_run(
        self, request: Request, db: Db, principal: Caller, data: JSONBody[DryRunIn]
    ) -> DryRunOut:
        secret = request.app.state.settings.resolved_secret_key().encode()
        return await dry_run(db, principal, secret, data)

    @get("/decisions", summary="Policy decisions (the review queue), newest first")
    async def list_decisions(
        self,
        db: Db,
        principal: Caller,
        status: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[DecisionOut]:
        rows = await store.decisions(db, principal, status=status, action=action, limit=limit)
        return [decision_out(d) for d in rows]

    @get("/decisions/{decision_id:str}", summary="One decision record")
    async def get_decision(
        self, db: Db, principal: Caller, decision_id: FromPath[str]
    ) -> DecisionOut:
        return decision_out(await store.decision(db, principal, decision_id))

    @post(
        "/decisions/{decision_id:str}/review",
        summary="Mark a decision confirmed or dismissed",
        status_code=200,
    )
    async def review(
        self, db: Db, principal: Caller, decision_id: FromPath[str], data: JSONBody[ReviewIn]
    ) -> DecisionOut:
        return decision_out(await store.review(db, principal, decision_id, data.status))
