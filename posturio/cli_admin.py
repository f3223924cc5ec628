"""Admin commands of the `posturio` CLI: tenants, members, API keys, users, audit.

They run the same service functions as the admin API, as the operator ("cli" actor,
owner rights) inside the chosen tenant's row-level-security context.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from posturio.config import Settings
from posturio.gateway.policy.cli import policy_group
from posturio.navigator.cli import navigator_group
from posturio.platform import accounts, audit, keys
from posturio.platform.cli import out, publish_change, run, session_for
from posturio.platform.db import create_engine
from posturio.platform.invalidation import ROUTES
from posturio.platform.keyauth import ALL_KEYS
from posturio.platform.models import Role, Scope, Tenant
from posturio.platform.principal import OPERATOR, Principal

if TYPE_CHECKING:
    from posturio.gateway.schemas import CredentialProvider


def _table(*columns: str) -> Table:
    table = Table(*columns)
    return table


def register(main: click.Group) -> None:
    main.add_command(routes_group)
    main.add_command(credentials_group)
    main.add_command(tenants)
    main.add_command(members)
    main.add_command(keys_group)
    main.add_command(users)
    main.add_command(audit_group)
    main.add_command(demo_group)
    main.add_command(outbox)
    main.add_command(policy_group)
    main.add_command(navigator_group)


@click.group()
def tenants() -> None:
    """Create and list tenants."""


@tenants.command("create")
@click.argument("name")
@click.option("--owner-email", help="Add this user as the tenant's owner.")
@click.option("--owner-password", help="Initial password for a new owner (else invited).")
def tenants_create(name: str, owner_email: str | None, owner_password: str | None) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, None) as (session, _):
            tenant = await accounts.create_tenant(session, name, actor=OPERATOR)
            if owner_email:
                principal = Principal(tenant.id, Role.owner, OPERATOR)
                await accounts.add_member(
                    session, principal, owner_email, Role.owner, owner_password
                )
        click.echo(json.dumps({"id": str(tenant.id), "name": tenant.name, "slug": tenant.slug}))

    run(go)


@tenants.command("list")
def tenants_list() -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, None) as (session, _):
            rows = await accounts.list_tenants(session)
        table = _table("id", "slug", "name", "created")
        for t in rows:
            table.add_row(str(t.id), t.slug, t.name, t.created_at.isoformat(timespec="seconds"))
        out.print(table)

    run(go)


@click.group()
def members() -> None:
    """Add, list, change and remove a tenant's members."""


@members.command("add")
@click.argument("tenant")
@click.argument("email")
@click.option(
    "--role", type=click.Choice([r.value for r in Role]), default="member", show_default=True
)
@click.option("--password", help="Initial password for a new user (else invited).")
def members_add(tenant: str, email: str, role: str, password: str | None) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            view = await accounts.add_member(session, principal, email, Role(role), password)
        click.echo(json.dumps({"id": str(view.membership.id), "email": view.email, "role": role}))

    run(go)


@members.command("list")
@click.argument("tenant")
def members_list(tenant: str) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            views = await accounts.list_members(session, principal)
        table = _table("id", "email", "role")
        for v in views:
            table.add_row(str(v.membership.id), v.email, v.membership.role)
        out.print(table)

    run(go)


@members.command("set-role")
@click.argument("tenant")
@click.argument("member_id")
@click.argument("role", type=click.Choice([r.value for r in Role]))
def members_set_role(tenant: str, member_id: str, role: str) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            await accounts.change_role(session, principal, member_id, Role(role))
        await _broadcast_key(settings, ALL_KEYS)  # their keys follow the new role
        click.echo("role changed")

    run(go)


