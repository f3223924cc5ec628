"""Overview: requests, tokens, cost and policy actions over time, top models, keys and
finding types. Reviewers and up see the tenant; a member sees their own keys' usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import func

from posturio.console.frame import ConsoleController, page
from posturio.gateway.models import UsageDaily, UsageFindingsDaily
from posturio.platform.dependencies import Caller, Db
from posturio.platform.models import ApiKey, Role
from posturio.platform.repository import scoped

RANGES = (1, 7, 30, 90)


async def own_key_ids(db: Db, principal: Caller) -> list[uuid.UUID] | None:
    """None for reviewers and up (the whole tenant); a member's own keys otherwise."""
    if principal.at_least(Role.reviewer):
        return None
    rows = await db.scalars(
        scoped(ApiKey, principal.tenant_id)
        .where(ApiKey.created_by == principal.user_id)
        .with_only_columns(ApiKey.id)
    )
    return list(rows.all())


async def overview_data(db: Db, principal: Caller, days: int) -> dict[str, Any]:
    """Aggregated in SQL over the daily rollups: a handful of rows whatever the traffic."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    keys = await own_key_ids(db, principal)
    d = UsageDaily

    def rollup() -> Any:
        stmt = scoped(d, principal.tenant_id).where(d.day >= since)
        return stmt if keys is None else stmt.where(d.key_id.in_(keys))

    tokens = func.sum(d.prompt_tokens + d.completion_tokens)
    actions = func.sum(d.blocked + d.redacted + d.rerouted + d.flagged)
    requests = func.sum(d.requests)
    per_day = {
        r.day: r
        for r in await db.execute(
            rollup()
            .with_only_columns(d.day, requests.label("requests"), actions.label("actions"))
            .group_by(d.day)
        )
    }
    totals_row = (
        await db.execute(
            rollup().with_only_columns(
                *(
                    func.coalesce(func.sum(getattr(d, f)), 0).label(f)
                    for f in ("requests", "errors", "blocked", "redacted", "rerouted", "flagged")
                ),
                func.coalesce(tokens, 0).label("tokens"),
                func.coalesce(func.sum(d.cost_usd), 0).label("cost"),
            )
        )
    ).one()
    top_models = [
        (r.alias or "-", int(r.n))
        for r in await db.execute(
            rollup()
            .with_only_columns(d.alias, requests.label("n"))
            .group_by(d.alias)
            .order_by(requests.desc())
            .limit(10)
        )
    ]
    by_key = [
        (r.key_id, int(r.n))
        for r in await db.execute(
            rollup()
            .with_only_columns(d.key_id, requests.label("n"))
            .group_by(d.key_id)
            .order_by(requests.desc())
            .limit(10)
        )
    ]
    names = {
        k.id: f"{k.name} ({k.prefix})"
        for k in (
            await db.scalars(
                scoped(ApiKey, principal.tenant_id).where(ApiKey.id.in_([k for k, _ in by_key]))
            )
        ).all()
    }
    findings: list[tuple[str, int]] = []
    if keys is None:
        total = func.sum(UsageFindingsDaily.findings)
        findings = [
            (row.category, int(row.n))
            for row in await db.execute(
                scoped(UsageFindingsDaily, principal.tenant_id)
                .where(UsageFindingsDaily.day >= since)
                .with_only_columns(UsageFindingsDaily.category, total.label("n"))
                .group_by(UsageFindingsDaily.category)
                .order_by(total.desc())
                .limit(10)
            )
        ]
    span = [since + timedelta(days=i) for i in range(days)]

    def series(field: str) -> list[tuple[str, int]]:
        return [
            (day.isoformat(), int(getattr(per_day[day], field)) if day in per_day else 0)
            for day in span
        ]

    return {
        "days": days,
        "ranges": RANGES,
        "totals": {k: float(v) for k, v in totals_row._mapping.items()},
        "requests_series": series("requests"),
        "actions_series": series("actions"),
        "top_models": top_models,
        "top_keys": [(names.get(k, "(deleted or none)"), n) for k, n in by_key],
        "top_findings": findings,
        "scope": "your keys" if keys is not None else "the whole tenant",
    }


class OverviewPage(ConsoleController):
    path = "/console"

    @get("/")
    async def overview(
        self,
        request: Request,
        db: Db,
        principal: Caller,
        days: Annotated[int, QueryParameter(ge=1, le=366)] = 7,
    ) -> Template:
        data = await overview_data(db, principal, days)
        return await page(
            request, db, principal, "console/overview.html", active="Overview", **data
        )
