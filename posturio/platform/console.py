"""The console's frame: sign-in and sign-out (server-side sessions in Redis, CSRF on every
form), the menu, the page helper and the base controller every console page uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import accounts, audit, invitations, sessions
from posturio.platform.db import switch_tenant
from posturio.platform.dependencies import Caller, Db, provide_console_principal, provide_db
from posturio.platform.errors import (
    EXCEPTION_HANDLERS,
    Forbidden,
    NotFound,
    PosturioError,
    Unauthorized,
)
from posturio.platform.models import ROLE_RANK, Role, User
from posturio.platform.principal import Principal

# Failed sign-ins allowed per address+email in the window before a pause.
LOGIN_FAILURES_ALLOWED = 10
LOGIN_WINDOW_S = 900


class LoginForm(msgspec.Struct):
    email: str = ""
    password: str = ""


class AcceptForm(msgspec.Struct):
    password: str = ""


class ConfirmForm(msgspec.Struct):
    confirm: str = ""  # "yes" once the confirmation page was answered


class TenantSwitch(msgspec.Struct):
    tenant_id: str = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


async def _too_many_failures(redis: Redis, key: str) -> bool:
    count = await redis.get(key)
    return count is not None and int(count) >= LOGIN_FAILURES_ALLOWED


async def _note_failure(redis: Redis, key: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, LOGIN_WINDOW_S)
        await pipe.execute()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sso_only_tenants(db: AsyncSession, tenant_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tenants refuse passwords (single sign-on only)."""
    rows = await db.execute(
        text("SELECT tenant_id FROM posturio_sso_only_tenants(:t)"), {"t": tenant_ids}
    )
    return {r.tenant_id for r in rows}


async def start_session(
    request: Request,
    db: AsyncSession,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    *,
    method: str,
    action: str = audit.SIGN_IN,
) -> Redirect:
    """Signed in: audited, and the session starts under a new id (a session id chosen
    before sign-in, by anyone, is worth nothing after it). An SSO session stays in the
    tenant whose identity provider vouched for it."""
    await switch_tenant(db, tenant_id)
    await audit.record_auth(
        db, tenant_id, action=action, user_id=user_id, method=method, client=client_address(request)
    )
    data = {"user_id": str(user_id), "tenant_id": str(tenant_id), "method": method}
    if method == "sso":
        data["bound"] = str(tenant_id)
    sessions.begin(request, data)
    return Redirect("/console", status_code=303)


async def sign_in_failed(
    request: Request,
    db: AsyncSession,
    tenant_ids: list[uuid.UUID],
    *,
    user_id: uuid.UUID | None,
    method: str,
    reason: str,
    email: str = "",
) -> None:
    """Audited in each tenant concerned (an address nobody has concerns none)."""
    for tenant_id in tenant_ids:
        await switch_tenant(db, tenant_id)
        await audit.record_auth(
            db,
            tenant_id,
            action=audit.SIGN_IN_FAILED,
            user_id=user_id,
            method=method,
            client=client_address(request),
            reason=reason,
            email=email[:320],
        )


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
        if await _too_many_failures(redis, throttle_key):
            context["error"] = "Too many failed sign-ins. Wait 15 minutes and try again."
            return Template("login.html", context=context, status_code=429)
        user = await accounts.authenticate(db, data.email, data.password)
        access = await accounts.memberships_of(db, user.id) if user else []
        if user is None or not access:
            await _note_failure(redis, throttle_key)
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
        if await _too_many_failures(redis, throttle_key):
            context["error"] = "Too many failed attempts. Wait 15 minutes and try again."
            return Template("invite.html", context=context, status_code=429)
        if await sso_only_tenants(db, [found.invitation.tenant_id]):
            context["error"] = (
                f"{found.tenant_name} signs in with single sign-on: use “Sign in with SSO” "
                "on the sign-in page instead of a password."
            )
            return Template("invite.html", context=context, status_code=403)
        try:
            user = await invitations.accept(db, found, data.password)
        except PosturioError as exc:
            await db.rollback()
            if isinstance(exc, invitations.WrongCredentials):
                await _note_failure(redis, throttle_key)
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


def login_redirect(request: Request, exc: Unauthorized) -> Redirect:
    return Redirect("/login", status_code=303)


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    role: Role  # the least role that sees it


# One menu for every console page; each page checks the same role on the server.
NAV = (
    NavItem("Overview", "/console/", Role.member),
    NavItem("Requests", "/console/requests", Role.reviewer),
    NavItem("Review queue", "/console/review", Role.reviewer),
    NavItem("Investigations", "/console/investigations", Role.reviewer),
    NavItem("Keys", "/console/keys", Role.member),
    NavItem("Policies", "/console/policies", Role.reviewer),
    NavItem("Navigator", "/console/navigator", Role.member),
    NavItem("Sources", "/console/sources", Role.member),
    NavItem("Routes", "/console/routes", Role.admin),
    NavItem("Members", "/console/members", Role.admin),
    NavItem("Audit log", "/console/audit", Role.admin),
    NavItem("Playground", "/playground", Role.member),
)


