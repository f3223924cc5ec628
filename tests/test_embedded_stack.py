"""The README's promise: `posturio up` runs the whole product on its embedded default.

Starts the real stack in the background as a newcomer's script would (no database or
Redis URLs), uses it, survives a killed worker, stops it, and starts it again on the same
state.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from posturio.platform.embedded import free_port


def _env(state: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTURIO_")}
    env.update(
        {
            "POSTURIO_STATE_DIR": str(state),
            "POSTURIO_PORT": str(port),
            "POSTURIO_AUDIT_VERIFY_INTERVAL_S": "10",
            # A provider key in the environment gives the demo tenant a real route.
            "OPENAI_API_KEY": "sk-test-not-a-real-key",
        }
    )
    return env


def _posturio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posturio.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    state = tmp_path_factory.mktemp("stack") / "state"
    port = free_port()
    env = _env(state, port)
    started = _posturio(env, "up", "--detach")
    log = (state / "posturio.log").read_text() if (state / "posturio.log").exists() else ""
    assert started.returncode == 0, started.stdout + started.stderr + log
    try:
        yield {"state": state, "port": port, "env": env, "base": f"http://127.0.0.1:{port}"}
    finally:
        _posturio(env, "down")


@pytest.mark.timeout(300)
def test_first_start_serves_and_writes_demo_env(stack):
    state: Path = stack["state"]  # type: ignore[assignment]
    demo_env = state / "demo.env"
    assert stat.S_IMODE(demo_env.stat().st_mode) == 0o600
    demo = _read_env(demo_env)
    assert demo["POSTURIO_BASE_URL"] == f"{stack['base']}/v1"
    assert httpx.get(f"{stack['base']}/readyz").status_code == 200

    headers = {"Authorization": f"Bearer {demo['POSTURIO_API_KEY']}"}
    tenant = httpx.get(f"{stack['base']}/api/tenant", headers=headers)
    assert tenant.status_code == 200 and tenant.json()["name"] == "Demo"
    members = httpx.get(f"{stack['base']}/api/members", headers=headers).json()
    assert [m["email"] for m in members] == [demo["POSTURIO_OWNER_EMAIL"]]
    assert members[0]["role"] == "owner"

    routes = httpx.get(f"{stack['base']}/api/routes", headers=headers).json()
    openai_route = next(r for r in routes if r["alias"] == "gpt-4o-mini")
    assert openai_route["deployments"][0]["credential"] == "openai-from-env"
    assert "sk-test-not-a-real-key" not in str(routes)

    # The first request of the README: the echo model through the governed path.
    reply = httpx.post(
        f"{demo['POSTURIO_BASE_URL']}/chat/completions",
        headers=headers,
        json={"model": "echo", "messages": [{"role": "user", "content": "Hi!"}]},
    )
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Hi!"
    assert reply.headers["x-posturio-route"] == "echo:echo/echo"

    status = _posturio(stack["env"], "status")  # type: ignore[arg-type]
    assert status.returncode == 0 and "readyz 200" in status.stdout

    # Structured JSON logs carry the request id of each request.
    lines = [
        json.loads(x)
        for x in (state / "posturio.log").read_text().splitlines()
        if x.startswith("{")
    ]
    access = [x for x in lines if x.get("event") == "request" and x.get("path") == "/api/tenant"]
    assert access and access[0]["request_id"] == tenant.headers["x-posturio-request-id"]


@pytest.mark.timeout(300)
def test_the_log_is_private_and_never_holds_the_demo_credentials(stack):
    state: Path = stack["state"]  # type: ignore[assignment]
    demo = _read_env(state / "demo.env")
    log = state / "posturio.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "Posturio is running" in text  # the banner went here, without the secrets
    assert demo["POSTURIO_API_KEY"] not in text
    assert demo["POSTURIO_OWNER_PASSWORD"] not in text


@pytest.mark.timeout(300)
def test_scheduler_runs_audit_verification_in_the_worker(stack):
    services = _read_env(stack["state"] / "services.env")  # type: ignore[operator]
    demo = _read_env(stack["state"] / "demo.env")  # type: ignore[operator]
    tenant_id = httpx.get(
        f"{stack['base']}/api/tenant",
        headers={"Authorization": f"Bearer {demo['POSTURIO_API_KEY']}"},
    ).json()["id"]
    client = redis.Redis.from_url(services["POSTURIO_REDIS_URL"])
    deadline = time.monotonic() + 60
    report = None
    while report is None and time.monotonic() < deadline:
        report = client.hget("posturio:audit:last_verification", tenant_id)
        time.sleep(0.5)
    client.close()
    assert report is not None, "the scheduled audit verification never ran"
    assert json.loads(report)["ok"] is True


@pytest.mark.timeout(300)
def test_cli_admin_commands_reach_the_running_stack(stack):
    state: Path = stack["state"]  # type: ignore[assignment]
    env = {**stack["env"], **_read_env(state / "services.env")}  # type: ignore[dict-item]
    listed = _posturio(env, "tenants", "list")
    assert listed.returncode == 0 and "demo" in listed.stdout
    created = _posturio(env, "keys", "create", "demo", "--name", "from cli", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    r = httpx.get(f"{stack['base']}/api/tenant", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    verified = _posturio(env, "audit", "verify")
    assert verified.returncode == 0 and "chain intact" in verified.stdout


@pytest.mark.timeout(300)
def test_owner_signs_in_to_the_console_in_a_real_browser(stack, chromium):
    demo = _read_env(stack["state"] / "demo.env")  # type: ignore[operator]
    page = chromium.new_page()
    page.goto(f"{stack['base']}/console/")
    assert page.url.endswith("/login")  # not signed in: sent to the sign-in page
    page.fill("#email", demo["POSTURIO_OWNER_EMAIL"])
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert "Wrong email or password" in page.inner_text("[role=alert]")
    page.fill("#password", demo["POSTURIO_OWNER_PASSWORD"])
    page.click("button[type=submit]")
    page.wait_for_url("**/console")
    assert page.inner_text("#who") == demo["POSTURIO_OWNER_EMAIL"]
    assert page.inner_text("#tenant") == "Demo" and page.inner_text("#role") == "owner"
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["posturio_session"]["httpOnly"] is True
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.goto(f"{stack['base']}/console/")
    assert page.url.endswith("/login")
    page.close()


@pytest.mark.timeout(300)
def test_a_folder_in_the_documents_directory_answers_with_citations(stack):
    """The newcomer's Navigator path on the embedded default: drop a folder into the demo
    tenant's documents folder, approve it, ask the `navigator` model."""
    from openai import OpenAI

    state: Path = stack["state"]  # type: ignore[assignment]
    demo = _read_env(state / "demo.env")
    folder = state / "documents" / "demo" / "handbook"  # the demo tenant's granted folder
    folder.mkdir(parents=True)
    (folder / "leave.md").write_text(
        "# Leave\n\nEvery employee is entitled to thirty days of paid annual leave.\n"
    )
    api = httpx.Client(
        base_url=str(stack["base"]),
        headers={"Authorization": f"Bearer {demo['POSTURIO_API_KEY']}"},
        timeout=60,
    )
    everyone = {"name": "All", "kind": "directory", "config": {"path": str(folder.parents[1])}}
    assert api.post("/api/navigator/sources", json=everyone).status_code == 403  # not granted
    source = api.post(
        "/api/navigator/sources",
        json={"name": "Handbook", "kind": "directory", "config": {"path": str(folder)}},
    )
    assert source.status_code == 201, source.text
    source_id = source.json()["id"]
    api.post(f"/api/navigator/sources/{source_id}/transition", json={"action": "approve"})
    deadline = time.monotonic() + 180
    while api.get(f"/api/navigator/sources/{source_id}").json()["progress"].get("indexed") != 1:
        assert time.monotonic() < deadline, "the worker did not index the folder"
        time.sleep(1)
    client = OpenAI(base_url=demo["POSTURIO_BASE_URL"], api_key=demo["POSTURIO_API_KEY"])
    reply = client.chat.completions.create(
        model="navigator", messages=[{"role": "user", "content": "How much vacation do I get?"}]
    )
    content = reply.choices[0].message.content or ""
    assert "thirty days" in content and "[1]" in content and "leave.md" in content
    client.close()
    api.close()


