"""Overview: requests, tokens, cost and policy actions over time, top models, keys and
finding types. Reviewers and up see the tenant; a member sees their own keys' usage."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import func

from posturio.gateway.models import UsageDaily, UsageFindingsDaily
from posturio.platform.console import ConsoleController, page
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
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    keys = await own_key_ids(db, principal)
    stmt = scoped(UsageDaily, principal.tenant_id).where(UsageDaily.day >= since)
    if keys is not None:
        stmt = stmt.where(UsageDaily.key_id.in_(keys))
    rows = (await db.scalars(stmt)).all()
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    models: dict[str, int] = defaultdict(int)
    by_key: dict[uuid.UUID, int] = defaultdict(int)
    totals: dict[str, float] = defaultdict(float)
    for r in rows:
        d = per_day[r.day]
        d["requests"] += r.requests
        d["actions"] += r.blocked + r.redacted + r.rerouted + r.flagged
        d["tokens"] += r.prompt_tokens + r.completion_tokens
        models[r.alias or "-"] += r.requests
        by_key[r.key_id] += r.requests
        for field in ("requests", "errors", "blocked", "redacted", "rerouted", "flagged"):
            totals[field] += getattr(r, field)
        totals["tokens"] += r.prompt_tokens + r.completion_tokens
        totals["cost"] += float(r.cost_usd)
    span = [since + timedelta(days=i) for i in range(days)]
    names = {
        k.id: f"{k.name} ({k.prefix})"
        for k in (
            await db.scalars(scoped(ApiKey, principal.tenant_id).where(ApiKey.id.in_(by_key)))
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
    top = lambda d: sorted(d.items(), key=lambda kv: -kv[1])[:10]  # noqa: E731
    return {
        "days": days,
        "ranges": RANGES,
        "totals": totals,
        "requests_series": [(d.isoformat(), per_day[d]["requests"]) for d in span],
        "actions_series": [(d.isoformat(), per_day[d]["actions"]) for d in span],
        "tokens_series": [(d.isoformat(), per_day[d]["tokens"]) for d in span],
        "top_models": top(models),
        "top_keys": [(names.get(k, "(deleted or none)"), n) for k, n in top(by_key)],
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
