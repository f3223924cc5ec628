"""Console page times on a tenant with a million request rows: seeded straight into
Postgres (COPY), then each page is fetched repeatedly through a running server by a
signed-in browser session. Reports the first fetch and p50 / p95 per page.

Run: .venv/bin/python -m bench.console [--rows 1000000] [--runs 40]

Last runs (1,000,000 rows, 15 fetches, 2 shared cores; p50 / p95 ms). Before the charts
(SVG from the rollups): overview 7 d 46 / 57, 90 d 72 / 165; requests newest 27 / 152.
With the charts and the covering index of migration 0019 (the seed is vacuumed, as
autovacuum keeps a log written over weeks): overview 24 h by the hour 165 / 644, 7 d
79 / 368, 30 d 120 / 438, 90 d 122 / 1,751 (first fetch 1,484: every finished day's
percentiles, then kept in Redis); keys with 30-day usage 37 / 79; requests newest
33 / 50, next page 29 / 93, decision=block 53 / 102, finding=email 59 / 972; review
queue 34 / 148. Without the covering index, in a busier run: overview 24 h 1,043 /
6,133, 7 d 377 / 3,622, 90 d 932 / 4,700. The seed writes rows in random time order,
so without it an hour's rows lie on as many heap pages as rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from bench.services import embedded_services, running_server
from posturio.config import Settings
from posturio.platform import accounts, keys
from posturio.platform.db import create_engine, create_sessionmaker
from posturio.platform.models import Role, Scope
from posturio.platform.principal import Principal

PASSWORD = "correct horse battery staple"
DECISIONS = ["allow"] * 90 + ["redact"] * 6 + ["flag"] * 2 + ["block"] * 2
MODELS = ["gpt-4o-mini", "claude-haiku", "echo", "text-embedding-local"]
CATEGORIES = ["email", "phone", "cloud_credential", "prompt_injection", "payment_card"]


async def seed(settings: Settings, rows: int) -> tuple[str, str]:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        tenant = await accounts.create_tenant(session, "Big Tenant", actor="bench")
        owner = Principal(tenant.id, Role.owner, "bench")
        view = await accounts.add_member(
            session, owner, "owner@big-tenant.com", Role.owner, PASSWORD
        )
        principal = Principal(tenant.id, Role.owner, "bench", user_id=view.membership.user_id)
        made = [
            await keys.create_key(session, principal, name=f"app-{i}", scopes=[Scope.gateway.value])
            for i in range(20)
        ]
    await engine.dispose()
    key_ids = [k.key.id for k in made]
    owner_engine = create_engine(settings, as_owner=True)
    rng = random.Random(7)
    now = datetime.now(UTC)
    start = time.perf_counter()
    async with owner_engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        await raw.execute("SET statement_timeout = 0")  # bulk COPY on a busy machine
        batch: list[tuple[Any, ...]] = []
        decisions: list[tuple[Any, ...]] = []
        daily: dict[tuple[Any, ...], list[int]] = {}
        found: dict[tuple[Any, ...], list[int]] = {}
        for n in range(rows):
            at = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
            decision = rng.choice(DECISIONS)
            key_id = rng.choice(key_ids)
            alias = rng.choice(MODELS)
            status = 400 if decision == "block" else (200 if rng.random() > 0.01 else 502)
            request_id = uuid.UUID(int=rng.getrandbits(128)).hex
            category = rng.choice(CATEGORIES) if decision != "allow" else None
            batch.append(
                (
                    tenant.id,
                    request_id,
                    at,
                    key_id,
                    alias,
                    f"{alias}:dep",
                    "chat.completions",
                    "api",
                    decision,
                    status,
                    None,
                    1,
                    False,
                    120,
                    80,
                    False,
                    Decimal("0.0001"),
                    250.0,
                    0.4,
                    [category] if category else None,
                )
            )
            d = daily.setdefault((at.date(), key_id, alias), [0, 0, 0, 0])
            d[0] += 1
            d[1] += status >= 400
            d[2] += decision == "block"
            d[3] += decision == "redact"
            if category:
                per_category = found.setdefault((at.date(), category), [0])
                per_category[0] += 1
                findings = [
                    {
                        "category": category,
                        "rule": f"x.{category}",
                        "where": "messages[0].content",
                        "span": [3, 20],
                        "preview": "abcd…yz (17 chars)",
                        "action": decision,
                    }
                ]
                decisions.append(
                    (
                        uuid.uuid4(),
                        tenant.id,
                        request_id,
                        "input",
                        at,
                        key_id,
                        alias,
                        "api",
                        decision,
                        "rule",
                        False,
                        None,
                        0,
                        json.dumps(findings),
                        "messages[0].content: …",
                        "open" if decision in ("block", "flag") and n % 50 == 0 else "confirmed",
                    )
                )
            if len(batch) == 50_000:
                await _flush(raw, batch, decisions)
        await _flush(raw, batch, decisions)
        await raw.copy_records_to_table(
            "usage_daily",
            columns=[
                "tenant_id",
                "day",
                "key_id",
                "alias",
                "requests",
                "errors",
                "prompt_tokens",
                "completion_tokens",
                "cost_usd",
                "blocked",
                "redacted",
                "rerouted",
                "flagged",
            ],
            records=[
                (
                    tenant.id,
                    day,
                    k,
                    a,
                    v[0],
                    v[1],
                    v[0] * 120,
                    v[0] * 80,
                    Decimal("0.0001") * v[0],
                    v[2],
                    v[3],
                    0,
                    0,
                )
                for (day, k, a), v in daily.items()
            ],
        )
        await raw.copy_records_to_table(
            "usage_findings_daily",
            columns=["tenant_id", "day", "category", "findings"],
            records=[(tenant.id, day, c, v[0]) for (day, c), v in found.items()],
        )
        await conn.commit()
        # What autovacuum does to a log written over weeks: statistics, and the visibility
        # map that lets the overview's covering index answer without the heap.
        await raw.execute("VACUUM (ANALYZE) usage_events, policy_decisions, usage_daily")
    await owner_engine.dispose()
    print(f"seeded {rows} requests in {time.perf_counter() - start:.0f} s", flush=True)
    return "owner@big-tenant.com", made[0].key.prefix


async def _flush(raw: Any, batch: list[tuple[Any, ...]], decisions: list[tuple[Any, ...]]) -> None:
    await raw.copy_records_to_table(
        "usage_events",
        columns=[
            "tenant_id",
            "request_id",
            "occurred_at",
            "key_id",
            "alias",
            "deployment",
            "endpoint",
            "origin",
            "decision",
            "status",
            "error_code",
            "attempts",
            "stream",
            "prompt_tokens",
            "completion_tokens",
            "tokens_estimated",
            "cost_usd",
            "latency_ms",
            "overhead_ms",
            "finding_types",
        ],
        records=batch,
    )
    await raw.copy_records_to_table(
        "policy_decisions",
        columns=[
            "id",
            "tenant_id",
            "request_id",
            "direction",
            "occurred_at",
            "key_id",
            "alias",
            "origin",
            "action",
            "rule_id",
            "shadow",
            "policy_id",
            "policy_version",
            "findings",
            "snapshot",
            "status",
        ],
        records=decisions,
    )
    batch.clear()
    decisions.clear()


def sign_in(http: httpx.Client, email: str) -> None:
    page = http.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    r = http.post(
        "/login", data={"email": email, "password": PASSWORD, "_csrf_token": token.group(1)}
    )
    assert r.status_code in (200, 303), r.text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with embedded_services() as settings:
        email, prefix = asyncio.run(seed(settings, args.rows))
        with running_server() as base:
            with httpx.Client(base_url=base, timeout=60) as http:
                sign_in(http, email)
                first = http.get("/console/requests")
                cursor = re.search(r'class="next" href="\?([^"]+)"', first.text)
                deep = (
                    f"/console/requests?{cursor.group(1).replace('&amp;', '&')}" if cursor else ""
                )
                pages = {
                    "overview, 24 h (hourly)": "/console/?days=1",
                    "overview, 7 days": "/console/?days=7",
                    "overview, 30 days": "/console/?days=30",
                    "overview, 90 days": "/console/?days=90",
                    "keys (30-day usage)": "/console/keys",
                    "requests, newest": "/console/requests",
                    "requests, next page": deep,
                    "requests, decision=block": "/console/requests?decision=block",
                    "requests, finding=email": "/console/requests?finding=email",
                    f"requests, key={prefix}": f"/console/requests?key={prefix}",
                    "review queue": "/console/review",
                }
                results = {}
                for name, path in pages.items():
                    times = []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        r = http.get(path)
                        times.append((time.perf_counter() - t) * 1000)
                        assert r.status_code == 200, (path, r.status_code)
                    results[name] = times
    print(f"\nConsole pages, {args.rows:,} request rows in the tenant, {args.runs} fetches each")
    # The first fetch apart: the overview keeps a finished day's percentiles in Redis.
    print(f"{'page':<32}{'first ms':>10}{'p50 ms':>10}{'p95 ms':>10}")
    for name, times in results.items():
        q = statistics.quantiles(times, n=20)
        print(f"{name:<32}{times[0]:>10.1f}{statistics.median(times):>10.1f}{q[18]:>10.1f}")


if __name__ == "__main__":
    main()
