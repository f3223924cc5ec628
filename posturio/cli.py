"""The `posturio` command: run the stack, serve, work, migrate, and admin tasks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from posturio.config import ConfigError, Settings, load_settings
from posturio.files import write_private
from posturio.platform.embedded import pid_alive
from posturio.platform.logging import (
    configure_logging,
    open_private_log,
    redirect_output_to_rotating_file,
)
from posturio.platform.supervisor import Supervisor, describe, die_with_parent, reap_group

console = Console(stderr=True)
T = TypeVar("T")


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Posturio: an AI gateway with prompt inspection, tenant policy and grounded search."""


# ---------------------------------------------------------------- running the stack


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # As uvicorn binds: connections of a previous run still in TIME_WAIT (the server
        # closed them) do not make the port busy; a process listening on it does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _wait_ready(url: str, timeout_s: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _services_env(state: Path, env: dict[str, str], settings: Settings) -> None:
    """Where the running services are, for `posturio` commands in another shell (admin
    commands source it; `status` reads the API's address from it)."""
    services = {
        "POSTURIO_DATABASE_URL": env["POSTURIO_DATABASE_URL"],
        "POSTURIO_REDIS_URL": env["POSTURIO_REDIS_URL"],
        "POSTURIO_HOST": settings.host,
        "POSTURIO_PORT": str(settings.port),
    }
    write_private(state / "services.env", "".join(f"{n}={v}\n" for n, v in services.items()))


def _read_services_env(state: Path) -> dict[str, str]:
    try:
        text = (state / "services.env").read_text()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _local_url(host: str, port: int | str) -> str:
    """The URL this machine reaches a server bound to `host`:`port` at."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - not a bind
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _api_address(state: Path, settings: Settings) -> str:
    """The API of the stack `up` started in `state`, on whatever host and port it was
    given then (this shell's settings may say otherwise)."""
    services = _read_services_env(state)
    host = services.get("POSTURIO_HOST", settings.host)
    return _local_url(host, services.get("POSTURIO_PORT", settings.port))


@main.command()
@click.option("--detach", is_flag=True, help="Start in the background; `posturio down` stops it.")
@click.option("--worker/--no-worker", default=True, help="Run a dramatiq worker too.")
@click.option("--log-file", hidden=True, type=click.Path(), help="Set by --detach.")
def up(detach: bool, worker: bool, log_file: str | None) -> None:
    """Run everything: embedded Postgres + Redis (unless URLs are set), migrations,
    the demo tenant on first start, the API + console and a worker. A process that
    exits is restarted. Ctrl-C stops it all."""
    settings = _settings()
    state = settings.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    if detach:
        _detach(settings, state, worker)
        return
    close_log = None
    if log_file is not None:
        close_log = redirect_output_to_rotating_file(
            log_file, settings.log_max_bytes, settings.log_backups
        )
    try:
        _run(settings, state, worker, detached=log_file is not None)
    finally:
        if close_log is not None:
            close_log()


def _run(settings: Settings, state: Path, worker: bool, *, detached: bool) -> None:
    if not _port_free(settings.host, settings.port):
        raise click.ClickException(
            f"port {settings.port} on {settings.host} is in use; set POSTURIO_PORT to another port"
        )
    from posturio.bootstrap import bootstrap_demo, provider_routes_from_env, write_demo_env
    from posturio.platform.embedded import EmbeddedPostgres, EmbeddedRedis
    from posturio.platform.migrate import upgrade

    stoppers: list[Callable[[], None]] = []
    supervisor = Supervisor(state / "processes.json", lambda line: console.print(line))
    # The children log to this stderr: at a terminal in readable lines, to the log file
    # (detached) in JSON (see configure_logging).
    env = dict(os.environ)
    if not settings.navigator_roots:
        # The embedded default lets folders under one documents directory become Navigator
        # sources (an admin still approves each); a deployment names its own roots.
        documents = state / "documents"
        documents.mkdir(exist_ok=True)
        env["POSTURIO_NAVIGATOR_ROOTS"] = json.dumps([str(documents)])
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()

    # SIGHUP too: closing the terminal `make run` runs in must not orphan the database.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, shutdown)
    (state / "posturio.pid").write_text(str(os.getpid()))
    demo = None
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("starting", total=5)
            if settings.database_url is None:
                progress.update(task, description="starting embedded PostgreSQL (pgvector)")
                pg = EmbeddedPostgres(state / "postgres")
                env["POSTURIO_DATABASE_URL"] = pg.start()
                stoppers.append(pg.stop)
            progress.advance(task)
            if settings.redis_url is None:
                progress.update(task, description="starting embedded Redis")
                rd = EmbeddedRedis(state / "redis", persist=True)
                env["POSTURIO_REDIS_URL"] = rd.start()
                stoppers.append(rd.stop)
            progress.advance(task)
            settings = _settings(
                database_url=env["POSTURIO_DATABASE_URL"], redis_url=env["POSTURIO_REDIS_URL"]
            )
            _services_env(state, env, settings)
            settings.resolved_secret_key()  # made once here, before the children race for it
            settings.resolved_encryption_key()
            progress.update(task, description="applying migrations")
            upgrade(settings)
            progress.advance(task)
            progress.update(task, description="checking the demo tenant")
            demo = asyncio.run(bootstrap_demo(settings))
            if demo is not None:
                write_demo_env(settings, demo)
            for line in asyncio.run(provider_routes_from_env(settings)):
                progress.console.print(line)
            progress.advance(task)
            progress.update(task, description="starting the API, console and worker")
            supervisor.add("api", lambda: _child("serve", env))
            if worker:
                supervisor.add("worker", lambda: _child("worker", env))
            ready = _wait_ready(
                f"{_local_url(settings.host, settings.port)}/readyz",
                120,
                # While starting, an exit is a failure to start (a port in use, bad
                # settings): said at once rather than retried.
                lambda: supervisor.all_running() and not stop.is_set(),
            )
            progress.advance(task)
        if not ready:
            raise click.ClickException("the API did not become ready; see the log lines above")
        # Detached, this output is the log file: the credentials stay in demo.env (0600).
        _banner(settings, demo, state, show_secrets=not detached)
        (state / "ready").write_text(settings.base_url)
        while not stop.is_set():
            supervisor.check()
            stop.wait(0.5)
        console.print("stopping…")
    finally:
        (state / "ready").unlink(missing_ok=True)
        supervisor.stop()
        for stopper in reversed(stoppers):
            stopper()
        (state / "posturio.pid").unlink(missing_ok=True)


def _child(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own session: Ctrl-C reaches only this supervisor, which then stops each child once
    # (a second signal from the terminal would cut their graceful shutdown short).
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "posturio.cli", command], env=env, start_new_session=True
    )