@members.command("remove")
@click.argument("tenant")
@click.argument("member_id")
def members_remove(tenant: str, member_id: str) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            await accounts.remove_member(session, principal, member_id)
        await _broadcast_key(settings, ALL_KEYS)  # their keys stop at once
        click.echo("member removed")

    run(go)


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys."""


@keys_group.command("create")
@click.argument("tenant")
@click.option("--name", required=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in Scope]),
    default=["gateway"],
    show_default=True,
)
@click.option("--expires-in-days", type=int)
def keys_create(
    tenant: str, name: str, scopes: tuple[str, ...], expires_in_days: int | None
) -> None:
    """Create a key; the secret is printed once, on stdout."""

    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            created = await keys.create_key(
                session, principal, name=name, scopes=list(scopes), expires_in_days=expires_in_days
            )
        click.echo(created.plaintext)
        click.echo(
            f"key id {created.key.id} (prefix {created.key.prefix}); the secret is not shown again",
            err=True,
        )

    run(go)


@keys_group.command("list")
@click.argument("tenant")
def keys_list(tenant: str) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            rows = await keys.list_keys(session, principal)
        table = _table("id", "prefix", "name", "scopes", "status", "last used")
        for k in rows:
            last = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "-"
            table.add_row(str(k.id), k.prefix, k.name, ",".join(k.scopes), keys.key_status(k), last)
        out.print(table)

    run(go)


@keys_group.command("revoke")
@click.argument("tenant")
@click.argument("key_id")
@click.option("--reason")
def keys_revoke(tenant: str, key_id: str, reason: str | None) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            key = await keys.revoke_key(session, principal, key_id, reason=reason)
        await _broadcast_key(settings, key.prefix)
        click.echo(f"revoked {key.prefix}")

    run(go)


async def _broadcast_key(settings: Settings, prefix: str) -> None:
    from posturio.platform.keyauth import broadcast_key_change
    from posturio.platform.redis import create_redis

    if settings.redis_url:
        redis = create_redis(settings)
        try:
            await broadcast_key_change(redis, prefix)
        finally:
            await redis.aclose()


async def _demo_rows(settings: Settings, prefix: str | None = None) -> list[Any]:
    """Demo keys across every tenant (the operator's view: the owner connection)."""
    from sqlalchemy import select

    from posturio.platform.models import ApiKey

    engine = create_engine(settings, as_owner=True)
    try:
        async with engine.connect() as conn:
            stmt = (
                select(ApiKey.__table__, Tenant.slug)
                .join(Tenant, Tenant.id == ApiKey.tenant_id)
                .where(Tenant.plan == "demo")
                .order_by(ApiKey.created_at.desc())
            )
            if prefix is not None:
                stmt = stmt.where(ApiKey.prefix == prefix)
            return list((await conn.execute(stmt)).all())
    finally:
        await engine.dispose()


@click.group("demo")
def demo_group() -> None:
    """Demo keys of publicly signed-up tenants: list, extend, revoke (operator)."""


@demo_group.command("list")
def demo_list() -> None:
    async def go(settings: Settings) -> None:
        table = _table("tenant", "prefix", "name", "status", "expires", "last used")
        for row in await _demo_rows(settings):
            expires = f"{row.expires_at:%Y-%m-%d}" if row.expires_at else "-"
            last = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "-"
            table.add_row(row.slug, row.prefix, row.name, keys.key_status(row), expires, last)
        out.print(table)

    run(go)


async def _demo_key(settings: Settings, prefix: str) -> Any:
    rows = await _demo_rows(settings, prefix)
    if not rows:
        raise click.ClickException(f"no demo key with prefix {prefix!r}")
    return rows[0]


@demo_group.command("extend")
@click.argument("prefix")
@click.option("--days", type=int, required=True, help="Days added to the expiry.")
def demo_extend(prefix: str, days: int) -> None:
    async def go(settings: Settings) -> None:
        row = await _demo_key(settings, prefix)
        async with session_for(settings, str(row.tenant_id)) as (session, principal):
            assert principal is not None
            key = await keys.extend_key(session, principal, str(row.id), days=days)
            expires = key.expires_at
        await _broadcast_key(settings, prefix)
        click.echo(f"{prefix} now expires {expires:%Y-%m-%d %H:%M} UTC")

    run(go)


@demo_group.command("revoke")
@click.argument("prefix")
@click.option("--reason")
def demo_revoke(prefix: str, reason: str | None) -> None:
    async def go(settings: Settings) -> None:
        row = await _demo_key(settings, prefix)
        async with session_for(settings, str(row.tenant_id)) as (session, principal):
            assert principal is not None
            await keys.revoke_key(session, principal, str(row.id), reason=reason)
        await _broadcast_key(settings, prefix)
        click.echo(f"revoked {prefix}")

    run(go)


@click.command("outbox")
def outbox() -> None:
    """Messages the platform would send (email verification), newest first."""
    from sqlalchemy import select

    from posturio.platform.models import OutboxEmail

    async def go(settings: Settings) -> None:
        engine = create_engine(settings, as_owner=True)
        try:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(OutboxEmail.__table__)
                        .order_by(OutboxEmail.created_at.desc())
                        .limit(200)
                    )
                ).all()
        finally:
            await engine.dispose()
        table = _table("created", "to", "kind", "confirmed", "body")
        for r in rows:
            table.add_row(
                f"{r.created_at:%Y-%m-%d %H:%M}",
                r.to_address,
                r.kind,
                "yes" if r.confirmed_at else "pending",
                r.body,
            )
        out.print(table)

    run(go)


@click.group()
def users() -> None:
    """Manage user accounts."""


@users.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_set_password(email: str, password_stdin: bool) -> None:
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else click.prompt("New password", hide_input=True, confirmation_prompt=True)
    )

    async def go(settings: Settings) -> None:
        async with session_for(settings, None) as (session, _):
            user = await accounts.user_by_email(session, email)
            if user is None:
                raise click.ClickException(f"no user {email}")
            await accounts.set_password(session, user, password)
        click.echo("password set")

    run(go)


