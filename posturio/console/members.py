"""Console: the tenant's members. Admins and owners only; granting or taking away the
owner role needs an owner, and a tenant always keeps one owner (the accounts service
enforces both; refusals come back as a message on the page). Groups decide which
Navigator sources limited to groups a member may read."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.console.frame import (
    ConfirmForm,
    ConsoleController,
    Form,
    confirm_page,
    flash,
    page,
    refused,
)
from posturio.console.people import names
from posturio.platform import accounts, invitations
from posturio.platform.api import key_changed_everywhere
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import PosturioError
from posturio.platform.keyauth import ALL_KEYS
from posturio.platform.models import Invitation, Role
from posturio.platform.principal import Principal
from posturio.platform.repository import get_scoped
from posturio.platform.schemas import Groups

PAGE_SIZE = 50
BACK = "/console/members"


class InviteForm(msgspec.Struct):
    email: str = ""
    role: str = Role.member.value


class RoleForm(msgspec.Struct):
    role: str = ""


class GroupsForm(msgspec.Struct):
    groups: str = ""  # comma or space separated


def _groups(value: str) -> list[str]:
    names = [g for g in re.split(r"[,\s]+", value.strip()) if g]
    try:
        return msgspec.convert(names, Groups)
    except msgspec.ValidationError:
        raise PosturioError(
            "groups are up to 50 names of letters, digits and . _ : - (at most 64 each)"
        ) from None


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise PosturioError(f"unknown role {value[:40]!r}") from None


async def _members_page(
    request: Request,
    db: AsyncSession,
    principal: Principal,
    page_no: int,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Template:
    principal.require(Role.admin)
    views = await accounts.list_members(
        db, principal, limit=PAGE_SIZE + 1, offset=(page_no - 1) * PAGE_SIZE
    )
    more = len(views) > PAGE_SIZE
    pending = await invitations.pending(db, principal)
    # Owners may hand out every role; admins every role below owner.
    roles = [r.value for r in Role if r != Role.owner or principal.at_least(Role.owner)]
    return await page(
        request,
        db,
        principal,
        "console/members.html",
        active="Members",
        status_code=status_code,
        members=views[:PAGE_SIZE],
        invitations=pending,
        names=await names(db, principal.tenant_id, [i.invited_by for i in pending]),
        roles=roles,
        is_owner=principal.at_least(Role.owner),
        me=principal.user_id,
        next_url=f"{BACK}?page={page_no + 1}" if more else None,
        prev_url=f"{BACK}?page={page_no - 1}" if page_no > 1 else None,
        **extra,
    )


class MembersPage(ConsoleController):
    path = "/console/members"

    @get("/")
    async def list_members(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        page_no: Annotated[int, QueryParameter(name="page", ge=1, le=100_000)] = 1,
    ) -> Template:
        return await _members_page(request, db, principal, page_no)

    @post("/", status_code=201)
    async def invite(
        self, request: Request, db: Db, principal: Caller, data: Annotated[InviteForm, Form]
    ) -> Template | Redirect:
        """An invitation for anyone, new or with an account: the link is on this answer
        only (never stored or flashed), for the admin to hand to the person."""
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                new = await invitations.invite(db, principal, data.email, _role(data.role))
        except PosturioError as exc:
            return refused(request, exc, BACK)
        link = str(request.base_url).rstrip("/") + new.accept_path
        return await _members_page(
            request, db, principal, 1, invited=new.invitation, invite_link=link, status_code=201
        )

    @post("/invitations/{invitation_id:str}/revoke", status_code=303)
    async def revoke_invitation(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        invitation_id: FromPath[str],
        data: Annotated[ConfirmForm, Form],
    ) -> Redirect | Template:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                if data.confirm != "yes":
                    invitation = await get_scoped(
                        db, Invitation, principal.tenant_id, invitation_id, "invitation"
                    )
                    return await confirm_page(
                        request,
                        db,
                        principal,
                        question=f"Revoke the invitation for {invitation.email}?",
                        consequence=(
                            "Its link stops working at once; inviting again makes a new link."
                        ),
                        action=f"{BACK}/invitations/{invitation_id}/revoke",
                        button="Revoke the invitation",
                        back=BACK,
                        active="Members",
                    )
                await invitations.revoke(db, principal, invitation_id)
        except PosturioError as exc:
            return refused(request, exc, BACK)
        flash(request, "Invitation revoked: its link no longer works.")
        return Redirect(BACK, status_code=303)

    @post("/{member_id:str}/role", status_code=303)
    async def change_role(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        member_id: FromPath[str],
        data: Annotated[RoleForm, Form],
    ) -> Redirect:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                view = await accounts.change_role(db, principal, member_id, _role(data.role))
        except PosturioError as exc:
            return refused(request, exc, BACK)
        await key_changed_everywhere(request, db, ALL_KEYS)  # their keys follow the new role
        flash(request, f"{view.email} is now {view.membership.role}.")
        return Redirect(BACK, status_code=303)

    @post("/{member_id:str}/groups", status_code=303)
    async def change_groups(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        member_id: FromPath[str],
        data: Annotated[GroupsForm, Form],
    ) -> Redirect:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                view = await accounts.set_groups(db, principal, member_id, _groups(data.groups))
        except PosturioError as exc:
            return refused(request, exc, BACK)
        groups = ", ".join(view.membership.groups) or "none"
        flash(request, f"{view.email}'s groups: {groups}.")
        return Redirect(BACK, status_code=303)

    @post("/{member_id:str}/remove", status_code=303)
    async def remove(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        member_id: FromPath[str],
        data: Annotated[ConfirmForm, Form],
    ) -> Redirect | Template:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                if data.confirm != "yes":
                    view = await accounts.member(db, principal, member_id)
                    return await confirm_page(
                        request,
                        db,
                        principal,
                        question=f"Remove {view.email} from this tenant?",
                        consequence=(
                            f"{view.email} loses access at once and every key they hold here stops "
                            "working; their account stays, and an invitation brings them back."
                        ),
                        action=f"{BACK}/{member_id}/remove",
                        button=f"Remove {view.email}",
                        back=BACK,
                        active="Members",
                    )
                await accounts.remove_member(db, principal, member_id)
        except PosturioError as exc:
            return refused(request, exc, BACK)
        await key_changed_everywhere(request, db, ALL_KEYS)  # their keys stop at once
        flash(request, "Member removed.")
        return Redirect(BACK, status_code=303)