def _processes(state: Path) -> dict[str, dict[str, object]]:
    return json.loads((state / "processes.json").read_text())


def _family(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


class _Traffic:
    """/readyz and a /v1 request, over and over, in the background: what a client sees."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key
        self.answers: list[tuple[str, int | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        body = {"model": "echo", "messages": [{"role": "user", "content": "still there?"}]}
        with httpx.Client(base_url=self.base, timeout=10) as http:
            while not self._stop.is_set():
                for what, send in (
                    ("readyz", lambda: http.get("/readyz")),
                    ("v1", lambda: http.post("/v1/chat/completions", json=body, headers=headers)),
                ):
                    try:
                        self.answers.append((what, send().status_code))
                    except httpx.HTTPError as exc:
                        self.answers.append((what, type(exc).__name__))


@pytest.mark.timeout(300)
def test_a_killed_worker_is_restarted_while_the_rest_keeps_serving(stack):
    state: Path = stack["state"]  # type: ignore[assignment]
    demo = _read_env(state / "demo.env")
    worker_pid = int(_processes(state)["worker"]["pid"])  # type: ignore[call-overload]
    doomed = _family(worker_pid)  # `posturio worker`, dramatiq and its worker process
    assert any("dramatiq" in " ".join(p.cmdline()) for p in doomed)

    with _Traffic(str(stack["base"]), demo["POSTURIO_API_KEY"]) as traffic:
        for p in doomed:  # a crash, not a shutdown
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 120
        while True:
            worker = _processes(state)["worker"]
            replaced = worker["pid"] not in (None, worker_pid) and worker["state"] == "running"
            family = _family(int(worker["pid"])) if replaced else []  # type: ignore[call-overload]
            if any("dramatiq" in " ".join(p.cmdline()) for p in _alive(family)):
                break
            assert time.monotonic() < deadline, f"no new worker: {worker}"
            time.sleep(0.5)
        served = len(traffic.answers)
        while len(traffic.answers) < served + 10:  # and after the new worker is up
            time.sleep(0.2)

    assert not _alive(doomed), "processes of the killed worker were left behind"
    refused = [a for a in traffic.answers if a[1] != 200]
    assert not refused and {w for w, _ in traffic.answers} == {"readyz", "v1"}, refused[:5]
    status = _posturio(stack["env"], "status")  # type: ignore[arg-type]
    assert status.returncode == 0, status.stdout
    assert "worker: running" in status.stdout and "restarted 1 time(s)" in status.stdout

    # The new worker drains what is recorded now into Postgres.
    headers = {"Authorization": f"Bearer {demo['POSTURIO_API_KEY']}"}
    content = f"after the restart {uuid.uuid4().hex}"
    reply = httpx.post(
        f"{demo['POSTURIO_BASE_URL']}/chat/completions",
        headers=headers,
        json={"model": "echo", "messages": [{"role": "user", "content": content}]},
    )
    assert reply.status_code == 200
    request_id = reply.headers["x-posturio-request-id"]
    deadline = time.monotonic() + 60
    while True:
        events = httpx.get(f"{stack['base']}/api/usage/requests?limit=500", headers=headers).json()
        if any(e["request_id"] == request_id for e in events):
            break
        assert time.monotonic() < deadline, "the usage of a request never reached Postgres"
        time.sleep(0.5)


@pytest.mark.timeout(300)
def test_restart_reuses_state(stack):
    state: Path = stack["state"]  # type: ignore[assignment]
    env = stack["env"]
    before = _read_env(state / "demo.env")
    everything = _family(int((state / "posturio.pid").read_text()))
    assert _posturio(env, "down").returncode == 0  # type: ignore[arg-type]
    assert not (state / "posturio.pid").exists()
    assert not _alive(everything), "`posturio down` left processes running"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack['base']}/readyz", timeout=2)

    again = _posturio(env, "up", "--detach")  # type: ignore[arg-type]
    assert again.returncode == 0, again.stderr
    assert _read_env(state / "demo.env") == before  # no second demo tenant, same key
    headers = {"Authorization": f"Bearer {before['POSTURIO_API_KEY']}"}
    assert httpx.get(f"{stack['base']}/api/tenant", headers=headers).status_code == 200
    env_with_db = {**env, **_read_env(state / "services.env")}  # type: ignore[dict-item]
    listed = _posturio(env_with_db, "tenants", "list")
    assert listed.stdout.count("demo") == 1


@pytest.mark.timeout(300)
def test_a_hangup_stops_the_whole_stack(stack):
    """A closed terminal (SIGHUP) stops everything `up` started, the database included."""
    state: Path = stack["state"]  # type: ignore[assignment]
    pid = int((state / "posturio.pid").read_text())
    everything = _family(pid)
    assert len(everything) > 3  # up, Postgres, Redis, the API, the worker
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 120
    while _alive(everything) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(everything), "a hangup left processes running"


@pytest.mark.timeout(300)
def test_no_worker_is_honoured_when_detached_and_the_log_rotates(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    env = {
        **_env(state, port),
        "POSTURIO_LOG_MAX_BYTES": "8192",
        "POSTURIO_LOG_BACKUPS": "2",
    }
    started = _posturio(env, "up", "--detach", "--no-worker")
    assert started.returncode == 0, started.stdout + started.stderr
    supervisor = _family(int((state / "posturio.pid").read_text()))
    try:
        assert list(_processes(state)) == ["api"]
        assert not any("dramatiq" in " ".join(p.cmdline()) for p in supervisor)
        status = _posturio(env, "status")
        assert "api: running" in status.stdout and "worker" not in status.stdout

        # One access line per request (not for a passing health probe, logged at debug,
        # nor for an unknown path, which no handler's middleware sees): a refused call,
        # enough of them to fill the log a few times over.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                assert http.get("/api/tenant").status_code == 401
        logs = sorted(state.glob("posturio.log*"))
        assert [p.name for p in logs] == ["posturio.log", "posturio.log.1", "posturio.log.2"]
        for path in logs:
            assert path.stat().st_size <= 8192
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        assert _posturio(env, "down").returncode == 0
    assert not _alive(supervisor)