def _banner(settings: Settings, demo: Any, state: Path, *, show_secrets: bool) -> None:
    from posturio.bootstrap import first_request_snippets

    demo_env = state / "demo.env"
    console.rule("[green]Posturio is running")
    console.print(f"API       {settings.base_url}/v1   (OpenAPI: {settings.base_url}/schema)")
    console.print(f"Console   {settings.base_url}/login")
    console.print(f"State     {state}   (scripts: {demo_env})")
    roots = json.loads(os.environ.get("POSTURIO_NAVIGATOR_ROOTS") or "[]") or [
        str(state / "documents")
    ]
    console.print(f"Documents {', '.join(roots)}   (folders here can be Navigator sources)")
    if demo is not None and not show_secrets:
        console.print(f"\nFirst start: demo tenant created; its sign-in and key are in {demo_env}")
    elif demo is not None:
        console.print(
            "\n[bold]First start: demo tenant created. Shown once (also in demo.env):[/bold]"
        )
        console.print(f"  owner    {demo.email}  password {demo.password}")
        console.print(f"  API key  {demo.api_key}\n")
        console.print(
            first_request_snippets(settings, demo.api_key), highlight=False, soft_wrap=True
        )
    console.print("\nCtrl-C stops everything.")


def _detach(settings: Settings, state: Path, worker: bool) -> None:
    pidfile = state / "posturio.pid"
    if pidfile.exists() and pid_alive(int(pidfile.read_text() or 0)):
        raise click.ClickException(
            f"already running (pid {pidfile.read_text()}); `posturio down` stops it"
        )
    (state / "ready").unlink(missing_ok=True)
    log_path = state / "posturio.log"
    # Until the background process takes its output over (rotated), failures to start
    # land here.
    log = open_private_log(log_path)
    args = ["up", "--log-file", str(log_path), "--worker" if worker else "--no-worker"]
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "posturio.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    os.close(log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (state / "ready").exists():
            click.echo(f"Posturio is running in the background (pid {proc.pid}).")
            click.echo(f"Log: {state / 'posturio.log'}   Scripts: source {state / 'demo.env'}")
            click.echo("Stop it with: posturio down")
            return
        if proc.poll() is not None:
            raise click.ClickException(f"Posturio failed to start; see {state / 'posturio.log'}")
        time.sleep(0.3)
    raise click.ClickException(
        f"Posturio did not become ready in time; see {state / 'posturio.log'}"
    )


