"""Gateway throughput and overhead against the same fake upstream, in one run:
the upstream directly, a bare aiohttp passthrough (the Python ceiling here), Posturio,
and LiteLLM's proxy — non-streaming and streaming, wrk at concurrency 32, loopback only.
Also Posturio's own overhead (server-side, from its usage records, and end to end at
concurrency 1), its memory after 100k requests, and the cost of prompt inspection: the
same server with the default policy against a tenant whose policy has no rules (nothing
inspected), on the short prompt and on a 2 KB one.

With `--baseline REF` (e.g. HEAD~1), a second Posturio server runs the code of that
commit against the same database, upstream and key, in alternating rounds with this
tree's: the same-run comparison a change to the request path is judged by.

Run: .venv/bin/python -m bench.gateway [--duration 10] [--workers 2] [--no-litellm]
     [--baseline REF]
Nothing is asserted; figures are printed with their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
from sqlalchemy import text

from bench.services import embedded_services
from posturio.config import Settings
from posturio.platform import accounts, keys
from posturio.platform.db import create_engine, create_sessionmaker
from posturio.platform.embedded import free_port
from posturio.platform.models import Role, Scope
from posturio.platform.principal import Principal

ROOT = Path(__file__).resolve().parent
LITELLM_VENV = ROOT / ".litellm-venv"
# LiteLLM refuses to start without a master key; it checks it in memory (no database).
LITELLM_KEY = "sk-bench-" + os.urandom(16).hex()
BODY = '{"model":"bench","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
STREAM_BODY = BODY[:-1] + ',"stream":true}'
PROSE = (
    "Please summarise the attached notes for the leadership meeting on Thursday and list "
    "the open risks with owners and dates. The quarterly report shows revenue growth in "
    "every region while costs stayed flat. "
)
BODY_2KB = (
    '{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},'
    '{"role":"user","content":"' + (PROSE * 12)[:2048] + '"}]}'
)


def wait_http(url: str, timeout: float = 120, ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def wrk(
    url: str,
    body: str,
    *,
    seconds: float,
    connections: int,
    key: str | None = None,
    threads: int = 2,
) -> dict[str, float]:
    headers = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            f'wrk.method = "POST"\nwrk.body = [[{body}]]\n'
            f'wrk.headers["Content-Type"] = "application/json"\n{headers}'
        )
        script = f.name
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            script,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
    }


def rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        print("installing litellm[proxy] into bench/.litellm-venv (once)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True
        )
    return exe


def checkout(ref: str) -> Path:
    """The posturio package as it was at `ref`, in a directory of its own."""
    where = Path(tempfile.mkdtemp(prefix="posturio-baseline-"))
    archive = subprocess.run(
        ["git", "archive", ref, "posturio"], cwd=ROOT.parent, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


async def make_tenant(settings: Settings, name: str) -> str:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        tenant = await accounts.create_tenant(session, name, actor="bench")
        created = await keys.create_key(
            session,
            Principal(tenant.id, Role.owner, "bench"),
            name="bench",
            scopes=[Scope.gateway.value, Scope.admin.value],
        )
    await engine.dispose()
    return created.plaintext


async def overhead_from_records(settings: Settings) -> tuple[float, float, int]:
    engine = create_engine(settings, as_owner=True)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY overhead_ms), "
                    "percentile_cont(0.99) WITHIN GROUP (ORDER BY overhead_ms), count(*) "
                    "FROM usage_events WHERE status = 200 AND NOT stream"
                )
            )
        ).one()
    await engine.dispose()
    return float(row[0] or 0), float(row[1] or 0), int(row[2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--baseline", metavar="REF", help="also run this commit's server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")

    # Services last out: the servers and workers stop while Postgres and Redis still run.
    with embedded_services() as settings, ExitStack() as stack:
        procs: list[subprocess.Popen[bytes]] = []

        logs = Path(tempfile.mkdtemp(prefix="posturio-bench-logs-"))
        print(f"server logs: {logs}", flush=True)

        def spawn(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
            log = open(logs / f"{len(procs)}-{Path(cmd[0]).name}.log", "wb")
            p = subprocess.Popen(
                cmd, env=env or dict(os.environ), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
            procs.append(p)
            return p

        def stop_all() -> None:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()

        stack.callback(stop_all)
        up_port, gw_port, pt_port, ll_port = (free_port() for _ in range(4))
        upstream = f"http://127.0.0.1:{up_port}"
        spawn([sys.executable, "-m", "bench.fake_upstream", str(up_port)])
        key = asyncio.run(make_tenant(settings, "bench"))
        # The second tenant's policy gets no rules below: nothing is inspected for it.
        bare_key = asyncio.run(make_tenant(settings, "bench-no-policy"))
        env = {
            **os.environ,
            "POSTURIO_PORT": str(gw_port),
            "POSTURIO_WEB_WORKERS": str(args.workers),
            "POSTURIO_LOG_LEVEL": "warning",
            "POSTURIO_ROUTE_CACHE_TTL_S": "3600",
            "POSTURIO_API_KEY_CACHE_TTL_S": "3600",
            # The chat path is measured: no embedding model loading on a core meanwhile.
            "POSTURIO_EMBEDDINGS_WARMUP": "false",
        }
        gateway = spawn([sys.executable, "-m", "posturio.cli", "serve"], env)
        baseline_url = None
        if args.baseline:
            bl_port = free_port()
            # The commit's package first on the path: it shadows this tree's editable install.
            spawn(
                [sys.executable, "-m", "posturio.cli", "serve"],
                {**env, "POSTURIO_PORT": str(bl_port), "PYTHONPATH": str(checkout(args.baseline))},
            )
            wait_http(f"http://127.0.0.1:{bl_port}/readyz")
            baseline_url = f"http://127.0.0.1:{bl_port}/v1/chat/completions"
        spawn([sys.executable, "-m", "posturio.cli", "worker", "--threads", "2"], env)
        spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.passthrough:app",
                "--port",
                str(pt_port),
                "--workers",
                str(args.workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            {**os.environ, "BENCH_UPSTREAM": upstream},
        )
        wait_http(f"http://127.0.0.1:{gw_port}/readyz")
        for k in (key, bare_key):
            r = httpx.put(
                f"http://127.0.0.1:{gw_port}/api/routes/bench",
                headers={"Authorization": f"Bearer {k}"},
                json={
                    "deployments": [
                        {
                            "name": "fake",
                            "provider": "openai",
                            "model": "bench",
                            "base_url": f"{upstream}/v1",
                            "max_retries": 0,
                        }
                    ]
                },
            )
            r.raise_for_status()
        httpx.put(
            f"http://127.0.0.1:{gw_port}/api/policy",
            headers={"Authorization": f"Bearer {bare_key}"},
            json={"document": {"rules": []}, "comment": "bench: no inspection"},
        ).raise_for_status()
        gateway_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        targets = {
            "upstream direct": (f"{upstream}/v1/chat/completions", None),
            "aiohttp passthrough": (f"http://127.0.0.1:{pt_port}/", None),
            "Posturio": (gateway_url, key),
            "Posturio, no policy": (gateway_url, bare_key),
        }
        if baseline_url:
            targets[f"Posturio @{args.baseline}"] = (baseline_url, key)
        if not args.no_litellm:
            exe = ensure_litellm()
            cfg = Path(tempfile.mkdtemp()) / "litellm.yaml"
            cfg.write_text(
                "model_list:\n  - model_name: bench\n    litellm_params:\n"
                f"      model: openai/bench\n      api_base: {upstream}/v1\n      api_key: x\n"
                "litellm_settings:\n  set_verbose: false\n"
            )
            spawn(
                [
                    str(exe),
                    "--config",
                    str(cfg),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ll_port),
                    "--num_workers",
                    str(args.workers),
                ],
                {
                    **os.environ,
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    "LITELLM_LOG": "ERROR",
                    "LITELLM_MASTER_KEY": LITELLM_KEY,
                },
            )
            wait_http(f"http://127.0.0.1:{ll_port}/health/liveliness", timeout=300)
            targets["LiteLLM proxy"] = (
                f"http://127.0.0.1:{ll_port}/v1/chat/completions",
                LITELLM_KEY,
            )
        wait_http(f"http://127.0.0.1:{pt_port}/", ok=(200, 405, 500))

        results: dict[tuple[str, str], dict[str, float]] = {}
        for mode, body in (("non-streaming", BODY), ("streaming", STREAM_BODY)):
            for name, (url, k) in targets.items():
                wrk(url, body, seconds=2, connections=args.connections, key=k)  # warm-up
                results[(mode, name)] = wrk(
                    url, body, seconds=args.duration, connections=args.connections, key=k
                )
        # Inspection's cost: the same server, the default policy against a tenant with no
        # rules, in alternating rounds (a single pair of runs on 2 shared cores is noise).
        cost: dict[str, tuple[float, float]] = {}
        for mode, body in (
            ("short prompt", BODY),
            ("streaming", STREAM_BODY),
            ("2 KB prompt", BODY_2KB),
        ):
            rounds: dict[str, list[float]] = {
                name: [] for name in targets if name.startswith("Posturio")
            }
            for _ in range(args.rounds):
                for name in rounds:
                    url, k = targets[name]
                    rounds[name].append(
                        wrk(
                            url,
                            body,
                            seconds=args.duration / 2,
                            connections=args.connections,
                            key=k,
                        )["rps"]
                    )
            cost[mode] = {name: statistics.median(rps) for name, rps in rounds.items()}

        # Overhead: what the gateway itself adds.
        time.sleep(3)  # let the usage drain catch up
        srv_p50, srv_p99, recorded = asyncio.run(overhead_from_records(settings))
        direct1 = wrk(targets["upstream direct"][0], BODY, seconds=5, connections=1, threads=1)
        pt1 = wrk(targets["aiohttp passthrough"][0], BODY, seconds=5, connections=1, threads=1)
        gw1 = wrk(targets["Posturio"][0], BODY, seconds=5, connections=1, key=key, threads=1)
        bl1 = (
            wrk(baseline_url, BODY, seconds=5, connections=1, key=key, threads=1)
            if baseline_url
            else None
        )

        # Memory after many requests.
        before = rss_mb(gateway.pid)
        rps = results[("non-streaming", "Posturio")]["rps"]
        seconds = max(10.0, args.memory_requests / max(rps, 1) * 1.05)
        run = wrk(
            targets["Posturio"][0], BODY, seconds=seconds, connections=args.connections, key=key
        )
        after = rss_mb(gateway.pid)
        run2 = wrk(
            targets["Posturio"][0], BODY, seconds=seconds / 2, connections=args.connections, key=key
        )
        after2 = rss_mb(gateway.pid)

    print(
        f"\nGateway benchmark — wrk -c{args.connections}, {args.duration:.0f}s per run, "
        f"{args.workers} server workers each, {os.cpu_count()} cores shared by all, loopback"
    )
    for mode in ("non-streaming", "streaming"):
        print(f"\n{mode:<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
        for name in targets:
            r = results[(mode, name)]
            print(
                f"{name:<22}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>10.0f}"
            )
        p = results[(mode, "Posturio")]["rps"]
        print(f"Posturio / passthrough = {p / results[(mode, 'aiohttp passthrough')]['rps']:.2f}")
        if (mode, "LiteLLM proxy") in results:
            print(f"Posturio / LiteLLM     = {p / results[(mode, 'LiteLLM proxy')]['rps']:.1f}x")
    print(
        f"\nInspection cost: default policy vs. no rules, median req/s of {args.rounds} "
        f"alternating rounds of {args.duration / 2:.0f}s"
    )
    print(f"{'prompt':<22}{'default':>10}{'none':>10}{'ratio':>10}")
    for mode, medians in cost.items():
        inspected, bare = medians["Posturio"], medians["Posturio, no policy"]
        print(f"{mode:<22}{inspected:>10.0f}{bare:>10.0f}{inspected / bare:>10.2f}")
    if args.baseline:
        name = f"Posturio @{args.baseline}"
        print(f"\nThis tree against {args.baseline}, same rounds (default policy)")
        print(f"{'prompt':<22}{'this':>10}{'baseline':>10}{'ratio':>10}")
        for mode, medians in cost.items():
            this, then = medians["Posturio"], medians[name]
            print(f"{mode:<22}{this:>10.0f}{then:>10.0f}{this / then:>10.2f}")
        assert bl1 is not None
        print(
            f"End to end at c=1, p50: this tree {gw1['p50']:.2f} ms, {args.baseline} "
            f"{bl1['p50']:.2f} ms (server-side overhead below mixes both servers' records)"
        )
    print(
        f"\nPosturio overhead, server-side (x-posturio-overhead-ms over {recorded} recorded "
        f"requests at c={args.connections}): p50 {srv_p50:.3f} ms, p99 {srv_p99:.3f} ms"
    )
    print(
        f"End to end at c=1, p50: direct {direct1['p50']:.2f} ms, bare passthrough "
        f"{pt1['p50']:.2f} ms, Posturio {gw1['p50']:.2f} ms -> Posturio adds "
        f"{gw1['p50'] - direct1['p50']:.2f} ms over direct, "
        f"{gw1['p50'] - pt1['p50']:.2f} ms over the bare proxy"
    )
    print(
        f"Memory (RSS, all gateway workers): {before:.0f} MB before, {after:.0f} MB after "
        f"{run['requests']:.0f} more requests, {after2:.0f} MB after another "
        f"{run2['requests']:.0f}"
    )


if __name__ == "__main__":
    main()
