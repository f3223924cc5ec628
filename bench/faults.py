"""A fault run under load (issue 19): the `posturio up` shape on one machine (embedded
Postgres, Redis with its append-only file, `posturio serve` with 2 web workers, a
`posturio worker`, the bench fake upstream) serving a constant rate of
/v1/chat/completions while the worker is SIGKILLed and replaced, Redis is SIGKILLed and
restarted, and Postgres is stopped (`pg_ctl stop`) and started again.

Reports, overall and per phase: requests refused (no HTTP answer), answers by status
(5xx by status; the goal is no 500), and usage rows lost: requests answered 2xx whose
usage row never reached Postgres once everything drained (the goal is none).

Run: .venv/bin/python -m bench.faults [--rate 40] [--duration 60]
Nothing is asserted; figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import psutil
from sqlalchemy import text

from bench.gateway import BODY, make_tenant, wait_http
from posturio.config import Settings, load_settings
from posturio.gateway.tasks import RECLAIM_IDLE_MS
from posturio.platform.db import create_engine
from posturio.platform.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from posturio.platform.migrate import upgrade

REFUSED = "refused"  # no HTTP answer: connection refused or reset, or no answer in time
REQUEST_TIMEOUT_S = 30


@dataclass
class Phase:
    name: str
    starts_at: float  # seconds into the run
    answers: Counter[str] = field(default_factory=Counter)
    ok_ids: set[str] = field(default_factory=set)  # request ids it answered 2xx


@dataclass
class Load:
    phases: list[Phase]
    ok_ids: set[str] = field(default_factory=set)  # request ids answered 2xx
    other_ids: set[str] = field(default_factory=set)  # request ids answered otherwise
    sent: int = 0

    def phase_at(self, t: float) -> Phase:
        return [p for p in self.phases if p.starts_at <= t][-1]


class Stack:
    """Postgres, Redis, the API and a worker, each of which can be broken and mended."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root, self.logs = root, logs
        self.postgres = EmbeddedPostgres(root / "postgres")
        self.redis = EmbeddedRedis(root / "redis", persist=True)  # as `posturio up` runs it
        self.procs: list[subprocess.Popen[bytes]] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def start_services(self) -> Settings:
        os.environ["POSTURIO_DATABASE_URL"] = self.postgres.start()
        os.environ["POSTURIO_REDIS_URL"] = self.redis.start()
        os.environ.setdefault("POSTURIO_SECRET_KEY", secrets.token_urlsafe(40))
        os.environ["POSTURIO_STATE_DIR"] = str(self.root / "state")
        settings = load_settings()
        upgrade(settings)
        return settings

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{len(self.procs)}-{name}.log", "wb")
        proc = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc

    def start_worker(self) -> None:
        self.worker = self.spawn("worker", [sys.executable, "-m", "posturio.cli", "worker"])

    def kill_worker(self) -> None:
        """SIGKILL the worker and its dramatiq processes at once: a crash mid-batch."""
        assert self.worker is not None
        root = psutil.Process(self.worker.pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.worker.wait(10)

    def restart_redis(self) -> None:
        self.redis.start()

    def restart_postgres(self) -> None:
        url = self.postgres.start()
        if url != self.env["POSTURIO_DATABASE_URL"]:
            print(f"  (Postgres came back at another address: {url})", flush=True)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.redis.stop()
        self.postgres.stop()


async def one_request(
    http: aiohttp.ClientSession, url: str, key: str, load: Load, started: float
) -> None:
    phase = load.phase_at(time.monotonic() - started)  # the phase it was sent in
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        async with http.post(url, data=BODY, headers=headers) as r:
            await r.read()
            request_id = r.headers.get("x-posturio-request-id", "")
            phase.answers[str(r.status)] += 1
            if 200 <= r.status < 300:
                load.ok_ids.add(request_id)
                phase.ok_ids.add(request_id)
            else:
                load.other_ids.add(request_id)
    except (aiohttp.ClientError, TimeoutError):
        phase.answers[REFUSED] += 1


async def constant_rate(url: str, key: str, rate: float, duration: float, load: Load) -> None:
    """Open loop: a request every 1/rate seconds whatever the answers take."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        started = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        while (now := time.monotonic() - started) < duration:
            task = asyncio.create_task(one_request(http, url, key, load, started))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            load.sent += 1
            await asyncio.sleep(max(0.0, load.sent / rate - now))
        await asyncio.gather(*tasks)


async def faults(stack: Stack, schedule: list[tuple[float, str, Callable[[], None]]]) -> None:
    """Run each fault at its time (blocking steps in a thread: the load keeps its rate)."""
    started = time.monotonic()
    for at, label, action in schedule:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        t0 = time.monotonic()
        await asyncio.to_thread(action)
        print(f"  {at:5.1f}s {label} ({time.monotonic() - t0:.1f}s)", flush=True)


async def usage_rows(settings: Settings, ids: set[str]) -> set[str]:
    engine = create_engine(settings, as_owner=True)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT request_id FROM usage_events WHERE request_id = ANY(:ids)"),
                {"ids": list(ids)},
            )
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


async def drained(settings: Settings, ids: set[str], within_s: float) -> tuple[set[str], float]:
    """The ids with a usage row, once every one has arrived or none arrived for longer
    than the drain takes to reclaim entries a failed batch left pending; and how many
    seconds after the call the last of them arrived."""
    quiet_s = RECLAIM_IDLE_MS / 1000 + 15
    start = time.monotonic()
    deadline, last, arrived = start + within_s, -1, start
    while True:
        found = await usage_rows(settings, ids)
        if len(found) != last:
            last, arrived = len(found), time.monotonic()
        if found >= ids or time.monotonic() > deadline or time.monotonic() - arrived > quiet_s:
            return found, arrived - start
        await asyncio.sleep(1)


def report(load: Load, recorded_ok: set[str], recorded_other: set[str], late_s: float) -> None:
    total: Counter[str] = Counter()
    print("\nanswers by phase (phase = when the request was sent):")
    for p in load.phases:
        total.update(p.answers)
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(p.answers.items()))
        lost = len(p.ok_ids - recorded_ok)
        print(f"  {p.name:<28} {answers}; usage rows lost: {lost}")
    ok = sum(v for k, v in total.items() if k.startswith("2"))
    fivexx = {k: v for k, v in sorted(total.items()) if k.startswith("5")}
    print(f"\nrequests sent:        {load.sent}")
    print(f"answered 2xx:         {ok}")
    print(f"refused (no answer):  {total[REFUSED]}")
    print(f"5xx by status:        {fivexx or 'none'}")
    print(f"500s:                 {total['500']}")
    lost = len(load.ok_ids) - len(recorded_ok)
    print(f"usage rows for 2xx:   {len(recorded_ok)} of {len(load.ok_ids)} (lost: {lost})")
    print(f"last usage row arrived {late_s:.0f} s after the load ended")
    print(f"usage rows for non-2xx answers: {len(recorded_other)} of {len(load.other_ids)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=40, help="requests per second")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--down", type=float, default=5, help="seconds worker, Redis are down")
    parser.add_argument("--pg-down", type=float, default=10, help="seconds Postgres is down")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="posturio-faults-logs-"))
    print(f"logs: {logs}", flush=True)
    with tempfile.TemporaryDirectory(prefix="posturio-faults-") as tmp:
        stack = Stack(Path(tmp), logs)
        try:
            settings = stack.start_services()
            run(stack, settings, args)
        finally:
            stack.stop()


def run(stack: Stack, settings: Settings, args: argparse.Namespace) -> None:
    up_port, port = free_port(), free_port()
    stack.env = {
        **os.environ,
        "POSTURIO_PORT": str(port),
        "POSTURIO_WEB_WORKERS": "2",
        "POSTURIO_LOG_LEVEL": "warning",
    }
    stack.spawn("upstream", [sys.executable, "-m", "bench.fake_upstream", str(up_port)])
    key = asyncio.run(make_tenant(settings, "faults"))
    stack.spawn("serve", [sys.executable, "-m", "posturio.cli", "serve"])
    stack.start_worker()
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/readyz")
    deployment = {
        "name": "fake",
        "provider": "openai",
        "model": "bench",
        "base_url": f"http://127.0.0.1:{up_port}/v1",
        "max_retries": 0,
    }
    httpx.put(
        f"{base}/api/routes/bench",
        headers={"Authorization": f"Bearer {key}"},
        json={"deployments": [deployment]},
    ).raise_for_status()

    # The run in sixths: steady, worker dead, steady, Redis dead, steady, Postgres down
    # (ending at the last sixth), steady.
    d, down, pg_down = args.duration, args.down, args.pg_down
    at = [d * i / 6 for i in range(6)]
    phases = [
        Phase("steady", 0),
        Phase("worker killed, replaced", at[1]),
        Phase("steady", at[1] + down),
        Phase("Redis killed, restarted", at[3]),
        Phase("steady", at[3] + down),
        Phase("Postgres stopped, started", at[5] - pg_down),
        Phase("steady (after Postgres)", at[5]),
    ]
    schedule: list[tuple[float, str, Callable[[], None]]] = [
        (at[1], "worker SIGKILL", stack.kill_worker),
        (at[1] + down, "worker started", stack.start_worker),
        (at[3], "Redis SIGKILL", stack.redis.kill),
        (at[3] + down, "Redis started (same port, its AOF)", stack.restart_redis),
        (at[5] - pg_down, "pg_ctl stop", stack.postgres.stop),
        (at[5], "Postgres started", stack.restart_postgres),
    ]
    load = Load(phases)
    print(f"load: {args.rate:g} req/s for {d:g} s; faults:", flush=True)

    async def both() -> None:
        await asyncio.gather(
            constant_rate(f"{base}/v1/chat/completions", key, args.rate, d, load),
            faults(stack, schedule),
        )

    asyncio.run(both())
    print("load done; waiting for the usage drain…", flush=True)
    recorded_ok, late_s = asyncio.run(drained(settings, load.ok_ids, within_s=240))
    recorded_other = asyncio.run(usage_rows(settings, load.other_ids))
    report(load, recorded_ok, recorded_other, late_s)


if __name__ == "__main__":
    main()
