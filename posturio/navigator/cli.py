"""`posturio navigator …`: the operator grants, revokes and lists the server folders a
tenant's directory and local git sources may read (never the tenant: no API writes
grants, and the app's database role may only read them)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import click
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import Settings
from posturio.navigator import grants
from posturio.platform import accounts
from posturio.platform.cli import run
from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
from posturio.platform.models import Tenant
from posturio.platform.principal import OPERATOR


@asynccontextmanager
async def operator_session(
    settings: Settings, tenant_ref: str
) -> AsyncIterator[tuple[AsyncSession, Tenant]]:
    """One transaction on the owner connection (grants are not writable by the app's
    role), for the tenant named by id or slug."""
    engine = create_engine(settings, as_owner=True)
    try:
        async with tenant_session(create_sessionmaker(engine), None) as session:
            tenant = await accounts.get_tenant_by_ref(session, tenant_ref)
            if tenant is None:
                raise click.ClickException(f"no tenant {tenant_ref!r} (give its id or slug)")
            yield session, tenant
    finally:
        await engine.dispose()


@click.group("navigator")
def navigator_group() -> None:
    """Server folders granted to tenants for Navigator's directory and git sources."""


@navigator_group.command("grant")
@click.argument("tenant")
@click.argument("path")
def navigator_grant(tenant: str, path: str) -> None:
    """Let TENANT's sources read PATH and below (PATH must be under POSTURIO_NAVIGATOR_ROOTS)."""

    async def go(settings: Settings) -> None:
        settings = grants.embedded_roots(settings)
        async with operator_session(settings, tenant) as (session, row):
            grant = await grants.grant(session, settings, row.id, path, OPERATOR)
        click.echo(json.dumps({"tenant": row.slug, "path": grant.path}))

    run(go)


@navigator_group.command("revoke")
@click.argument("tenant")
@click.argument("path")
def navigator_revoke(tenant: str, path: str) -> None:
    """Withdraw a grant: TENANT's sources in PATH fail their next sync."""

    async def go(settings: Settings) -> None:
        async with operator_session(settings, tenant) as (session, row):
            await grants.revoke(session, row.id, path, OPERATOR)
        click.echo(f"revoked {path} from {row.slug}")

    run(go)


@navigator_group.command("grants")
@click.argument("tenant")
def navigator_grants(tenant: str) -> None:
    """The folders granted to TENANT."""

    async def go(settings: Settings) -> None:
        async with operator_session(settings, tenant) as (session, row):
            rows = await grants.listing(session, row.id)
        for g in rows:  # whole paths, one JSON object a line (a table would cut them)
            click.echo(
                json.dumps(
                    {
                        "path": g.path,
                        "granted_by": g.granted_by,
                        "granted_at": g.created_at.isoformat(timespec="seconds"),
                    }
                )
            )

    run(go)
