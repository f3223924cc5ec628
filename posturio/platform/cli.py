"""What every admin command of the `posturio` CLI shares, whichever package declares it
(posturio/cli_admin.py, gateway/policy/cli.py, navigator/cli.py): the settings, running
one async step, a session as the operator, and telling running gateways of a change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from posturio.config import ConfigError, Settings, load_settings
from posturio.platform import accounts
from posturio.platform.db import create_engine, create_sessionmaker, tenant_session
from posturio.platform.errors import PosturioError
from posturio.platform.models import Role, Tenant
from posturio.platform.principal import OPERATOR, Principal

T = TypeVar("T")

out = Console()


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.database_url is None:
        raise click.ClickException(
            "POSTURIO_DATABASE_URL is not set. For the embedded stack: "
            "`set -a; . .posturio/services.env; set +a` first (or use `make cli ARGS=...`)."
        )
    return settings


def run(fn: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one command's async body; a refusal is the command's error message."""
    settings = _settings()
    try:
        return asyncio.run(fn(settings))
    except PosturioError as exc:
        raise click.ClickException(exc.message) from None


@asynccontextmanager
async def session_for(
    settings: Settings, tenant_ref: str | None
) -> AsyncIterator[tuple[AsyncSession, Principal | None]]:
    """One transaction inside the tenant named by id or slug, as the operator (owner
    rights); without a tenant, outside any."""
    engine = create_engine(settings)
    try:
        sessionmaker = create_sessionmaker(engine)
        tenant: Tenant | None = None
        if tenant_ref is not None:
            async with sessionmaker() as lookup:
                tenant = await accounts.get_tenant_by_ref(lookup, tenant_ref)
            if tenant is None:
                raise click.ClickException(f"no tenant {tenant_ref!r} (give its id or slug)")
        async with tenant_session(sessionmaker, tenant.id if tenant else None) as session:
            principal = Principal(tenant.id, Role.owner, OPERATOR) if tenant else None
            yield session, principal
    finally:
        await engine.dispose()


async def publish_change(settings: Settings, channel: str, tenant_id: str) -> None:
    """Tell running gateways to drop their cached copy (routes, policy) at once."""
    from posturio.platform.invalidation import publish
    from posturio.platform.redis import create_redis

    if settings.redis_url:
        redis = create_redis(settings)
        try:
            await publish(redis, channel, tenant_id)
        finally:
            await redis.aclose()
