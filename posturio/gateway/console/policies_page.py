"""Policies: the rules in force with shadow toggles, the editor (admins), version history
with a diff, and a test-a-prompt box that shows findings and the decision."""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from posturio.gateway.console.forms import form, text
from posturio.gateway.policy import store
from posturio.gateway.policy.api import policy_changed, policy_out
from posturio.gateway.policy.dryrun import DryRunIn, dry_run
from posturio.gateway.policy.schema import decode, to_builtins
from posturio.platform.console import ConsoleController, flash, page
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import PosturioError
from posturio.platform.models import Role


def pretty(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False)


class PoliciesPage(ConsoleController):
    path = "/console/policies"

    async def _render(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, **extra: Any
    ) -> Template:
        principal.require(Role.reviewer)
        current = policy_out(await store.latest(db, principal.tenant_id))
        return await page(
            request,
            db,
            principal,
            "console/policies.html",
            active="Policies",
            policy=current,
            rules=decode(current.document).rules,
            versions=await store.versions(db, principal.tenant_id),
            can_edit=principal.at_least(Role.admin),
            **extra,
        )

    @get("/")
    async def overview(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Template:
        return await self._render(request, db, principal)

    @get("/edit")
    async def editor(self, request: Request[Any, Any, Any], db: Db, principal: Caller) -> Template:
        principal.require(Role.admin)
        current = policy_out(await store.latest(db, principal.tenant_id))
        return await page(
            request,
            db,
            principal,
            "console/policy_edit.html",
            active="Policies",
            policy=current,
            source=pretty(current.document),
        )

    @post("/edit", status_code=303)
    async def save(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Redirect | Template:
        principal.require(Role.admin)
        data = await form(request)
        source = text(data, "document")
        try:
            doc = decode(source.encode())
            row = await store.save(db, principal, doc, text(data, "comment"))
        except PosturioError as exc:
            current = policy_out(await store.latest(db, principal.tenant_id))
            return await page(
                request,
                db,
                principal,
                "console/policy_edit.html",
                active="Policies",
                policy=current,
                source=source,
                error=exc.message,
                status_code=400,
            )
        policy_changed(request, db, principal.tenant_id)
        await db.commit()
        flash(request, f"Policy version {row.version} saved and in force.")
        return Redirect("/console/policies", status_code=303)

    @post("/rules/{rule_id:str}/shadow", status_code=303)
    async def toggle_shadow(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, rule_id: FromPath[str]
    ) -> Redirect:
        principal.require(Role.admin)
        _, current = await store.in_force(db, principal.tenant_id)
        doc = decode(to_builtins(current))  # a copy: the default policy is shared
        rule = next((r for r in doc.rules if r.id == rule_id), None)
        if rule is None:
            raise PosturioError(f"no rule {rule_id!r} in the policy in force")
        rule.shadow = not rule.shadow
        state = "shadow" if rule.shadow else "enforcing"
        row = await store.save(db, principal, doc, f"rule {rule_id}: {state}")
        policy_changed(request, db, principal.tenant_id)
        await db.commit()
        flash(request, f"Rule {rule_id} is now {state} (version {row.version}).")
        return Redirect("/console/policies", status_code=303)

    @get("/diff")
    async def diff(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        a: Annotated[int, QueryParameter(ge=0)],
        b: Annotated[int, QueryParameter(ge=0)],
    ) -> Template:
        principal.require(Role.reviewer)

        async def source(n: int) -> list[str]:
            doc = policy_out(await store.version(db, principal.tenant_id, n) if n else None)
            return pretty(doc.document).splitlines()

        lines = list(
            difflib.unified_diff(
                await source(a), await source(b), f"version {a}", f"version {b}", lineterm=""
            )
        )
        return await page(
            request,
            db,
            principal,
            "console/policy_diff.html",
            active="Policies",
            a=a,
            b=b,
            lines=lines,
        )

    @post("/test", status_code=200)
    async def test_prompt(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Template:
        data = await form(request)
        prompt = text(data, "prompt")
        secret = request.app.state.settings.resolved_secret_key().encode()
        result = await dry_run(
            db, principal, secret, DryRunIn(text=prompt, model=text(data, "model"))
        )
        return await self._render(request, db, principal, tested=result, prompt=prompt)
