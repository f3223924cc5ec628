"""`posturio policy …`: show, history, set, restore and dry-run a tenant's policy."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import msgspec
from rich.table import Table

from posturio.config import Settings
from posturio.gateway.policy import store
from posturio.gateway.policy.api import policy_out
from posturio.gateway.policy.dryrun import DryRunIn, dry_run
from posturio.gateway.policy.schema import decode
from posturio.platform.cli import out, publish_change, run, session_for
from posturio.platform.invalidation import POLICIES


def _print(value: Any) -> None:
    click.echo(json.dumps(msgspec.to_builtins(value), indent=2, default=str))


@click.group("policy")
def policy_group() -> None:
    """A tenant's inspection policy: every change is a new, audited version."""


@policy_group.command("show")
@click.argument("tenant")
@click.option("--version", "number", type=int, help="An older version (default: in force).")
def policy_show(tenant: str, number: int | None) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            row = (
                await store.version(session, principal.tenant_id, number)
                if number is not None
                else await store.latest(session, principal.tenant_id)
            )
            _print(policy_out(row))

    run(go)


@policy_group.command("history")
@click.argument("tenant")
def policy_history(tenant: str) -> None:
    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            rows = await store.versions(session, principal.tenant_id)
        table = Table("version", "created at", "by", "comment")
        for r in rows:
            table.add_row(
                str(r.version), f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.created_by, r.comment
            )
        if not rows:
            table.add_row("0", "-", "-", "built-in default")
        out.print(table)

    run(go)


@policy_group.command("set")
@click.argument("tenant")
@click.option("--file", "doc_file", type=click.File("rb"), required=True, help="Policy JSON.")
@click.option("--comment", default="", help="Why (kept with the version and in the audit log).")
def policy_set(tenant: str, doc_file: Any, comment: str) -> None:
    """Save the policy in FILE as the tenant's new version (same body as PUT /api/policy's
    "document")."""
    raw = doc_file.read()

    async def go(settings: Settings) -> None:
        doc = decode(raw)
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            row = await store.save(session, principal, doc, comment)
            version, tenant_id = row.version, str(principal.tenant_id)
        await publish_change(settings, POLICIES, tenant_id)
        click.echo(f"policy version {version} saved and in force")

    run(go)


@policy_group.command("restore")
@click.argument("tenant")
@click.argument("number", type=int)
def policy_restore(tenant: str, number: int) -> None:
    """Make version NUMBER current again (saved as a new version)."""

    async def go(settings: Settings) -> None:
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            row = await store.rollback_to(session, principal, number)
            version, tenant_id = row.version, str(principal.tenant_id)
        await publish_change(settings, POLICIES, tenant_id)
        click.echo(f"version {number} restored as version {version}")

    run(go)


@policy_group.command("dry-run")
@click.argument("tenant")
@click.option("--text", help="The prompt (default: read from stdin).")
@click.option("--model", default="", help="The model alias the prompt would be sent to.")
@click.option("--direction", type=click.Choice(["input", "output"]), default="input")
def policy_dry_run(tenant: str, text: str | None, model: str, direction: str) -> None:
    """Findings and decision for a prompt under the policy in force; nothing is sent and
    nothing is recorded. Exit status 2 when the policy would block it."""
    prompt = text if text is not None else sys.stdin.read()
    blocked = False

    async def go(settings: Settings) -> None:
        nonlocal blocked
        secret = settings.resolved_secret_key().encode()
        async with session_for(settings, tenant) as (session, principal):
            assert principal is not None
            result = await dry_run(
                session,
                principal,
                secret,
                DryRunIn(text=prompt, model=model, direction=direction),  # type: ignore[arg-type]
            )
        blocked = result.decision == "block"
        _print(result)

    run(go)
    if blocked:
        sys.exit(2)