@click.group("audit")
def audit_group() -> None:
    """Inspect the audit log."""


@audit_group.command("verify")
@click.option("--tenant", help="One tenant (id or slug); default all.")
def audit_verify(tenant: str | None) -> None:
    """Verify hash chains; exit 1 and name the first broken row if one is broken."""

    async def go(settings: Settings) -> bool:
        async with session_for(settings, None) as (session, _):
            targets = await accounts.list_tenants(session)
        if tenant:
            targets = [t for t in targets if tenant in (str(t.id), t.slug)]
            if not targets:
                raise click.ClickException(f"no tenant {tenant!r}")
        all_ok = True
        for t in targets:
            async with session_for(settings, str(t.id)) as (session, _):
                report = await audit.verify_chain(session, t.id)
            all_ok &= report.ok
            if report.ok:
                click.echo(f"ok      {t.slug}: {report.checked} events, chain intact")
            else:
                click.echo(
                    f"BROKEN  {t.slug}: first broken row seq={report.broken_seq} "
                    f"id={report.broken_id}: {report.reason} ({report.checked} rows before it ok)"
                )
        return all_ok

    if not run(go):
        raise SystemExit(1)


@click.group("routes")
def routes_group() -> None:
    """Model aliases and their deployments (applied without restart)."""


@routes_group.command("list")
@click.argument("tenant")
def routes_list(tenant: str) -> None:
    from posturio.gateway import routes as route_service

    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            rows = await route_service.list_routes(session, principal.tenant_id)
        table = _table("alias", "kind", "deployment", "provider/model", "weight", "priority")
        for route, deployments, _ in rows:
            for d in deployments:
                table.add_row(
                    route.alias,
                    route.kind,
                    d.name,
                    f"{d.provider}/{d.model}",
                    str(d.weight),
                    str(d.priority),
                )
        out.print(table)

    run(go)


@routes_group.command("put")
@click.argument("tenant")
@click.argument("alias")
@click.option(
    "--file",
    "spec_file",
    type=click.File("rb"),
    required=True,
    help='JSON: {"kind": "chat", "deployments": [{"name", "provider", "model", ...}]}',
)
def routes_put(tenant: str, alias: str, spec_file: Any) -> None:
    """Create or replace ALIAS from a JSON spec (same body as PUT /api/routes/ALIAS)."""
    import msgspec

    from posturio.gateway import routes as route_service
    from posturio.gateway.schemas import RouteIn

    try:
        spec = msgspec.json.decode(spec_file.read(), type=RouteIn)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise click.ClickException(f"invalid route spec: {exc}") from None

    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            await route_service.put_route(session, principal, alias, spec)
            tenant_id = str(principal.tenant_id)
        await publish_change(settings, ROUTES, tenant_id)
        click.echo(f"route {alias} saved")

    run(go)


@routes_group.command("delete")
@click.argument("tenant")
@click.argument("alias")
def routes_delete(tenant: str, alias: str) -> None:
    from posturio.gateway import routes as route_service

    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            await route_service.delete_route(session, principal, alias)
            tenant_id = str(principal.tenant_id)
        await publish_change(settings, ROUTES, tenant_id)
        click.echo(f"route {alias} deleted")

    run(go)


@click.group("credentials")
def credentials_group() -> None:
    """Provider API keys, stored encrypted."""


@credentials_group.command("add")
@click.argument("tenant")
@click.argument("name")
@click.option("--provider", type=click.Choice(["openai", "azure", "anthropic"]), required=True)
@click.option(
    "--from-env",
    "env_var",
    help="Read the secret from this environment variable (default: standard input).",
)
def credentials_add(
    tenant: str, name: str, provider: CredentialProvider, env_var: str | None
) -> None:
    import os

    from posturio.gateway import routes as route_service
    from posturio.gateway.schemas import CredentialIn
    from posturio.platform.crypto import SecretBox

    secret = os.environ.get(env_var, "") if env_var else sys.stdin.readline().strip()
    if not secret:
        raise click.ClickException("no secret given (stdin or --from-env)")

    async def go(settings: Settings) -> None:
        box = SecretBox(settings.resolved_encryption_key())
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            cred = await route_service.add_credential(
                session, principal, box, CredentialIn(name=name, provider=provider, api_key=secret)
            )
        click.echo(f"credential {cred.name} ({cred.provider}) stored encrypted")

    run(go)


@credentials_group.command("list")
@click.argument("tenant")
def credentials_list(tenant: str) -> None:
    from posturio.gateway import routes as route_service

    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            creds = await route_service.list_credentials(session, principal)
        table = _table("id", "name", "provider", "created")
        for c in creds:
            table.add_row(str(c.id), c.name, c.provider, c.created_at.isoformat(timespec="seconds"))
        out.print(table)

    run(go)
