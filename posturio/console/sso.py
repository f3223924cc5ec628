"""Console: single sign-on and provisioning. Admins set up the tenant's OpenID Connect
provider (issuer, client, allowed domains, the groups claim and what each IdP group
gives: a role and Navigator groups) and make or rotate the SCIM token; only an owner
turns "SSO only" on or off, after a confirmation page. Every change goes through the
same services as `PUT /api/sso` and `POST /api/scim/token`, so it is checked and audited
the same way. The client secret is write-only (never shown back) and the SCIM token is
shown once, on the page that answers the form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
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
from posturio.platform import scim, sso
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import Forbidden, PosturioError, Unauthorized
from posturio.platform.models import Role, SsoConfig, Tenant
from posturio.platform.principal import Principal

BACK = "/console/sso"
ACTIVE = "Single sign-on"
BLANK_ROWS = 2  # empty mapping rows under the filled ones: more rows, without script
ROLES = ("member", "reviewer", "admin", "owner")

Many = str | list[str]  # a repeated field: one value arrives as a string, several as a list


class SettingsForm(msgspec.Struct):
    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""  # empty: keep the stored one
    remove_secret: str = ""  # ticked: a public client (PKCE only)
    email_domains: str = ""
    groups_claim: str = ""
    default_role: str = ""
    enabled: str = ""
    role_group: Many = []
    role: Many = []
    nav_group: Many = []
    nav_groups: Many = []


class SsoOnlyForm(msgspec.Struct):
    sso_only: str = ""  # "on" or "off"
    confirm: str = ""  # "yes" once the confirmation page was answered


def _many(value: Many) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[,\s]+", value.strip()) if w]


@dataclass
class FormView:
    """What the settings form shows: the stored settings, or what was just posted."""

    issuer: str = ""
    client_id: str = ""
    email_domains: str = ""
    groups_claim: str = "groups"
    default_role: str = "member"
    enabled: bool = True
    role_rows: list[tuple[str, str]] = field(default_factory=list)
    nav_rows: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, config: SsoConfig) -> FormView:
        return cls(
            issuer=config.issuer,
            client_id=config.client_id,
            email_domains=", ".join(config.email_domains),
            groups_claim=config.groups_claim,
            default_role=config.default_role or "",
            enabled=config.enabled,
            role_rows=sorted(config.role_map.items()),
            nav_rows=sorted((g, ", ".join(v)) for g, v in config.group_map.items()),
        )

    @classmethod
    def posted(cls, data: SettingsForm) -> FormView:
        return cls(
            issuer=data.issuer,
            client_id=data.client_id,
            email_domains=data.email_domains,
            groups_claim=data.groups_claim,
            default_role=data.default_role,
            enabled=bool(data.enabled),
            role_rows=list(zip(_many(data.role_group), _many(data.role), strict=False)),
            nav_rows=list(zip(_many(data.nav_group), _many(data.nav_groups), strict=False)),
        )


def _rows(groups: Many, values: Many, what: str) -> dict[str, str]:
    """A mapping table's filled rows (a row without an IdP group is left out)."""
    out: dict[str, str] = {}
    for group, value in zip(_many(groups), _many(values), strict=False):
        group = group.strip()
        if not group:
            continue
        if group in out:
            raise PosturioError(f"IdP group {group[:80]!r} appears twice in the {what}")
        out[group] = value.strip()
    return out


def settings_in(data: SettingsForm, config: SsoConfig | None) -> sso.SsoConfigIn:
    """The form as the API's body, checked by the same schema; SSO only stays as it is
    (an owner's switch of its own)."""
    for label, value in (
        ("issuer", data.issuer),
        ("client id", data.client_id),
        ("allowed e-mail domains", data.email_domains),
    ):
        if not value.strip():
            raise PosturioError(f"{label} is required")
    secret: str | None = data.client_secret or None  # empty: keep
    if data.remove_secret:
        secret = ""
    raw: dict[str, Any] = {
        "issuer": data.issuer.strip(),
        "client_id": data.client_id.strip(),
        "client_secret": secret,
        "email_domains": _words(data.email_domains),
        "groups_claim": data.groups_claim.strip() or "groups",
        "role_map": _rows(data.role_group, data.role, "role mapping"),
        "group_map": {
            g: _words(v) for g, v in _rows(data.nav_group, data.nav_groups, "group mapping").items()
        },
        "default_role": data.default_role or None,
        "sso_only": config.sso_only if config else False,
        "enabled": bool(data.enabled),
    }
    try:
        return msgspec.convert(raw, sso.SsoConfigIn)
    except msgspec.ValidationError as exc:
        raise PosturioError(f"the settings do not fit: {exc}") from None


