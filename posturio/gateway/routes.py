"""Routes, deployments and provider credentials: the admin service (never commits) and
the loader that turns a tenant's rows into its runtime route table."""

from __future__ import annotations

import uuid
from decimal import Decimal
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from posturio.gateway.models import Deployment, ProviderCredential, Route
from posturio.gateway.providers.base import Target
from posturio.gateway.routing import BUILTINS, ResolvedRoute, RouteLoader, RouteTable
from posturio.gateway.schemas import CredentialIn, DeploymentIn, RouteIn
from posturio.platform import audit
from posturio.platform.crypto import SecretBox
from posturio.platform.db import utcnow
from posturio.platform.errors import Conflict, NotFound, PosturioError
from posturio.platform.models import Role
from posturio.platform.principal import Principal, require_standard_plan
from posturio.platform.repository import get_scoped, scoped, scoped_delete

NEEDS_URL = {"azure"}
UPSTREAM_PROVIDERS = {"openai", "azure", "anthropic"}
KIND_PROVIDERS = {
    "chat": {"openai", "azure", "anthropic", "echo"},
    "embeddings": {"openai", "azure", "local"},
}


async def list_routes(
    session: AsyncSession, tenant_id: uuid.UUID
) -> list[tuple[Route, list[Deployment], dict[uuid.UUID, str]]]:
    routes = (await session.scalars(scoped(Route, tenant_id).order_by(Route.alias))).all()
    deployments = (await session.scalars(scoped(Deployment, tenant_id))).all()
    creds = {
        c.id: c.name for c in (await session.scalars(scoped(ProviderCredential, tenant_id))).all()
    }
    by_route: dict[uuid.UUID, list[Deployment]] = {}
    for d in deployments:
        by_route.setdefault(d.route_id, []).append(d)
    return [
        (r, sorted(by_route.get(r.id, []), key=lambda d: (d.priority, d.name)), creds)
        for r in routes
    ]


async def _route(session: AsyncSession, tenant_id: uuid.UUID, alias: str) -> Route | None:
    return (await session.scalars(scoped(Route, tenant_id).where(Route.alias == alias))).first()


