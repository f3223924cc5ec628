"""A running Posturio (`posturio serve`) and worker against the test Postgres and Redis, in
front of a fake upstream that can fail on demand; shared by every test package (imported
into the root conftest). Navigator's directory sources live under one allowlisted root."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from posturio.platform.embedded import free_port
from tests.gateway.fake_upstream import FakeUpstream

TUNING = {
    "POSTURIO_RETRY_BASE_S": "0.01",
    "POSTURIO_RETRY_CAP_S": "0.05",
    "POSTURIO_MAX_RETRY_AFTER_S": "2",
    "POSTURIO_BREAKER_FAILURES": "3",
    "POSTURIO_BREAKER_COOLDOWN_S": "30",
    "POSTURIO_BODY_READ_TIMEOUT_S": "2",
    "POSTURIO_SIGNUP_POW_BITS": "14",  # real work, sized for a test run
}


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # POSTURIO_TEST_LOGS=<dir> keeps the server's and worker's output for debugging.
    logs = os.environ.get("POSTURIO_TEST_LOGS")
    out: Any = subprocess.DEVNULL
    if logs:
        out = open(Path(logs) / f"{args[0]}-{os.getpid()}.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "posturio.cli", *args], env=env, stdout=out, stderr=out
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def navigator_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("navigator-root")


@pytest.fixture(scope="session")
def gateway_env(services: dict[str, str], settings: Any, navigator_root: Path) -> dict[str, str]:
    return {
        **os.environ,
        **TUNING,
        "POSTURIO_NAVIGATOR_ROOTS": json.dumps([str(navigator_root)]),
        # Test web sites are served on 127.0.0.1; every other private address stays refused.
        "POSTURIO_NAVIGATOR_URL_ALLOWLIST": json.dumps(["127.0.0.1/32"]),
        # Tenants with a route of this name get generative grounded answers.
        "POSTURIO_NAVIGATOR_ANSWER_MODEL": "navigator-writer",
        "POSTURIO_PORT": str(free_port()),
        "POSTURIO_LOG_LEVEL": "warning",
    }


@pytest.fixture(scope="session")
def server(gateway_env: dict[str, str]) -> Iterator[str]:
    base = f"http://127.0.0.1:{gateway_env['POSTURIO_PORT']}"
    proc = _start(["serve"], gateway_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        _stop(proc)
        pytest.fail("posturio serve did not become ready")
    yield base
    _stop(proc)


class Worker:
    """A real `posturio worker` with its scheduler; restartable, and killable."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**env, "POSTURIO_USAGE_DRAIN_INTERVAL_S": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = _start(["worker", "--threads", "2"], self.env)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, mid-job, with its dramatiq processes: a crash, not a shutdown."""
        if self.proc is not None:
            family = [*psutil.Process(self.proc.pid).children(recursive=True)]
            for p in [psutil.Process(self.proc.pid), *family]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def worker(gateway_env: dict[str, str]) -> Iterator[Worker]:
    w = Worker(gateway_env)
    w.start()
    yield w
    w.stop()


# --- identity providers -------------------------------------------------------------


@dataclass
class Idp:
    """A real OpenID Connect provider process (`oidc-provider-mock`): its users are set
    through its API, and it signs in whoever names their `sub` on its authorize page."""

    issuer: str

    def set_user(self, sub: str, **claims: Any) -> None:
        r = httpx.put(f"{self.issuer}/users/{sub}", json=claims)
        assert r.status_code == 204, r.text

    def authorize(self, url: str, sub: str) -> str:
        """The person signs in at the provider: its answer is the redirect to Posturio."""
        r = httpx.post(url, data={"sub": sub})
        assert r.status_code == 302, r.text
        return r.headers["location"]


def _start_idp() -> tuple[subprocess.Popen[bytes], Idp]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    idp = Idp(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{idp.issuer}/.well-known/openid-configuration").status_code == 200:
                return proc, idp
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("oidc-provider-mock did not start")


@pytest.fixture(scope="module")
def idps() -> Iterator[tuple[Idp, Idp]]:
    """Two providers: two companies, each with its own (import the fixture where used)."""
    a_proc, a = _start_idp()
    b_proc, b = _start_idp()
    yield a, b
    for proc in (a_proc, b_proc):
        proc.terminate()
        proc.wait(10)
