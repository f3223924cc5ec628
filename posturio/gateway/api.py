"""The gateway's admin API: routes and deployments, provider credentials, breaker
state, usage. Same authentication and authorisation as the platform's /api."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from litestar import Controller, Request, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from posturio.gateway import routes as route_service
from posturio.gateway.models import Deployment, Route, UsageDaily, UsageEvent
from posturio.gateway.routing import BUILTINS, breaker_report
from posturio.gateway.schemas import (
    BreakerOut,
    CredentialIn,
    CredentialOut,
    DeploymentOut,
    RouteIn,
    RouteOut,
    UsageEventOut,
    UsageReport,
    UsageRow,
)
from posturio.platform.dependencies import (
    Caller,
    Db,
    provide_api_principal,
    provide_tenant_db,
)
from posturio.platform.errors import Conflict, NotFound, PosturioError
from posturio.platform.invalidation import ROUTES
from posturio.platform.keys import get_key
from posturio.platform.models import Role
from posturio.platform.principal import Principal
from posturio.platform.repository import scoped
from posturio.platform.tenant_cache import invalidate_after_commit

Alias = Annotated[str, QueryParameter(max_length=200)]


def _deployment_out(d: Deployment, creds: dict[uuid.UUID, str]) -> DeploymentOut:
    return DeploymentOut(
        id=str(d.id),
        name=d.name,
        provider=d.provider,
        model=d.model,
        base_url=d.base_url,
        api_version=d.api_version,
        credential=creds.get(d.credential_id) if d.credential_id else None,
        weight=d.weight,
        priority=d.priority,
        timeout_s=d.timeout_s,
        max_retries=d.max_retries,
        input_price_per_1k=d.input_price_per_1k,
        output_price_per_1k=d.output_price_per_1k,
        enabled=d.enabled,
    )


def _route_out(
    route: Route, deployments: list[Deployment], creds: dict[uuid.UUID, str]
) -> RouteOut:
    return RouteOut(
        route.alias,
        route.kind,
        False,
        [_deployment_out(d, creds) for d in deployments],
        route.updated_at,
    )


def _builtin_out(alias: str) -> RouteOut:
    r = BUILTINS[alias]
    t = r.targets[0]
    return RouteOut(
        alias,
        r.kind,
        True,
        [
            DeploymentOut(
                id=t.id,
                name=t.name,
                provider=t.provider,
                model=t.model,
                base_url=None,
                api_version=None,
                credential=None,
                weight=1,
                priority=0,
                timeout_s=t.timeout_s,
                max_retries=0,
                input_price_per_1k=Decimal(0),
                output_price_per_1k=Decimal(0),
                enabled=True,
            )
        ],
    )


def event_out(e: UsageEvent) -> UsageEventOut:
    return UsageEventOut(
        request_id=e.request_id,
        occurred_at=e.occurred_at,
        key_id=str(e.key_id) if e.key_id else None,
        alias=e.alias,
        deployment=e.deployment,
        endpoint=e.endpoint,
        decision=e.decision,
        status=e.status,
        error_code=e.error_code,
        attempts=e.attempts,
        stream=e.stream,
        prompt_tokens=e.prompt_tokens,
        completion_tokens=e.completion_tokens,
        tokens_estimated=e.tokens_estimated,
        cost_usd=float(e.cost_usd),
        latency_ms=e.latency_ms,
        overhead_ms=e.overhead_ms,
        attempt_log=e.attempt_log or [],
        origin=e.origin,
    )


def routes_changed(request: Request, db: Db, tenant_id: uuid.UUID) -> None:
    state = request.app.state
    invalidate_after_commit(db, state.redis, state.gateway.routes, ROUTES, tenant_id)


def _window(days: int) -> tuple[date, date]:
    until = datetime.now(UTC).date()
    return until - timedelta(days=days - 1), until


async def usage_report(
    db: Db, principal: Principal, days: int, key_id: uuid.UUID | None
) -> UsageReport:
    since, until = _window(days)
    stmt = scoped(UsageDaily, principal.tenant_id).where(UsageDaily.day >= since)
    if key_id is not None:
        stmt = stmt.where(UsageDaily.key_id == key_id)
    rows = (await db.scalars(stmt.order_by(UsageDaily.day, UsageDaily.alias))).all()
    out = [
        UsageRow(
            r.day,
            str(r.key_id),
            r.alias,
            r.requests,
            r.errors,
            r.prompt_tokens,
            r.completion_tokens,
            float(r.cost_usd),
        )
        for r in rows
    ]
    return UsageReport(
        since=since,
        until=until,
        requests=sum(r.requests for r in out),
        errors=sum(r.errors for r in out),
        prompt_tokens=sum(r.prompt_tokens for r in out),
        completion_tokens=sum(r.completion_tokens for r in out),
        cost_usd=round(sum(r.cost_usd for r in out), 8),
        rows=out,
    )


async def _all_routes(db: Db, principal: Principal) -> list[RouteOut]:
    principal.require(Role.admin)
    rows = await route_service.list_routes(db, principal.tenant_id)
    own = {r.alias: _route_out(r, deps, creds) for r, deps, creds in rows}
    merged = {**{a: _builtin_out(a) for a in BUILTINS}, **own}
    return [merged[a] for a in sorted(merged)]


class GatewayAdminApi(Controller):
    path = "/api"
    tags = ["gateway admin"]
    dependencies = {"principal": Provide(provide_api_principal), "db": Provide(provide_tenant_db)}
    security = [{"apiKey": []}]

    @get("/routes", summary="Model aliases and their deployments (built-ins included)")
    async def list_routes(self, db: Db, principal: Caller) -> list[RouteOut]:
        return await _all_routes(db, principal)

    @get("/routes/{alias:str}", summary="One alias")
    async def get_route(self, db: Db, principal: Caller, alias: FromPath[str]) -> RouteOut:
        for route in await _all_routes(db, principal):
            if route.alias == alias:
                return route
        raise NotFound(f"no route {alias!r}")

    @put("/routes/{alias:str}", summary="Create or replace an alias and its deployments")
    async def put_route(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        alias: FromPath[str],
        data: JSONBody[RouteIn],
    ) -> RouteOut:
        if not 1 <= len(alias) <= 200:
            raise PosturioError("alias must be 1-200 characters", code="invalid_route")
        if alias in request.app.state.gateway.virtual_models:
            raise Conflict(f"the model '{alias}' is served by Posturio itself; use another alias")
        route = await route_service.put_route(db, principal, alias, data)
        routes_changed(request, db, principal.tenant_id)
        rows = await route_service.list_routes(db, principal.tenant_id)
        return next(_route_out(r, deps, creds) for r, deps, creds in rows if r.id == route.id)

    @delete("/routes/{alias:str}", summary="Delete an alias", status_code=204)
    async def delete_route(
        self, request: Request, db: Db, principal: Caller, alias: FromPath[str]
    ) -> None:
        await route_service.delete_route(db, principal, alias)
        routes_changed(request, db, principal.tenant_id)

    @get("/routes-health", summary="Deployments cooling down after repeated failures")
    async def route_health(self, request: Request, principal: Caller) -> list[BreakerOut]:
        principal.require(Role.reviewer)
        report = await breaker_report(request.app.state.redis, principal.tenant_id)
        return [
            BreakerOut(
                deployment_id=str(r["deployment_id"]),
                deployment=str(r["deployment"]),
                failures=int(r["failures"]),
                cooling_down=bool(r["cooling_down"]),
                opened_at=float(r["opened_at"]),
                open_until=float(r["open_until"]),
            )
            for r in report
        ]

    @post("/credentials", summary="Store a provider API key (encrypted; never returned)")
    async def add_credential(
        self, request: Request, db: Db, principal: Caller, data: JSONBody[CredentialIn]
    ) -> CredentialOut:
        cred = await route_service.add_credential(db, principal, request.app.state.secret_box, data)
        return CredentialOut(str(cred.id), cred.name, cred.provider, cred.created_at)

    @get("/credentials", summary="Provider credentials (names only)")
    async def list_credentials(self, db: Db, principal: Caller) -> list[CredentialOut]:
        return [
            CredentialOut(str(c.id), c.name, c.provider, c.created_at)
            for c in await route_service.list_credentials(db, principal)
        ]

    @delete(
        "/credentials/{credential_id:str}", summary="Delete an unused credential", status_code=204
    )
    async def delete_credential(
        self, db: Db, principal: Caller, credential_id: FromPath[str]
    ) -> None:
        await route_service.delete_credential(db, principal, credential_id)

    @get("/usage", summary="Usage of the tenant from the daily rollups")
    async def usage(
        self, db: Db, principal: Caller, days: Annotated[int, QueryParameter(ge=1, le=366)] = 30
    ) -> UsageReport:
        principal.require(Role.reviewer)
        return await usage_report(db, principal, days, None)

    @get("/keys/{key_id:str}/usage", summary="Usage of one API key")
    async def key_usage(
        self,
        db: Db,
        principal: Caller,
        key_id: FromPath[str],
        days: Annotated[int, QueryParameter(ge=1, le=366)] = 30,
    ) -> UsageReport:
        key = await get_key(db, principal, key_id)
        return await usage_report(db, principal, days, key.id)

    @get("/usage/requests", summary="Recent gateway requests, newest first")
    async def usage_requests(
        self,
        db: Db,
        principal: Caller,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        key_id: FromQuery[str | None] = None,
    ) -> list[UsageEventOut]:
        principal.require(Role.reviewer)
        stmt = scoped(UsageEvent, principal.tenant_id)
        if key_id:
            key = await get_key(db, principal, key_id)
            stmt = stmt.where(UsageEvent.key_id == key.id)
        rows = (await db.scalars(stmt.order_by(UsageEvent.occurred_at.desc()).limit(limit))).all()
        return [event_out(e) for e in rows]
