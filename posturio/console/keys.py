"""Console: API keys. Members see and manage their own keys, admins every key of the
tenant (the keys service decides visibility). The secret is shown once, on the page that
answers the create form, and is never stored or shown again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.console.frame import ConsoleController, Form, confirm_page, flash, page, refused
from posturio.gateway.usage import KeyUsage, usage_by_key
from posturio.platform import keys
from posturio.platform.api import key_changed_everywhere
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import NotFound, PosturioError
from posturio.platform.keyauth import scopes_for_role
from posturio.platform.models import ApiKey, Role, Scope, Tenant, User
from posturio.platform.schemas import KeyLimits

PAGE_SIZE = 25
ACTIVE = "Keys"
USAGE_DAYS = 30  # the usage and spend shown beside each key


class CreateForm(msgspec.Struct):
    name: str = ""
    scopes: str | list[str] = []  # checkboxes: one value is a string, several a list
    expires_in_days: str = ""
    tags: str = ""


class RevokeForm(msgspec.Struct):
    reason: str = ""
    confirm: str = ""  # "yes" once the confirmation page was answered


class ExtendForm(msgspec.Struct):
    days: str = ""


class LimitsForm(msgspec.Struct):
    allowed_models: str = ""
    rpm_limit: str = ""
    tpm_limit: str = ""
    monthly_budget_usd: str = ""
    tags: str = ""


def _words(value: str) -> list[str]:
    """Comma- or space-separated values of one text field."""
    return [w for w in value.replace(",", " ").split() if w]


def _number(value: str, label: str, cast: type[int] | type[float] = int) -> Any:
    value = value.strip()
    if not value:
        return None
    try:
        return cast(value)
    except ValueError:
        raise PosturioError(f"{label} must be a number, not {value[:40]!r}") from None


def _limits(form: LimitsForm | None, tags: str) -> KeyLimits:
    """The form's text fields as KeyLimits, validated by the same schema as the API."""
    raw: dict[str, Any] = {"tags": _words(tags)}
    if form is not None:
        models = _words(form.allowed_models)
        raw |= {
            "allowed_models": models or None,
            "rpm_limit": _number(form.rpm_limit, "requests per minute"),
            "tpm_limit": _number(form.tpm_limit, "tokens per minute"),
            "monthly_budget_usd": _number(form.monthly_budget_usd, "monthly budget", float),
        }
    try:
        return msgspec.convert(raw, KeyLimits)
    except msgspec.ValidationError as exc:
        raise PosturioError(f"invalid limits: {exc}") from None


async def _plan(db: AsyncSession, principal: Caller) -> str:
    return await db.scalar(select(Tenant.plan).where(Tenant.id == principal.tenant_id)) or ""


async def _creators(db: AsyncSession, rows: list[ApiKey]) -> dict[uuid.UUID, str]:
    ids = {k.created_by for k in rows if k.created_by}
    if not ids:
        return {}
    found = await db.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {r.id: r.email for r in found}


async def _usage_today(request: Request, plan: str, rows: list[ApiKey]) -> dict[uuid.UUID, Any]:
    """Demo keys have daily quotas: what each used today (one Redis read per key, and a
    demo tenant has one or two keys). The gateway is reached through app state, never
    imported: the platform layer does not depend on the gateway."""
    gateway = getattr(request.app.state, "gateway", None)
    if plan != "demo" or gateway is None or not rows:
        return {}
    used = await asyncio.gather(*(gateway.limiter.today(str(k.id)) for k in rows))
    tier = gateway.tiers.get("demo")
    return {
        k.id: {
            **u,
            "max_requests": tier.requests_per_day if tier else None,
            "max_tokens": tier.tokens_per_day if tier else None,
        }
        for k, u in zip(rows, used, strict=True)
    }


async def _usage_30d(
    db: AsyncSession, principal: Caller, rows: list[ApiKey]
) -> dict[Any, KeyUsage]:
    """Each key's requests, tokens and cost over the last USAGE_DAYS days (UTC), today
    included, from the daily rollups."""
    since = datetime.now(UTC).date() - timedelta(days=USAGE_DAYS - 1)
    return await usage_by_key(db, principal.tenant_id, [k.id for k in rows], since)


def _list_url(status: str, q: str, page_no: int) -> str:
    query = {k: v for k, v in {"status": status, "q": q}.items() if v}
    if page_no > 1:
        query["page"] = str(page_no)
    return "/console/keys" + (f"?{urlencode(query)}" if query else "")


async def _list_page(
    request: Request,
    db: AsyncSession,
    principal: Caller,
    *,
    status: str = "",
    q: str = "",
    page_no: int = 1,
    created: keys.CreatedKey | None = None,
) -> Template:
    rows = await keys.list_keys(
        db,
        principal,
        status=status or None,
        search=q or None,
        limit=PAGE_SIZE + 1,  # one more tells whether an older page exists
        offset=(page_no - 1) * PAGE_SIZE,
    )
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    plan = await _plan(db, principal)
    response = await page(
        request,
        db,
        principal,
        "console/keys.html",
        active=ACTIVE,
        status_code=201 if created else 200,
        keys=[(k, keys.key_status(k)) for k in rows],
        creators=await _creators(db, rows),
        usage=await _usage_today(request, plan, rows),
        spend=await _usage_30d(db, principal, rows),
        usage_days=USAGE_DAYS,
        plan=plan,
        statuses=keys.KEY_STATUSES,
        status=status,
        q=q,
        next_url=_list_url(status, q, page_no + 1) if more else None,
        prev_url=_list_url(status, q, page_no - 1) if page_no > 1 else None,
        can_admin=principal.at_least(Role.admin),
        scopes=[s.value for s in Scope if s.value in scopes_for_role(principal.role)],
        created=created,
    )
    if created:
        response.headers["cache-control"] = "no-store"  # the one page holding the secret
    return response


