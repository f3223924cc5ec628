"""The console's frame: the menu, the page helper, confirmation pages, the error pages
and the base controller every console page uses (signed-in users only, CSRF on every
form, set up in app.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Controller, Request, Response
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.platform import accounts
from posturio.platform.dependencies import Db, provide_console_principal, provide_db
from posturio.platform.errors import EXCEPTION_HANDLERS, Forbidden, PosturioError, Unauthorized
from posturio.platform.models import ROLE_RANK, Role, User
from posturio.platform.principal import Principal


class ConfirmForm(msgspec.Struct):
    confirm: str = ""  # "yes" once the confirmation page was answered


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


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
    NavItem("Single sign-on", "/console/sso", Role.admin),
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


def refused(request: Request, exc: PosturioError, back: str, prefix: str = "") -> Redirect:
    """An action refused with its reason shown on the next page (its savepoint already
    undone). A refusal of the role or of the sign-in goes on to its own page instead."""
    if isinstance(exc, Forbidden | Unauthorized):
        raise exc
    flash(request, f"{prefix}{exc.message}")
    return Redirect(back, status_code=303)


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
    the sign-in page), and every refusal a page inside the layout. Pages run on the API's
    unit of work (committed after the handler, rolled back on an error, after-commit
    callbacks and deferred jobs sent once committed); an action refused with a message on
    the page runs in a savepoint (`db.begin_nested()`) so it keeps none of its writes."""

    include_in_schema = False
    dependencies = {"db": Provide(provide_db), "principal": Provide(console_principal)}
    exception_handlers = {
        PosturioError: console_error,
        HTTPException: console_error,
        ValidationException: console_error,
    }
