"""Investigations: a case that collects requests (and so their review items), a timeline of
notes and events, an assignee and a status, and saved views of the request log — the
saved context that lets a reviewer stop and resume, or hand the case over."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import (
    Investigation,
    InvestigationLink,
    InvestigationNote,
    SavedView,
)
from posturio.gateway.request_log import RequestFilter, existing
from posturio.platform import audit
from posturio.platform.db import utcnow
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.models import Membership, Role
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped, scoped

Status = Literal["open", "in_review", "closed"]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class InvestigationIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    request_ids: Annotated[list[RequestId], msgspec.Meta(max_length=500)] = []


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class ViewIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Title
    filters: RequestFilter


class UpdateIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    status: Status | None = None
    assignee_id: uuid.UUID | None = None
    unassign: bool = False
    title: Title | None = None


@dataclass(slots=True)
class InvestigationDetail:
    investigation: Investigation
    links: list[InvestigationLink]
    notes: list[InvestigationNote]
    views: list[SavedView]


async def _get(session: AsyncSession, principal: Principal, case_id: str) -> Investigation:
    principal.require(Role.reviewer)
    return await get_scoped(session, Investigation, principal.tenant_id, case_id, "investigation")


async def _event(
    session: AsyncSession, principal: Principal, case: Investigation, body: str
) -> None:
    session.add(
        InvestigationNote(
            tenant_id=principal.tenant_id,
            investigation_id=case.id,
            author=principal.actor,
            kind="event",
            body=body,
        )
    )
    case.updated_at = utcnow()


async def create(
    session: AsyncSession, principal: Principal, data: InvestigationIn
) -> Investigation:
    principal.require(Role.reviewer)
    case = Investigation(
        tenant_id=principal.tenant_id,
        title=data.title.strip(),
        status="open",
        created_by=principal.actor,
    )
    session.add(case)
    await session.flush()
    await _event(session, principal, case, "opened")
    if data.request_ids:
        await link(session, principal, str(case.id), data.request_ids)
    await audit.by(
        session,
        principal,
        action="investigation.create",
        target_type="investigation",
        target_id=str(case.id),
        data={"title": case.title, "requests": len(data.request_ids)},
    )
    return case


async def link(
    session: AsyncSession, principal: Principal, case_id: str, request_ids: list[str]
) -> list[str]:
    case = await _get(session, principal, case_id)
    found = set(await existing(session, principal, request_ids))
    missing = [r for r in request_ids if r not in found]
    if missing:
        raise NotFound(f"unknown request id(s): {', '.join(missing[:5])}")
    linked = {
        link.request_id
        for link in (
            await session.scalars(
                scoped(InvestigationLink, principal.tenant_id).where(
                    InvestigationLink.investigation_id == case.id
                )
            )
        ).all()
    }
    added = [r for r in dict.fromkeys(request_ids) if r not in linked]
    for request_id in added:
        session.add(
            InvestigationLink(
                tenant_id=principal.tenant_id,
                investigation_id=case.id,
                request_id=request_id,
                added_by=principal.actor,
            )
        )
    if added:
        await _event(session, principal, case, f"linked request(s) {', '.join(added)}")
    return added


async def add_note(
    session: AsyncSession, principal: Principal, case_id: str, body: str
) -> InvestigationNote:
    case = await _get(session, principal, case_id)
    note = InvestigationNote(
        tenant_id=principal.tenant_id,
        investigation_id=case.id,
        author=principal.actor,
        kind="note",
        body=body.strip(),
    )
    session.add(note)
    case.updated_at = utcnow()
    await session.flush()
    return note


async def update(
    session: AsyncSession, principal: Principal, case_id: str, data: UpdateIn
) -> Investigation:
    case = await _get(session, principal, case_id)
    if data.title is not None and data.title.strip() != case.title:
        await _event(session, principal, case, f"renamed from {case.title!r}")
        case.title = data.title.strip()
    if data.status is not None and data.status != case.status:
        await _event(session, principal, case, f"status {case.status} → {data.status}")
        case.status = data.status
    if data.unassign and case.assignee_id is not None:
        case.assignee_id = None
        await _event(session, principal, case, "unassigned")
    elif data.assignee_id is not None and data.assignee_id != case.assignee_id:
        member = (
            await session.scalars(
                scoped(Membership, principal.tenant_id).where(
                    Membership.user_id == data.assignee_id
                )
            )
        ).first()
        if member is None or Role(member.role) == Role.member:
            raise PosturioError("assign to a reviewer, admin or owner of this tenant")
        case.assignee_id = data.assignee_id
        await _event(session, principal, case, "assigned")
    return case


async def save_view(
    session: AsyncSession, principal: Principal, case_id: str, data: ViewIn
) -> SavedView:
    case = await _get(session, principal, case_id)
    view = SavedView(
        tenant_id=principal.tenant_id,
        investigation_id=case.id,
        name=data.name.strip(),
        filters=msgspec.to_builtins(data.filters),
        created_by=principal.actor,
    )
    session.add(view)
    await session.flush()
    await _event(session, principal, case, f"saved view {view.name!r}")
    return view


async def view(session: AsyncSession, principal: Principal, view_id: str) -> SavedView:
    principal.require(Role.reviewer)
    return await get_scoped(session, SavedView, principal.tenant_id, view_id, "saved view")


async def get(session: AsyncSession, principal: Principal, case_id: str) -> InvestigationDetail:
    case = await _get(session, principal, case_id)

    async def rows(model: Any, order: Any) -> list[Any]:
        stmt = scoped(model, principal.tenant_id).where(model.investigation_id == case.id)
        return list((await session.scalars(stmt.order_by(order))).all())

    return InvestigationDetail(
        case,
        await rows(InvestigationLink, InvestigationLink.added_at),
        await rows(InvestigationNote, InvestigationNote.created_at),
        await rows(SavedView, SavedView.created_at),
    )


async def listing(
    session: AsyncSession, principal: Principal, status: str | None = None, limit: int = 100
) -> list[Investigation]:
    principal.require(Role.reviewer)
    stmt = scoped(Investigation, principal.tenant_id)
    if status:
        stmt = stmt.where(Investigation.status == status)
    return list(
        (await session.scalars(stmt.order_by(Investigation.updated_at.desc()).limit(limit))).all()
    )