async def _sso_page(
    request: Request,
    db: AsyncSession,
    principal: Principal,
    *,
    form: FormView | None = None,
    error: str | None = None,
    new_token: scim.NewToken | None = None,
    status_code: int = 200,
) -> Template:
    principal.require(Role.admin)
    base_url: str = request.app.state.settings.base_url
    config = await sso.get_config(db, principal.tenant_id)
    token = await scim.current_token(db, principal.tenant_id)
    tenant = await db.get(Tenant, principal.tenant_id)
    actors = [config.updated_by if config else None, token.created_by if token else None]
    return await page(
        request,
        db,
        principal,
        "console/sso.html",
        active=ACTIVE,
        status_code=status_code,
        config=config,
        form=form or (FormView.of(config) if config else FormView()),
        blank_rows=BLANK_ROWS,
        error=error,
        roles=[r for r in ROLES if r != "owner" or principal.at_least(Role.owner)],
        is_owner=principal.at_least(Role.owner),
        redirect_uri=sso.redirect_uri(base_url),
        login_url=base_url.rstrip("/") + "/login",
        slug=tenant.slug if tenant else "",
        scim_base=scim.scim_base(request),
        token=token,
        new_token=new_token,
        names=await names(db, principal.tenant_id, actors),
    )


class SsoPage(ConsoleController):
    path = BACK

    @get("/")
    async def show(self, request: Request, db: Db, principal: Caller) -> Template:
        return await _sso_page(request, db, principal)

    @post("/", status_code=303)
    async def save(
        self, request: Request, db: Db, principal: Caller, data: Annotated[SettingsForm, Form]
    ) -> Template | Redirect:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                config = await sso.get_config(db, principal.tenant_id)
                settings = settings_in(data, config)
                await sso.save_config(db, principal, request.app.state.secret_box, settings)
        except (Forbidden, Unauthorized):
            raise
        except PosturioError as exc:  # the page again, with what was typed (not the secret)
            return await _sso_page(
                request,
                db,
                principal,
                form=FormView.posted(data),
                error=exc.message,
                status_code=400,
            )
        flash(request, "Single sign-on settings saved; they apply to the next sign-in.")
        return Redirect(BACK, status_code=303)

    @post("/sso-only", status_code=303)
    async def sso_only(
        self, request: Request, db: Db, principal: Caller, data: Annotated[SsoOnlyForm, Form]
    ) -> Template | Redirect:
        principal.require(Role.owner)
        turn_on = data.sso_only == "on"
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                config = await sso.get_config(db, principal.tenant_id)
                if config is None:
                    raise PosturioError("set up single sign-on first")
                if data.confirm != "yes":
                    return await _confirm_sso_only(request, db, principal, turn_on)
                settings = msgspec.convert(
                    {**sso.settings_record(config), "sso_only": turn_on}, sso.SsoConfigIn
                )
                await sso.save_config(db, principal, request.app.state.secret_box, settings)
        except PosturioError as exc:
            return refused(request, exc, BACK)
        flash(
            request,
            "SSO only is on: people sign in through the identity provider; owners keep an "
            "audited password way in."
            if turn_on
            else "SSO only is off: passwords work again.",
        )
        return Redirect(BACK, status_code=303)

    @post("/scim-token", status_code=201)
    async def scim_token(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        data: Annotated[ConfirmForm, Form],
    ) -> Template | Redirect:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                current = await scim.current_token(db, principal.tenant_id)
                if current is not None and data.confirm != "yes":
                    return await confirm_page(
                        request,
                        db,
                        principal,
                        question="Rotate the SCIM token?",
                        consequence=(
                            f"The current token ({current.prefix}) stops working at once: "
                            "provisioning fails until the identity provider has the new one."
                        ),
                        action=f"{BACK}/scim-token",
                        button="Rotate the token",
                        back=BACK,
                        active=ACTIVE,
                    )
                new = await scim.issue_token(db, principal)
        except PosturioError as exc:
            return refused(request, exc, BACK)
        return await _sso_page(request, db, principal, new_token=new, status_code=201)


async def _confirm_sso_only(
    request: Request, db: AsyncSession, principal: Principal, turn_on: bool
) -> Template:
    if turn_on:
        question = "Turn on SSO only?"
        consequence = (
            "Passwords stop working for everyone in this tenant except owners: signed-in "
            "password sessions end at their next request, and people sign in through the "
            "identity provider. Owners keep a password way in for emergencies; each use is "
            "audited."
        )
    else:
        question = "Turn off SSO only?"
        consequence = "Members with a password can sign in with it again, besides single sign-on."
    return await confirm_page(
        request,
        db,
        principal,
        question=question,
        consequence=consequence,
        action=f"{BACK}/sso-only",
        button="Turn on SSO only" if turn_on else "Turn off SSO only",
        back=BACK,
        fields={"sso_only": "on" if turn_on else "off"},
        active=ACTIVE,
    )
