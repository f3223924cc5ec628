"""Policies: the rules in force with shadow toggles, the allowlist (each value traced to
the review that added it, the rules it silences, and its removal), the editor (admins),
version history with a diff of the canonical documents and restore, and a test-a-prompt
box that shows findings and the decision."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from litestar import Request, get, post
from litestar.params import FromPath, PathParameter, QueryParameter
from litestar.response import Redirect, Template

from posturio.console.forms import form, many, text
from posturio.console.frame import ConsoleController, flash, page
from posturio.console.people import names
from posturio.gateway import review
from posturio.gateway.inspection.engine import BUILTIN_RULES
from posturio.gateway.policy import store
from posturio.gateway.policy.api import policy_changed, policy_out
from posturio.gateway.policy.dryrun import DryRunIn, dry_run
from posturio.gateway.policy.schema import DETECTORS, Action, Dialect, decode, to_builtins
from posturio.platform.dependencies import Caller, Db
from posturio.platform.errors import PosturioError
from posturio.platform.models import Role

RULE_FIELDS = ("id", "description", "action", "reroute_to", "direction", "min_score", "position")


async def _rule_choices(db: Db, principal: Caller) -> dict[str, Any]:
    """What the rule form offers: the schema's actions, detectors and dialects, the
    categories the built-in detectors and the tenant's own report, the aliases to
    reroute to."""
    _, doc = await store.in_force(db, principal.tenant_id)
    categories = {r.category for r in BUILTIN_RULES} | {d.category for d in doc.detectors}
    return {
        "actions": get_args(Action),
        "detectors": sorted(DETECTORS),
        "categories": sorted(categories),
        "dialects": get_args(Dialect),
        "aliases": sorted(await store.aliases(db, principal.tenant_id)),
    }


def _rule_from_form(data: dict[str, Any]) -> dict[str, Any]:
    """The form's fields as a rule of the policy document (the same JSON the editor
    saves; the schema judges it when the document is decoded)."""
    match: dict[str, Any] = {
        name: many(data, name) or None for name in ("detectors", "categories", "dialects")
    }
    if not (match["detectors"] or match["categories"]):
        raise PosturioError("choose at least one detector or category for the rule to match")
    match["direction"] = text(data, "direction") or "input"
    score = text(data, "min_score")
    if score:
        try:
            match["min_score"] = float(score)
        except ValueError:
            raise PosturioError(f"minimum score must be a number, not {score[:40]!r}") from None
    rule: dict[str, Any] = {
        "id": text(data, "id"),
        "action": text(data, "action"),
        "description": text(data, "description"),
        "shadow": text(data, "shadow") == "on",
        "match": {k: v for k, v in match.items() if v is not None},
    }
    if rule["action"] == "reroute" and text(data, "reroute_to"):  # none: the store says so
        rule["reroute_to"] = text(data, "reroute_to")
    return rule


def _expected(data: dict[str, Any]) -> int | None:
    seen = text(data, "expect")
    return int(seen) if seen.isdigit() else None


class PoliciesPage(ConsoleController):
    path = "/console/policies"

    async def _render(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller, **extra: Any
    ) -> Template:
        principal.require(Role.reviewer)
        current = policy_out(await store.latest(db, principal.tenant_id))
        doc = decode(current.document)
        versions = await store.versions(db, principal.tenant_id)
        allowlisted = await review.allowlisted(db, principal, doc)
        actors = [current.created_by, *(v.created_by for v in versions)]
        return await page(
            request,
            db,
            principal,
            "console/policies.html",
            active="Policies",
            policy=current,
            rules=doc.rules,
            allowlisted=allowlisted,
            patterns=doc.allowlist.patterns,
            versions=versions,
            names=await names(
                db, principal.tenant_id, [*actors, *(e.reviewed_by for e in allowlisted)]
            ),
            can_edit=principal.at_least(Role.admin),
            **extra,
        )

    @get("/")
    async def overview(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        undo: Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1)] = None,
    ) -> Template:
        # `undo`: the version just saved (an allowlisting); offered while still in force.
        return await self._render(request, db, principal, undo=undo)

    async def _editor(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        *,
        source: str | None = None,
        status_code: int = 200,
        **extra: Any,
    ) -> Template:
        """The JSON editor and, beside it, the form that adds a rule."""
        current = policy_out(await store.latest(db, principal.tenant_id))
        return await page(
            request,
            db,
            principal,
            "console/policy_edit.html",
            active="Policies",
            status_code=status_code,
            policy=current,
            source=store.canonical(current.document) if source is None else source,
            choices=await _rule_choices(db, principal),
            rule_form=extra.pop("rule_form", {}),
            **extra,
        )

    @get("/edit")
    async def editor(self, request: Request[Any, Any, Any], db: Db, principal: Caller) -> Template:
        principal.require(Role.admin)
        return await self._editor(request, db, principal)

    @post("/rules", status_code=303)
    async def add_rule(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Redirect | Template:
        """A rule from the form, first or last, saved as a new version exactly as the
        JSON editor saves a document (decoded by the schema, validated by the store)."""
        principal.require(Role.admin)
        data = await form(request)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                rule = _rule_from_form(data)
                _, current = await store.in_force(db, principal.tenant_id)
                document = to_builtins(current)  # a copy: the default policy is shared
                rules: list[Any] = document["rules"]  # type: ignore[assignment]
                rules.insert(0 if text(data, "position") != "last" else len(rules), rule)
                comment = text(data, "comment") or f"rule {rule['id']} added with the form"
                row = await store.save(db, principal, decode(document), comment)
        except PosturioError as exc:
            if exc.status_code in (401, 403):
                raise
            kept = {f: text(data, f) for f in RULE_FIELDS} | {
                f: many(data, f) for f in ("detectors", "categories", "dialects")
            }
            return await self._editor(
                request,
                db,
                principal,
                status_code=400,
                rule_error=exc.message,
                rule_form=kept | {"shadow": text(data, "shadow") == "on"},
            )
        policy_changed(request, db, principal.tenant_id)
        flash(request, f"Rule {rule['id']} added: policy version {row.version} is in force.")
        return Redirect("/console/policies", status_code=303)

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
            return await self._editor(
                request, db, principal, source=source, error=exc.message, status_code=400
            )
        policy_changed(request, db, principal.tenant_id)
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
        flash(request, f"Rule {rule_id} is now {state} (version {row.version}).")
        return Redirect("/console/policies", status_code=303)

    @post("/allowlist/remove", status_code=303)
    async def remove_allowlisted(
        self, request: Request[Any, Any, Any], db: Db, principal: Caller
    ) -> Redirect:
        """One entry out of the allowlist (a fingerprint or a pattern), as a new version."""
        principal.require(Role.admin)
        data = await form(request)
        _, current = await store.in_force(db, principal.tenant_id)
        doc = decode(to_builtins(current))  # a copy: the default policy is shared
        fingerprint, pattern = text(data, "fingerprint"), data.get("pattern")
        if fingerprint in doc.allowlist.fingerprints:
            doc.allowlist.fingerprints.remove(fingerprint)
            what = f"fingerprint {fingerprint}"
        elif isinstance(pattern, str) and pattern in doc.allowlist.patterns:
            doc.allowlist.patterns.remove(pattern)
            what = f"pattern {pattern}"
        else:
            flash(request, "That entry is not in the allowlist in force (nothing changed).")
            return Redirect("/console/policies#allowlist", status_code=303)
        row = await store.save(db, principal, doc, f"allowlist: removed {what}")
        policy_changed(request, db, principal.tenant_id)
        flash(request, f"Removed {what} from the allowlist (version {row.version}).")
        return Redirect("/console/policies#allowlist", status_code=303)

    @post("/versions/{number:int}/restore", status_code=303)
    async def restore(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        number: Annotated[int, PathParameter(ge=0, le=2**31 - 1)],
    ) -> Redirect:
        principal.require(Role.admin)
        try:
            async with db.begin_nested():  # a refusal keeps none of it
                row = await store.rollback_to(
                    db, principal, number, expect=_expected(await form(request))
                )
        except PosturioError as exc:
            if exc.status_code in (401, 403):
                raise
            flash(request, f"Nothing restored: {exc.message}.")
            return Redirect("/console/policies", status_code=303)
        policy_changed(request, db, principal.tenant_id)
        flash(request, f"Version {number} restored as version {row.version}, now in force.")
        return Redirect("/console/policies", status_code=303)

    @get("/diff")
    async def diff(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: Caller,
        a: Annotated[int, QueryParameter(ge=0, le=2**31 - 1)],
        b: Annotated[int, QueryParameter(ge=0, le=2**31 - 1)],
    ) -> Template:
        """What changed from version a to version b, on the canonical documents (so a
        one-entry change is one line, whatever order the keys were stored in)."""
        principal.require(Role.reviewer)

        async def document(n: int) -> dict[str, Any]:
            return store.document(await store.version(db, principal.tenant_id, n) if n else None)

        latest = await store.latest(db, principal.tenant_id)
        return await page(
            request,
            db,
            principal,
            "console/policy_diff.html",
            active="Policies",
            a=a,
            b=b,
            current=latest.version if latest else 0,
            lines=store.diff(await document(a), await document(b), f"version {a}", f"version {b}"),
            can_edit=principal.at_least(Role.admin),
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