@dataclass(frozen=True, slots=True)
class Frame:
    """What the layout shows around every console page: who, in which tenant, the menu."""

    email: str
    role: Role
    tenant_id: uuid.UUID
    tenant_name: str
    tenants: list[accounts.TenantAccess]

    def context(self, request: Request) -> dict[str, Any]:
        return {
            "signed_in": True,
            "email": self.email,
            "role": self.role.value,
            "tenant_name": self.tenant_name,
            "tenant_id": self.tenant_id,
            "tenants": self.tenants,
            "nav": [n for n in NAV if ROLE_RANK[self.role] >= ROLE_RANK[n.role]],
            "flash": request.session.pop("flash", None) if request.session else None,
        }


_FRAME = "console_frame"


async def console_principal(request: Request, db: Db) -> Principal:
    """The console's caller, and the layout's frame kept on the request so that an error
    page (rendered where nothing can be awaited) still shows the menu."""
    principal = await provide_console_principal(request, db)
    assert principal.user_id is not None
    user = await db.get(User, principal.user_id)
    tenants = await accounts.memberships_of(db, principal.user_id)
    bound = request.session.get("bound") if request.session else None
    if bound:  # an SSO session offers no other tenant to switch to
        tenants = [t for t in tenants if str(t.tenant_id) == bound]
    current = next(t for t in tenants if t.tenant_id == principal.tenant_id)
    email = user.email if user else ""
    frame = Frame(email, principal.role, principal.tenant_id, current.tenant_name, tenants)
    request.state[_FRAME] = frame
    return principal


async def page(
    request: Request,
    db: AsyncSession,
    principal: Principal,
    template: str,
    *,
    active: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A console page: the layout's context (who, which tenant, the menu for this role)
    plus the page's own. Every value is escaped by the template engine."""
    frame: Frame = request.state[_FRAME]
    return Template(
        template,
        context={**frame.context(request), "active": active, **context},
        status_code=status_code,
    )


def flash(request: Request, message: str) -> None:
    """A one-time message shown on the next console page (after a redirect)."""
    request.set_session({**(request.session or {}), "flash": message})


def _wants_json(request: Request) -> bool:
    """The console's own scripts post JSON and read JSON errors; browsers navigate."""
    accept = request.headers.get("accept", "")
    sent_json = request.headers.get("content-type", "").startswith("application/json")
    return sent_json or ("application/json" in accept and "text/html" not in accept)


def console_error(request: Request, exc: Exception) -> Response[Any]:
    """Every refusal on a console route: the API's error (same status, same message, same
    request id) rendered as a page inside the layout, menu included, for a browser."""
    if isinstance(exc, Unauthorized):
        return login_redirect(request, exc)
    handler = next(EXCEPTION_HANDLERS[c] for c in type(exc).__mro__ if c in EXCEPTION_HANDLERS)
    answer: Response[Any] = handler(request, exc)
    if _wants_json(request):
        return answer
    error = answer.content["error"]
    status = answer.status_code or 500
    frame: Frame | None = request.state.get(_FRAME)
    signed_in = bool(request.session.get("user_id")) if request.session else False
    context = frame.context(request) if frame else {"signed_in": signed_in}
    return Template(
        "console/error.html" if frame else "console/error_bare.html",
        context={
            **context,
            "active": "",
            "status": status,
            "message": error["message"],
            "request_id": error["request_id"],
        },
        status_code=status,
        headers={k: v for k, v in answer.headers.items() if k.startswith(("retry-after", "x-"))},
    )


async def confirm_page(
    request: Request,
    db: AsyncSession,
    principal: Principal,
    *,
    question: str,
    consequence: str,
    action: str,
    button: str,
    back: str,
    fields: dict[str, str] | None = None,
    active: str = "",
) -> Template:
    """The step before a destructive action: what will happen, one button that posts the
    same form again with `confirm=yes`, and a way back. Served by the server, so it works
    without script and no stray click or replayed form skips it."""
    return await page(
        request,
        db,
        principal,
        "console/confirm.html",
        active=active,
        question=question,
        consequence=consequence,
        action=action,
        button=button,
        back=back,
        fields=fields or {},
    )


class ConsoleController(Controller):
    """Base of every console page controller: signed-in users only (others are sent to
    the sign-in page), and every refusal a page inside the layout."""

    include_in_schema = False
    dependencies = {"db": Provide(provide_db), "principal": Provide(console_principal)}
    exception_handlers = {
        PosturioError: console_error,
        HTTPException: console_error,
        ValidationException: console_error,
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