@main.command()
def down() -> None:
    """Stop a stack started with `posturio up --detach`."""
    settings = _settings()
    pidfile = settings.state_dir.resolve() / "posturio.pid"
    pid = int(pidfile.read_text() or 0) if pidfile.exists() else 0
    if not pid_alive(pid):
        click.echo("Posturio is not running.")
        pidfile.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        raise click.ClickException(f"pid {pid} did not stop within 60 s")
    click.echo("Posturio stopped.")


@main.command()
def status() -> None:
    """Is the background stack running, is it ready, and are its processes up? Exit 1:
    the API does not answer or a process is crash-looping; 3: not running."""
    settings = _settings()
    state = settings.state_dir.resolve()
    pidfile = state / "posturio.pid"
    pid = int(pidfile.read_text() or 0) if pidfile.exists() else 0
    if not pid_alive(pid):
        click.echo("not running")
        raise SystemExit(3)
    api = _api_address(state, settings)
    try:
        ready = httpx.get(f"{api}/readyz", timeout=3)
        click.echo(f"running (pid {pid}) at {api}; readyz {ready.status_code}: {ready.text}")
    except httpx.HTTPError as exc:
        click.echo(f"running (pid {pid}) at {api}; API not answering: {exc}")
        raise SystemExit(1) from None
    processes = describe(state / "processes.json")
    for line in processes:
        click.echo(f"  {line}")
    if any("crash-looping" in line for line in processes):
        raise SystemExit(1)


@main.command()
def serve() -> None:
    """Serve the API and console (uvicorn) with the configured database and Redis."""
    import uvicorn

    settings = _settings()
    if settings.database_url is None or settings.redis_url is None:
        raise click.ClickException(
            "serve needs POSTURIO_DATABASE_URL and POSTURIO_REDIS_URL (or use `posturio up`)"
        )
    # Fail now, not in each worker, when a required secret is missing.
    settings.resolved_secret_key()
    settings.resolved_encryption_key()
    if settings.web_workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Several worker processes: /metrics must add up all of them, not show one.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="posturio-metrics-")
    uvicorn.run(
        "posturio.app:create_asgi",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_workers,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
        # Only the named proxies may say who the client is (throttles count per address).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


@main.command()
@click.option("--processes", default=1, show_default=True)
@click.option("--threads", default=4, show_default=True)
@click.option("--scheduler/--no-scheduler", default=True, help="Also enqueue periodic jobs.")
def worker(processes: int, threads: int, scheduler: bool) -> None:
    """Run dramatiq workers for background jobs (and the periodic-job scheduler)."""
    from posturio.workers.broker import setup_broker
    from posturio.workers.scheduler import run_scheduler

    settings = _settings()
    configure_logging(settings.log_level, json=settings.log_json)
    if settings.redis_url is None or settings.database_url is None:
        raise click.ClickException("worker needs POSTURIO_DATABASE_URL and POSTURIO_REDIS_URL")
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "dramatiq",
            "posturio.workers.entry",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
        ],
        start_new_session=True,  # signals reach it once, forwarded from here
        preexec_fn=die_with_parent,  # and it never outlives this process
    )
    stop = threading.Event()

    def forward(signum: int, _: object) -> None:
        stop.set()
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    thread = None
    if scheduler:
        setup_broker(settings)
        thread = threading.Thread(target=run_scheduler, args=(settings, stop), daemon=True)
        thread.start()
    # Dramatiq's worker processes outlive a killed dramatiq; they go with it.
    code = reap_group(proc)
    stop.set()
    if thread is not None:
        thread.join(5)
    raise SystemExit(code)


@main.command()
def migrate() -> None:
    """Apply database migrations (as the schema owner)."""
    from posturio.platform.migrate import upgrade

    settings = _settings()
    if settings.database_url is None:
        raise click.ClickException("POSTURIO_DATABASE_URL is not set")
    upgrade(settings)
    click.echo("migrations applied")


# ---------------------------------------------------------------- admin tasks

from posturio.cli_admin import register  # noqa: E402

register(main)

if __name__ == "__main__":
    main()
