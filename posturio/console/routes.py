"""Console: model aliases and their deployments (built-ins too), in fallback order, with
each deployment's live breaker state; create or replace an alias from the same JSON body
as `PUT /api/routes/{alias}`, or delete one. Admins only."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

import msgspec
from litestar import Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from posturio.console.forms import form, text
from posturio.console.frame import ConsoleController, Form, confirm_page, flash, page, refused
from posturio.gateway import routes as route_service
from posturio.gateway.api import routes_changed
from posturio.gateway.routing import BUILTINS, breaker_report
from posturio.gateway.schemas import Provider, RouteIn
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import Forbidden, PosturioError, Unauthorized
from posturio.platform.models import Role

BACK = "/console/routes"
EXAMPLE = {
    "kind": "chat",
    "deployments": [
        {"name": "primary", "provider": "openai", "model": "gpt-4o-mini", "credential": "openai"},
        {"name": "fallback", "provider": "echo", "model": "echo", "priority": 1},
    ],
}
DEPLOYMENT_FIELDS = (
    "name",
    "provider",
    "model",
    "base_url",
    "api_version",
    "credential",
    "weight",
    "priority",
    "timeout_s",
    "max_retries",
    "input_price_per_1k",
    "output_price_per_1k",
    "enabled",
)


# The deployment form's fields: text as typed, numbers converted by the route schema.
DEPLOYMENT_FORM = ("alias", "kind", "name", "provider", "model", "base_url", "api_version")
DEPLOYMENT_NUMBERS = ("weight", "priority", "input_price_per_1k", "output_price_per_1k")


class RouteForm(msgspec.Struct):
    alias: str = ""
    spec: str = ""


class DeleteForm(msgspec.Struct):
    alias: str = ""
    confirm: str = ""  # "yes" once the confirmation page was answered


def _health(state: dict[str, Any] | None) -> dict[str, Any]:
    if state is None:
        return {"label": "healthy", "cooling": False}
    if state["cooling_down"]:
        until = datetime.fromtimestamp(float(state["open_until"]), UTC)
        left = max(0, round(float(state["open_until"]) - time.time()))
        label = f"cooling down until {until:%H:%M:%S} UTC ({left}s, {state['failures']} failures)"
        return {"label": label, "cooling": True}
    return {"label": f"recovering ({state['failures']} recent failures)", "cooling": False}


async def _routes(request: Request, db: Db, principal: Caller) -> list[dict[str, Any]]:
    """Built-ins and the tenant's aliases (a tenant alias shadows a built-in of that name),
    each deployment in the order the router tries them, with its breaker state."""
    health = {
        str(s["deployment_id"]): s
        for s in await breaker_report(request.app.state.redis, principal.tenant_id)
    }
    merged: dict[str, dict[str, Any]] = {}
    for alias, builtin in BUILTINS.items():
        merged[alias] = {
            "alias": alias,
            "kind": builtin.kind,
            "builtin": True,
            "updated_at": None,
            "deployments": [
                {
                    **{f: getattr(t, f, None) for f in DEPLOYMENT_FIELDS},
                    "credential": None,
                    "enabled": True,
                    "health": _health(health.get(t.id)),
                }
                for t in builtin.targets
            ],
        }
    for route, deployments, creds in await route_service.list_routes(db, principal.tenant_id):
        merged[route.alias] = {
            "alias": route.alias,
            "kind": route.kind,
            "builtin": False,
            "updated_at": route.updated_at,
            "deployments": [
                {
                    **{f: getattr(d, f) for f in DEPLOYMENT_FIELDS if f != "credential"},
                    "credential": creds.get(d.credential_id) if d.credential_id else None,
                    "health": _health(health.get(str(d.id))),
                }
                for d in deployments
            ],
        }
    return [merged[a] for a in sorted(merged)]


def _spec_json(route: dict[str, Any]) -> str:
    """An alias as the JSON body that would recreate it (for the edit form)."""
    deployments = [
        {
            f: float(d[f]) if f.endswith("_per_1k") else d[f]
            for f in DEPLOYMENT_FIELDS
            if d[f] is not None
        }
        for d in route["deployments"]
    ]
    return json.dumps({"kind": route["kind"], "deployments": deployments}, indent=2)


def _deployment(data: dict[str, Any]) -> dict[str, Any]:
    """The deployment form as one entry of a route's JSON body (the schema checks it)."""
    entry: dict[str, Any] = {
        f: text(data, f) for f in ("name", "provider", "model", "base_url", "api_version")
    }
    for field in DEPLOYMENT_NUMBERS:
        value = text(data, field)
        if value:
            try:
                entry[field] = int(value) if field in ("weight", "priority") else float(value)
            except ValueError:
                raise PosturioError(
                    f"{field.replace('_', ' ')} must be a number, not {value[:40]!r}"
                ) from None
    entry["credential"] = text(data, "credential")
    return {k: v for k, v in entry.items() if v not in ("", None)}


