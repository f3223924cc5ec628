"""Signing in and out of the console, accepting an invitation, and switching tenant:
server-side sessions in Redis, a new session id at every sign-in and privilege change."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import FromPath
from litestar.response import Redirect, Template
from redis.asyncio import Redis

from posturio.console.frame import ConsoleController, Form
from posturio.platform import accounts, audit, invitations, sessions
from posturio.platform.db import switch_tenant
from posturio.platform.dependencies import Caller, Db, provide_db
from posturio.platform.errors import Forbidden, NotFound, PosturioError, Unauthorized
from posturio.platform.models import Role
from posturio.platform.signin import (
    client_address,
    note_failure,
    sign_in_failed,
    sso_only_tenants,
    start_session,
    too_many_failures,
)


class LoginForm(msgspec.Struct):
    email: str = ""
    password: str = ""


class AcceptForm(msgspec.Struct):
    password: str = ""


class TenantSwitch(msgspec.Struct):
    tenant_id: str = ""


class ConsoleAuth(Controller):
    path = "/"
    include_in_schema = False
    dependencies = {"db": Provide(provide_db)}

    @get("/login")
    async def login_page(self, request: Request) -> Template | Redirect:
        if request.session.get("user_id"):
            return Redirect("/console", status_code=303)
        return Template("login.html", context={"signed_in": False})

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request,
        db: Db,
        data: Annotated[LoginForm, Form],
    ) -> Template | Redirect:
        redis: Redis = request.app.state.redis
        client = request.client.host if request.client else "unknown"
        throttle_key = f"posturio:login:fail:{client}:{data.email.strip().lower()}"
        context: dict[str, Any] = {"signed_in": False, "email": data.email}
        if await too_many_failures(redis, throttle_key):
            context["error"] = "Too many failed sign-ins. Wait 15 minutes and try again."
            return Template("login.html", context=context, status_code=429)
        user = await accounts.authenticate(db, data.email, data.password)
        access = await accounts.memberships_of(db, user.id) if user else []
        if user is None or not access:
            await note_failure(redis, throttle_key)
            known = user or await accounts.user_by_email(db, data.email)
            tenants = (
                [a.tenant_id for a in await accounts.memberships_of(db, known.id)] if known else []
            )
            await sign_in_failed(
                request,
                db,
                tenants,
                user_id=known.id if known else None,
                method="password",
                reason="wrong_password",
                email=data.email,
            )
            context["error"] = "Wrong email or password."
            return Template("login.html", context=context, status_code=401)
        sso_only = await sso_only_tenants(db, [a.tenant_id for a in access])
        # Owners keep a password into an SSO-only tenant (break glass), audited as such.
        usable = [a for a in access if a.tenant_id not in sso_only or a.role == Role.owner]
        if not usable:
            await sign_in_failed(
                request,
                db,
                [a.tenant_id for a in access],
                user_id=user.id,
                method="password",
                reason="sso_only",
                email=user.email,
            )
            context["error"] = (
                "Your organisation signs in with single sign-on: use “Sign in with SSO” below."
            )
            return Template("login.html", context=context, status_code=403)
        chosen = next((a for a in usable if a.tenant_id not in sso_only), usable[0])
        action = audit.BREAK_GLASS if chosen.tenant_id in sso_only else audit.SIGN_IN
        return await start_session(
            request, db, user.id, chosen.tenant_id, method="password", action=action
        )

    @post("/logout", status_code=303)
    async def logout(self, request: Request, db: Db) -> Redirect:
        user_id = request.session.get("user_id") if request.session else None
        tenant_id = request.session.get("tenant_id") if request.session else None
        if user_id and tenant_id:
            await switch_tenant(db, uuid.UUID(tenant_id))
            await audit.record_auth(
                db,
                uuid.UUID(tenant_id),
                action=audit.SIGN_OUT,
                user_id=user_id,
                method=request.session.get("method", "password"),
                client=client_address(request),
            )
        request.clear_session()
        return Redirect("/login", status_code=303)


def _invalid_invitation(request: Request, exc: NotFound) -> Template:
    context = {"signed_in": False, "invalid": exc.message}
    return Template("invite.html", context=context, status_code=404)


class InvitationPage(Controller):
    """The one-time link an admin hands out: accept by signing in as the invited address,
    or, for an address without an account, by choosing its password."""

    path = "/invite"
    include_in_schema = False
    dependencies = {"db": Provide(provide_db)}
    exception_handlers = {NotFound: _invalid_invitation}

    @get("/{token:str}")
    async def show(self, db: Db, token: FromPath[str]) -> Template:
        found = await invitations.find(db, token)
        return Template("invite.html", context=_invite_context(found))

    @post("/{token:str}", status_code=303)
    async def accept(
        self, request: Request, db: Db, token: FromPath[str], data: Annotated[AcceptForm, Form]
    ) -> Template | Redirect:
        found = await invitations.find(db, token)
        context = _invite_context(found)
        redis: Redis = request.app.state.redis
        client = request.client.host if request.client else "unknown"
        throttle_key = f"posturio:login:fail:{client}:{found.invitation.email.lower()}"
        if await too_many_failures(redis, throttle_key):
            context["error"] = "Too many failed attempts. Wait 15 minutes and try again."
            return Template("invite.html", context=context, status_code=429)
        if await sso_only_tenants(db, [found.invitation.tenant_id]):
            context["error"] = (
                f"{found.tenant_name} signs in with single sign-on: use “Sign in with SSO” "
                "on the sign-in page instead of a password."
            )
            return Template("invite.html", context=context, status_code=403)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                user = await invitations.accept(db, found, data.password)
        except PosturioError as exc:
            if isinstance(exc, invitations.WrongCredentials):
                await note_failure(redis, throttle_key)
            context["error"] = exc.message
            return Template("invite.html", context=context, status_code=exc.status_code)
        return await start_session(
            request, db, user.id, found.invitation.tenant_id, method="password"
        )


def _invite_context(found: invitations.OpenInvitation) -> dict[str, Any]:
    return {
        "signed_in": False,
        "tenant_name": found.tenant_name,
        "email": found.invitation.email,
        "role": found.invitation.role,
        "has_account": found.has_account,
    }


class ConsoleHome(ConsoleController):
    path = "/console"

    @post("/tenant", status_code=303)
    async def switch_tenant(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        data: Annotated[TenantSwitch, Form],
    ) -> Redirect:
        assert principal.user_id is not None
        allowed = {t.tenant_id: t for t in await accounts.memberships_of(db, principal.user_id)}
        try:
            target = allowed.get(uuid.UUID(data.tenant_id))
        except ValueError:
            target = None
        if target is None:
            raise Unauthorized("you are not a member of that tenant")
        method = request.session.get("method", "password")
        bound = request.session.get("bound")
        if bound and bound != str(target.tenant_id):
            raise Forbidden(
                "you signed in with single sign-on for one tenant: sign in again for another"
            )
        if method == "password" and await sso_only_tenants(db, [target.tenant_id]):
            if target.role != Role.owner:
                raise Forbidden(f"{target.tenant_name} signs in with single sign-on only")
            return await start_session(
                request,
                db,
                principal.user_id,
                target.tenant_id,
                method=method,
                action=audit.BREAK_GLASS,
            )
        # Another tenant is another role: the session gets a new id too.
        sessions.begin(request, {**request.session, "tenant_id": str(target.tenant_id)})
        return Redirect("/console", status_code=303)
