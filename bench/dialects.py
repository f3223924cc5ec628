"""Throughput of each client dialect through the gateway as a ratio of Chat in the same
run: Anthropic Messages and OpenAI Responses, non-streaming and streaming, translated to a
Chat deployment and forwarded to a deployment that speaks them natively. Rounds are
interleaved so that a noisy moment hits every variant alike. Also the gateway's own
overhead per dialect (from its usage records) and the translation cost of a 2 KB
request (in process).

Run: .venv/bin/python -m bench.dialects [--duration 5] [--rounds 3] [--workers 2]
Nothing is asserted; figures are printed with their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

import httpx
from sqlalchemy import text

from bench.gateway import PROSE, make_tenant, wait_http, wrk
from bench.services import embedded_services
from posturio.config import Settings
from posturio.gateway.dialects.messages import MESSAGES
from posturio.gateway.dialects.responses import RESPONSES
from posturio.platform.db import create_engine
from posturio.platform.embedded import free_port

USER = "Hello, how are you today?"
# (label, path, body, alias): the Chat baseline first.
VARIANTS = [
    ("chat", "/v1/chat/completions", {"messages": [{"role": "user", "content": USER}]}, "bench"),
    (
        "messages→chat",
        "/v1/messages",
        {"max_tokens": 256, "messages": [{"role": "user", "content": USER}]},
        "bench",
    ),
    (
        "messages native",
        "/v1/messages",
        {"max_tokens": 256, "messages": [{"role": "user", "content": USER}]},
        "bench-anthropic",
    ),
    ("responses→chat", "/v1/responses", {"input": USER}, "bench"),
    ("responses native", "/v1/responses", {"input": USER}, "bench-responses"),
]


def body(variant: tuple[str, str, dict[str, object], str], stream: bool) -> str:
    _, _, fields, alias = variant
    return json.dumps({"model": alias, **fields, **({"stream": True} if stream else {})})


def translation_us() -> dict[str, float]:
    """p50 µs to read and translate a 2 KB request of each dialect (parse + to_chat)."""
    prose = (PROSE * 12)[:2048]
    requests = {
        "messages": (
            MESSAGES,
            json.dumps(
                {
                    "model": "m",
                    "max_tokens": 256,
                    "system": "You are a helpful assistant.",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": prose}]}],
                }
            ).encode(),
        ),
        "responses": (
            RESPONSES,
            json.dumps(
                {
                    "model": "m",
                    "instructions": "Be helpful.",
                    "input": [{"role": "user", "content": prose}],
                }
            ).encode(),
        ),
    }
    out = {}
    for name, (dialect, raw) in requests.items():
        samples = []
        for _ in range(2000):
            started = time.perf_counter_ns()
            dialect.to_chat(dialect.parse(raw).payload)
            samples.append((time.perf_counter_ns() - started) / 1000)
        out[name] = statistics.median(samples)
    return out


async def overhead_by_endpoint(settings: Settings) -> dict[str, float]:
    engine = create_engine(settings, as_owner=True)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT endpoint, percentile_cont(0.5) WITHIN GROUP (ORDER BY overhead_ms) "
                "FROM usage_events WHERE status = 200 AND NOT stream GROUP BY endpoint"
            )
        )
        result = {r[0]: float(r[1]) for r in rows}
    await engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")

    print("translation of a 2 KB request (parse + to Chat), p50:")
    for name, us in translation_us().items():
        print(f"  {name:<10} {us:7.1f} µs")

    with embedded_services() as settings, ExitStack() as stack:
        procs: list[subprocess.Popen[bytes]] = []
        stack.callback(lambda: [p.terminate() for p in procs])
        up_port, gw_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        procs.append(
            subprocess.Popen([sys.executable, "-m", "bench.fake_upstream", str(up_port)], **quiet)
        )
        key = asyncio.run(make_tenant(settings, "bench-dialects"))
        env = {
            **os.environ,
            "POSTURIO_PORT": str(gw_port),
            "POSTURIO_WEB_WORKERS": str(args.workers),
            "POSTURIO_LOG_LEVEL": "warning",
            "POSTURIO_ROUTE_CACHE_TTL_S": "3600",
            "POSTURIO_API_KEY_CACHE_TTL_S": "3600",
        }
        procs.append(
            subprocess.Popen([sys.executable, "-m", "posturio.cli", "serve"], env=env, **quiet)
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "posturio.cli", "worker", "--threads", "2"], env=env, **quiet
            )
        )
        base = f"http://127.0.0.1:{gw_port}"
        wait_http(f"{base}/readyz")
        routes = {
            "bench": {"provider": "openai", "base_url": f"{upstream}/v1"},
            "bench-anthropic": {"provider": "anthropic", "base_url": upstream},
            "bench-responses": {
                "provider": "openai",
                "base_url": f"{upstream}/v1",
                "api_version": "responses",
            },
        }
        for alias, deployment in routes.items():
            httpx.put(
                f"{base}/api/routes/{alias}",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "deployments": [
                        {"name": "fake", "model": "bench", "max_retries": 0, **deployment}
                    ]
                },
            ).raise_for_status()
        for variant in VARIANTS:  # warm every path; each must answer before it is timed
            for stream in (False, True):
                r = httpx.post(
                    base + variant[1],
                    content=body(variant, stream),
                    headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
                )
                r.raise_for_status()

        results: dict[tuple[str, bool], list[float]] = {}
        errors = 0.0
        for _ in range(args.rounds):
            for stream in (False, True):
                for variant in VARIANTS:
                    run = wrk(
                        base + variant[1],
                        body(variant, stream),
                        seconds=args.duration,
                        connections=args.connections,
                        key=key,
                    )
                    results.setdefault((variant[0], stream), []).append(run["rps"])
                    errors += run["errors"]
        time.sleep(3)  # the worker drains the usage stream
        overhead = asyncio.run(overhead_by_endpoint(settings))

    print(
        f"\nthroughput, wrk -c{args.connections}, {args.rounds} interleaved rounds of "
        f"{args.duration:g}s, median req/s and ratio to chat ({errors:.0f} non-2xx):"
    )
    for stream in (False, True):
        chat = statistics.median(results[("chat", stream)])
        print(f"  {'streaming' if stream else 'non-streaming'}:")
        for variant in VARIANTS:
            rps = statistics.median(results[(variant[0], stream)])
            print(f"    {variant[0]:<18} {rps:8.0f} req/s   {rps / chat:5.2f} x chat")
    print("\nserver-side overhead p50 (usage records, non-streaming):")
    for endpoint, ms in sorted(overhead.items()):
        print(f"  {endpoint:<18} {ms:6.3f} ms")


if __name__ == "__main__":
    main()