async def _save(db: Db, principal: Caller, alias: str, spec_json: str) -> None:
    """An alias from a route's JSON body, as `PUT /api/routes/{alias}` takes it: the
    JSON editor and the deployment form both save through here."""
    if not 1 <= len(alias) <= 200:
        raise PosturioError("alias must be 1-200 characters")
    try:
        spec = msgspec.json.decode(spec_json.encode(), type=RouteIn)
    except msgspec.ValidationError as exc:  # (a DecodeError too: test it first)
        raise PosturioError(f"the route does not fit the schema: {exc}") from None
    except msgspec.DecodeError as exc:
        raise PosturioError(f"the route is not valid JSON: {exc}") from None
    await route_service.put_route(db, principal, alias, spec)


async def _page(
    request: Request,
    db: Db,
    principal: Caller,
    *,
    alias: str = "",
    spec: str = "",
    error: str | None = None,
    deployment_error: str | None = None,
    deployment_form: dict[str, str] | None = None,
) -> Template:
    routes = await _routes(request, db, principal)
    credentials = await route_service.list_credentials(db, principal)
    return await page(
        request,
        db,
        principal,
        "console/routes.html",
        active="Routes",
        status_code=400 if error or deployment_error else 200,
        routes=routes,
        form_alias=alias,
        form_spec=spec or json.dumps(EXAMPLE, indent=2),
        error=error,
        providers=get_args(Provider),
        credentials=[(c.name, c.provider) for c in credentials],
        deployment_error=deployment_error,
        deployment_form=deployment_form or {},
    )


class RoutesPage(ConsoleController):
    path = "/console/routes"

    @get("/")
    async def list_routes(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        edit: Annotated[str, QueryParameter(max_length=200)] = "",
    ) -> Template:
        principal.require(Role.admin)
        if edit:
            for route in await _routes(request, db, principal):
                if route["alias"] == edit:
                    return await _page(request, db, principal, alias=edit, spec=_spec_json(route))
        return await _page(request, db, principal)

    @post("/", status_code=303)
    async def save_route(
        self, request: Request, db: Db, principal: Caller, data: Annotated[RouteForm, Form]
    ) -> Template | Redirect:
        principal.require(Role.admin)
        alias = data.alias.strip()
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                await _save(db, principal, alias, data.spec)
        except (Forbidden, Unauthorized):
            raise
        except PosturioError as exc:
            return await _page(
                request, db, principal, alias=alias, spec=data.spec, error=exc.message
            )
        routes_changed(request, db, principal.tenant_id)  # every process reloads after commit
        flash(request, f"Route {alias} saved; it applies to the next request.")
        return Redirect(BACK, status_code=303)

    @post("/deployments", status_code=303)
    async def add_deployment(
        self, request: Request, db: Db, principal: Caller
    ) -> Template | Redirect:
        """One deployment added to an alias (its others kept; a new alias is created
        with it): the alias's JSON body plus the form's entry, saved like the editor."""
        principal.require(Role.admin)
        data = await form(request)
        alias = text(data, "alias")
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                entry = _deployment(data)
                current = next(
                    (r for r in await _routes(request, db, principal) if r["alias"] == alias),
                    None,
                )
                spec: dict[str, Any] = (
                    json.loads(_spec_json(current))
                    if current
                    else {"kind": text(data, "kind") or "chat", "deployments": []}
                )
                spec["deployments"].append(entry)
                await _save(db, principal, alias, json.dumps(spec))
        except (Forbidden, Unauthorized):
            raise
        except PosturioError as exc:
            kept = {f: text(data, f) for f in (*DEPLOYMENT_FORM, *DEPLOYMENT_NUMBERS)}
            return await _page(
                request,
                db,
                principal,
                deployment_error=exc.message,
                deployment_form=kept | {"credential": text(data, "credential")},
            )
        routes_changed(request, db, principal.tenant_id)  # every process reloads after commit
        flash(request, f"Deployment {entry.get('name')} added to {alias}; it serves from now on.")
        return Redirect(BACK, status_code=303)

    @post("/delete", status_code=303)
    async def delete_route(
        self, request: Request, db: Db, principal: Caller, data: Annotated[DeleteForm, Form]
    ) -> Redirect | Template:
        principal.require(Role.admin)
        if data.confirm != "yes":
            return await confirm_page(
                request,
                db,
                principal,
                question=f"Delete route {data.alias}?",
                consequence=(
                    f"From the next request on, calls for model {data.alias!r} are refused; "
                    "its deployments and settings are gone (save the route again to restore)."
                ),
                action="/console/routes/delete",
                button=f"Delete {data.alias}",
                back=BACK,
                fields={"alias": data.alias},
                active="Routes",
            )
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                await route_service.delete_route(db, principal, data.alias)
        except PosturioError as exc:
            return refused(request, exc, BACK)
        routes_changed(request, db, principal.tenant_id)
        flash(request, f"Route {data.alias} deleted.")
        return Redirect(BACK, status_code=303)