def _back(exc: PosturioError, page_of_key: str) -> str:
    """Where a refusal is shown: the key's page, or the list when the key is not found."""
    return "/console/keys" if isinstance(exc, NotFound) else page_of_key


class KeysPage(ConsoleController):
    path = "/console/keys"

    @get("/")
    async def list_keys(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        status: Annotated[str, QueryParameter(max_length=20)] = "",
        q: Annotated[str, QueryParameter(max_length=200)] = "",
        page_no: Annotated[int, QueryParameter(name="page", ge=1, le=100_000)] = 1,
    ) -> Template:
        principal.require(Role.member)
        if status not in keys.KEY_STATUSES:
            status = ""
        return await _list_page(request, db, principal, status=status, q=q.strip(), page_no=page_no)

    @post("/", status_code=201)
    async def create_key(
        self, request: Request, db: Db, principal: Caller, data: Annotated[CreateForm, Form]
    ) -> Template | Redirect:
        principal.require(Role.member)
        scopes = [data.scopes] if isinstance(data.scopes, str) else data.scopes
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                created = await keys.create_key(
                    db,
                    principal,
                    name=data.name,
                    scopes=scopes,
                    expires_in_days=_number(data.expires_in_days, "expiry (days)"),
                    limits=_limits(None, data.tags),
                )
        except PosturioError as exc:
            return refused(request, exc, "/console/keys")
        return await _list_page(request, db, principal, created=created)

    @get("/{key_id:str}")
    async def key_detail(
        self, request: Request, db: Db, principal: Caller, key_id: FromPath[str]
    ) -> Template:
        principal.require(Role.member)
        key = await keys.get_key(db, principal, key_id)
        plan = await _plan(db, principal)
        return await page(
            request,
            db,
            principal,
            "console/key.html",
            active=ACTIVE,
            key=key,
            key_status=keys.key_status(key),
            creator=(await _creators(db, [key])).get(key.created_by),  # type: ignore[arg-type]
            usage=(await _usage_today(request, plan, [key])).get(key.id),
            spend=(await _usage_30d(db, principal, [key])).get(key.id, KeyUsage()),
            usage_days=USAGE_DAYS,
            plan=plan,
            can_admin=principal.at_least(Role.admin),
        )

    @post("/{key_id:str}/revoke", status_code=303)
    async def revoke(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        key_id: FromPath[str],
        data: Annotated[RevokeForm, Form],
    ) -> Redirect | Template:
        principal.require(Role.member)  # and only their own keys: the service checks
        back = f"/console/keys/{key_id}"
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                if data.confirm != "yes":
                    key = await keys.get_key(db, principal, key_id)
                    return await confirm_page(
                        request,
                        db,
                        principal,
                        question=f"Revoke key {key.name} ({key.prefix})?",
                        consequence=(
                            "Every request with this key is refused from the moment you confirm, "
                            "on every gateway process. A revoked key cannot be restored: its "
                            "callers need a new key."
                        ),
                        action=f"/console/keys/{key_id}/revoke",
                        button="Revoke this key",
                        back=back,
                        fields={"reason": data.reason},
                        active=ACTIVE,
                    )
                key = await keys.revoke_key(
                    db, principal, key_id, reason=data.reason.strip()[:500] or None
                )
        except PosturioError as exc:
            return refused(request, exc, _back(exc, back))
        # The gateway caches keys: drop this one everywhere once the revoke is committed.
        await key_changed_everywhere(request, db, key.prefix)
        flash(request, f"Key {key.prefix} revoked. It is refused from now on.")
        return Redirect(back, status_code=303)

    @post("/{key_id:str}/extend", status_code=303)
    async def extend(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        key_id: FromPath[str],
        data: Annotated[ExtendForm, Form],
    ) -> Redirect:
        principal.require(Role.admin)
        back = f"/console/keys/{key_id}"
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                days = _number(data.days, "days")
                if days is None:
                    raise PosturioError("enter how many days to add")
                key = await keys.extend_key(db, principal, key_id, days=days)
        except PosturioError as exc:
            return refused(request, exc, _back(exc, back))
        await key_changed_everywhere(request, db, key.prefix)  # the cache holds the expiry
        assert key.expires_at is not None
        flash(request, f"Key {key.prefix} now expires {key.expires_at:%Y-%m-%d %H:%M} UTC.")
        return Redirect(back, status_code=303)

    @post("/{key_id:str}/limits", status_code=303)
    async def limits(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        key_id: FromPath[str],
        data: Annotated[LimitsForm, Form],
    ) -> Redirect:
        principal.require(Role.admin)
        back = f"/console/keys/{key_id}"
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                key = await keys.set_limits(db, principal, key_id, _limits(data, data.tags))
        except PosturioError as exc:
            return refused(request, exc, _back(exc, back))
        await key_changed_everywhere(request, db, key.prefix)
        flash(request, f"Limits of key {key.prefix} saved.")
        return Redirect(back, status_code=303)
