"""Admin API behind the console's reviewer pages: the request log, the review queue and
its actions, investigations with links, notes and saved views. Same roles as the pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from posturio.gateway import investigations, request_log, review
from posturio.gateway.api import event_out
from posturio.gateway.models import Investigation
from posturio.gateway.policy.api import DecisionOut, decision_out, policy_changed
from posturio.gateway.request_log import RequestFilter
from posturio.gateway.schemas import UsageEventOut
from posturio.platform.dependencies import Caller, Db, provide_api_principal, provide_tenant_db
from posturio.platform.errors import PosturioError


class RequestPage(msgspec.Struct):
    items: list[UsageEventOut]
    next_before: str | None  # pass as `before` for the next (older) page


class RequestDetail(msgspec.Struct):
    request: UsageEventOut
    decisions: list[DecisionOut]


Fingerprint = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{24}$")]


class FalsePositiveIn(msgspec.Struct, forbid_unknown_fields=True):
    # Allowlisting is explicit: the fingerprints to allowlist, as GET .../allowlist lists
    # them with the rules each silences (`true` is refused: it named nothing).
    allowlist: Annotated[list[Fingerprint], msgspec.Meta(max_length=100)] | bool = False
    policy_version: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None


class FalsePositiveOut(msgspec.Struct):
    decision: DecisionOut
    policy_version: int | None  # the new version, when values were allowlisted
    undo_version: int | None  # restore it to undo (POST /api/policy/versions/{n}/restore)


class SilencedOut(msgspec.Struct):
    policy_rule: str
    action: str
    direction: str
    shadow: bool


class AllowlistEntryOut(msgspec.Struct):
    fingerprint: str
    category: str
    rule: str
    preview: str
    where: str
    silences: list[SilencedOut]


class AllowlistPlanOut(msgspec.Struct):
    decision_id: str
    policy_version: int  # pass it back: a policy changed meanwhile is refused (409)
    entries: list[AllowlistEntryOut]
    scope: str


ALLOWLIST_SCOPE = (
    "An allowlisted fingerprint is the keyed hash of one exact value: every detector stops "
    "reporting that value in every request of this tenant, so none of the rules listed "
    "acts on it any more. Saved as a new policy version; restoring the previous one undoes it."
)


def plan_out(plan: review.Plan) -> AllowlistPlanOut:
    return AllowlistPlanOut(
        str(plan.decision.id),
        plan.policy_version,
        [
            AllowlistEntryOut(
                e.fingerprint,
                e.category,
                e.rule,
                e.preview,
                e.where,
                [SilencedOut(s.policy_rule, s.action, s.direction, s.shadow) for s in e.silences],
            )
            for e in plan.entries
        ],
        ALLOWLIST_SCOPE,
    )


class AssignIn(msgspec.Struct, forbid_unknown_fields=True):
    user_id: uuid.UUID | None


class InvestigationOut(msgspec.Struct):
    id: str
    title: str
    status: str
    assignee_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class InvestigationDetailOut(msgspec.Struct):
    investigation: InvestigationOut
    request_ids: list[str]
    timeline: list[dict[str, Any]]
    views: list[dict[str, Any]]


def investigation_out(i: Investigation) -> InvestigationOut:
    return InvestigationOut(
        str(i.id),
        i.title,
        i.status,
        str(i.assignee_id) if i.assignee_id else None,
        i.created_by,
        i.created_at,
        i.updated_at,
    )


def detail_out(case: investigations.InvestigationDetail) -> InvestigationDetailOut:
    return InvestigationDetailOut(
        investigation_out(case.investigation),
        [link.request_id for link in case.links],
        [
            {"kind": n.kind, "author": n.author, "body": n.body, "at": n.created_at}
            for n in case.notes
        ],
        [{"id": str(v.id), "name": v.name, "filters": v.filters} for v in case.views],
    )


class InvestigationsApi(Controller):
    path = "/api"
    tags = ["review"]
    dependencies = {"principal": Provide(provide_api_principal), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @get("/requests", summary="The request log, newest first, filtered; keyset pages")
    async def requests(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        before: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> RequestPage:
        f = RequestFilter.parse(dict(request.query_params))
        rows, next_before = await request_log.search(db, principal, f, before=before, limit=limit)
        return RequestPage([event_out(e) for e in rows], next_before)

    @get("/requests/{request_id:str}", summary="One request with its policy decisions")
    async def request_detail(
        self, db: Db, principal: Caller, request_id: FromPath[str]
    ) -> RequestDetail:
        event, decisions = await request_log.detail(db, principal, request_id)
        return RequestDetail(event_out(event), [decision_out(d) for d in decisions])

    @get("/review-queue", summary="Open blocked and flagged items, oldest first")
    async def queue(
        self, db: Db, principal: Caller, mine: FromQuery[bool] = False
    ) -> list[DecisionOut]:
        return [decision_out(d) for d in await review.queue(db, principal, mine=mine)]

    @get(
        "/decisions/{decision_id:str}/allowlist",
        summary="What allowlisting a decision's values would change (admins); changes nothing",
    )
    async def allowlist_plan(
        self, db: Db, principal: Caller, decision_id: FromPath[str]
    ) -> AllowlistPlanOut:
        return plan_out(await review.allowlist_plan(db, principal, decision_id))

    @post(
        "/decisions/{decision_id:str}/false-positive",
        summary="Dismiss as a false positive; allowlist named values (admins) as a new version",
        status_code=200,
    )
    async def false_positive(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        decision_id: FromPath[str],
        data: JSONBody[FalsePositiveIn],
    ) -> FalsePositiveOut:
        if data.allowlist is True:
            raise PosturioError(
                "name the values to allowlist: `allowlist` takes the fingerprints that GET "
                f"/api/decisions/{decision_id}/allowlist lists with the rules each silences",
                code="invalid_allowlist",
            )
        row, version = await review.false_positive(
            db,
            principal,
            decision_id,
            allowlist=data.allowlist or None,
            policy_version=data.policy_version,
        )
        if version is None:
            return FalsePositiveOut(decision_out(row), None, None)
        policy_changed(request, db, principal.tenant_id)
        return FalsePositiveOut(decision_out(row), version.version, version.version - 1)

    @post("/decisions/{decision_id:str}/assign", status_code=200)
    async def assign(
        self, db: Db, principal: Caller, decision_id: FromPath[str], data: JSONBody[AssignIn]
    ) -> DecisionOut:
        return decision_out(await review.assign(db, principal, decision_id, data.user_id))

    @get("/investigations", summary="Investigations, most recently active first")
    async def list_cases(
        self, db: Db, principal: Caller, status: FromQuery[str | None] = None
    ) -> list[InvestigationOut]:
        return [investigation_out(i) for i in await investigations.listing(db, principal, status)]

    @post("/investigations", summary="Open an investigation, optionally with requests")
    async def create_case(
        self, db: Db, principal: Caller, data: JSONBody[investigations.InvestigationIn]
    ) -> InvestigationDetailOut:
        case = await investigations.create(db, principal, data)
        return detail_out(await investigations.get(db, principal, str(case.id)))

    @get("/investigations/{case_id:str}", summary="One investigation with its timeline")
    async def get_case(
        self, db: Db, principal: Caller, case_id: FromPath[str]
    ) -> InvestigationDetailOut:
        return detail_out(await investigations.get(db, principal, case_id))

    @patch("/investigations/{case_id:str}", summary="Status, assignee or title")
    async def update_case(
        self,
        db: Db,
        principal: Caller,
        case_id: FromPath[str],
        data: JSONBody[investigations.UpdateIn],
    ) -> InvestigationDetailOut:
        await investigations.update(db, principal, case_id, data)
        return detail_out(await investigations.get(db, principal, case_id))

    @post("/investigations/{case_id:str}/requests", summary="Link requests")
    async def link(
        self,
        db: Db,
        principal: Caller,
        case_id: FromPath[str],
        data: JSONBody[list[investigations.RequestId]],
    ) -> InvestigationDetailOut:
        await investigations.link(db, principal, case_id, data)
        return detail_out(await investigations.get(db, principal, case_id))

    @post("/investigations/{case_id:str}/notes", summary="Add a note to the timeline")
    async def note(
        self,
        db: Db,
        principal: Caller,
        case_id: FromPath[str],
        data: JSONBody[investigations.NoteIn],
    ) -> InvestigationDetailOut:
        await investigations.add_note(db, principal, case_id, data.body)
        return detail_out(await investigations.get(db, principal, case_id))

    @post("/investigations/{case_id:str}/views", summary="Save a view of the request log")
    async def save_view(
        self,
        db: Db,
        principal: Caller,
        case_id: FromPath[str],
        data: JSONBody[investigations.ViewIn],
    ) -> InvestigationDetailOut:
        await investigations.save_view(db, principal, case_id, data)
        return detail_out(await investigations.get(db, principal, case_id))