def _check_deployment(
    kind: str, d: DeploymentIn, credentials: dict[str, ProviderCredential]
) -> None:
    where = f"deployment {d.name!r}"
    if d.provider not in KIND_PROVIDERS[kind]:
        raise PosturioError(
            f"{where}: provider {d.provider} cannot serve {kind} routes", code="invalid_route"
        )
    if d.provider in NEEDS_URL and not d.base_url:
        raise PosturioError(f"{where}: base_url is required for {d.provider}", code="invalid_route")
    if d.base_url:
        parts = urlsplit(d.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PosturioError(f"{where}: base_url must be an http(s) URL", code="invalid_route")
    if d.credential is not None:
        cred = credentials.get(d.credential)
        if cred is None:
            raise PosturioError(
                f"{where}: no credential named {d.credential!r}", code="invalid_route"
            )
        if cred.provider != d.provider:
            raise PosturioError(
                f"{where}: credential {d.credential!r} is for {cred.provider}", code="invalid_route"
            )
    elif d.provider in UPSTREAM_PROVIDERS and not d.base_url:
        raise PosturioError(
            f"{where}: a hosted {d.provider} deployment needs a credential", code="invalid_route"
        )


async def put_route(
    session: AsyncSession, principal: Principal, alias: str, spec: RouteIn
) -> Route:
    """Create or replace an alias and all its deployments (applied without restart)."""
    principal.require(Role.admin)
    await require_standard_plan(session, principal, "defining routes")
    if not spec.deployments:
        raise PosturioError("a route needs at least one deployment", code="invalid_route")
    names = [d.name for d in spec.deployments]
    if len(set(names)) != len(names):
        raise PosturioError("deployment names must be unique within a route", code="invalid_route")
    if not any(d.enabled and d.weight > 0 for d in spec.deployments):
        raise PosturioError(
            "at least one deployment must be enabled with weight > 0", code="invalid_route"
        )
    credentials = {
        c.name: c
        for c in (await session.scalars(scoped(ProviderCredential, principal.tenant_id))).all()
    }
    for d in spec.deployments:
        _check_deployment(spec.kind, d, credentials)
    route = await _route(session, principal.tenant_id, alias)
    created = route is None
    if route is None:
        route = Route(tenant_id=principal.tenant_id, alias=alias, kind=spec.kind)
        session.add(route)
        await session.flush()
    else:
        route.kind = spec.kind
        route.updated_at = utcnow()
        await session.execute(
            scoped_delete(Deployment, principal.tenant_id).where(Deployment.route_id == route.id)
        )
    for d in spec.deployments:
        session.add(
            Deployment(
                tenant_id=principal.tenant_id,
                route_id=route.id,
                name=d.name,
                provider=d.provider,
                model=d.model,
                base_url=d.base_url,
                api_version=d.api_version,
                credential_id=credentials[d.credential].id if d.credential else None,
                weight=d.weight,
                priority=d.priority,
                timeout_s=d.timeout_s,
                max_retries=d.max_retries,
                input_price_per_1k=Decimal(str(d.input_price_per_1k)),
                output_price_per_1k=Decimal(str(d.output_price_per_1k)),
                enabled=d.enabled,
            )
        )
    await session.flush()
    await audit.by(
        session,
        principal,
        action="route.create" if created else "route.update",
        target_type="route",
        target_id=alias,
        data={
            "kind": spec.kind,
            "deployments": [
                {
                    "name": d.name,
                    "provider": d.provider,
                    "model": d.model,
                    "weight": d.weight,
                    "priority": d.priority,
                }
                for d in spec.deployments
            ],
        },
    )
    return route


async def delete_route(session: AsyncSession, principal: Principal, alias: str) -> None:
    principal.require(Role.admin)
    route = await _route(session, principal.tenant_id, alias)
    if route is None:
        raise NotFound(
            f"no route {alias!r}"
            + (" (built-in aliases cannot be deleted)" if alias in BUILTINS else "")
        )
    await session.delete(route)
    await audit.by(
        session,
        principal,
        action="route.delete",
        target_type="route",
        target_id=alias,
    )


async def add_credential(
    session: AsyncSession, principal: Principal, box: SecretBox, spec: CredentialIn
) -> ProviderCredential:
    principal.require(Role.admin)
    await require_standard_plan(session, principal, "storing provider credentials")
    existing = (
        await session.scalars(
            scoped(ProviderCredential, principal.tenant_id).where(
                ProviderCredential.name == spec.name
            )
        )
    ).first()
    if existing is not None:
        raise Conflict(f"a credential named {spec.name!r} exists")
    cred = ProviderCredential(
        tenant_id=principal.tenant_id,
        name=spec.name,
        provider=spec.provider,
        secret_encrypted=box.encrypt(spec.api_key),
    )
    session.add(cred)
    await session.flush()
    await audit.by(
        session,
        principal,
        action="credential.create",
        target_type="credential",
        target_id=cred.id,
        data={"name": spec.name, "provider": spec.provider},
    )
    return cred


async def list_credentials(session: AsyncSession, principal: Principal) -> list[ProviderCredential]:
    principal.require(Role.admin)
    stmt = scoped(ProviderCredential, principal.tenant_id).order_by(ProviderCredential.name)
    return list((await session.scalars(stmt)).all())


async def delete_credential(
    session: AsyncSession, principal: Principal, credential_id: str
) -> None:
    principal.require(Role.admin)
    cred = await get_scoped(
        session, ProviderCredential, principal.tenant_id, credential_id, "credential"
    )
    used = (
        await session.scalars(
            scoped(Deployment, principal.tenant_id).where(Deployment.credential_id == cred.id)
        )
    ).first()
    if used is not None:
        raise Conflict("this credential is used by a deployment; change the route first")
    await session.delete(cred)
    await audit.by(
        session,
        principal,
        action="credential.delete",
        target_type="credential",
        target_id=cred.id,
        data={"name": cred.name},
    )


def loader(box: SecretBox) -> RouteLoader:
    """The RouteCache loader: a tenant's routes with decrypted credentials, in memory only."""

    async def load(session: AsyncSession, tenant_id: uuid.UUID) -> RouteTable:
        creds = {
            c.id: c for c in (await session.scalars(scoped(ProviderCredential, tenant_id))).all()
        }
        routes = (await session.scalars(scoped(Route, tenant_id))).all()
        deployments = (
            await session.scalars(scoped(Deployment, tenant_id).where(Deployment.enabled.is_(True)))
        ).all()
        table: dict[str, ResolvedRoute] = {}
        for route in routes:
            targets = []
            for d in deployments:
                if d.route_id != route.id:
                    continue
                cred = creds.get(d.credential_id) if d.credential_id else None
                targets.append(
                    Target(
                        id=str(d.id),
                        name=d.name,
                        provider=d.provider,
                        model=d.model,
                        base_url=d.base_url,
                        api_version=d.api_version,
                        api_key=box.decrypt(cred.secret_encrypted) if cred else None,
                        timeout_s=d.timeout_s,
                        max_retries=d.max_retries,
                        weight=d.weight,
                        priority=d.priority,
                        input_price_per_1k=d.input_price_per_1k,
                        output_price_per_1k=d.output_price_per_1k,
                    )
                )
            table[route.alias] = ResolvedRoute(route.alias, route.kind, tuple(targets))
        return RouteTable(table)

    return load
