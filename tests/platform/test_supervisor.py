"""The supervisor of `posturio up`: a crashing child is restarted and, when it keeps
crashing, reported as crash-looping while the others keep running; what a dead child
started does not outlive it. (The whole stack under SIGKILL: tests/test_embedded_stack.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from posturio.platform.supervisor import Supervisor, describe, reap_group


def _spawn(code: str) -> Callable[[], subprocess.Popen[bytes]]:
    return lambda: subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_crash_looping_child_is_reported_and_the_others_keep_running(tmp_path: Path) -> None:
    status = tmp_path / "processes.json"
    reported: list[str] = []
    supervisor = Supervisor(status, reported.append, backoff_s=0, cap_s=0)
    supervisor.add("steady", _spawn("import time; time.sleep(600)"))
    supervisor.add("broken", _spawn("raise SystemExit(3)"))
    steady_pid = supervisor.children[0].proc.pid  # type: ignore[union-attr]
    try:

        def looping() -> bool:
            supervisor.check()
            return supervisor.crash_looping(supervisor.children[1])

        _until(looping, "the broken child was never reported as crash-looping")
        assert "broken exited with code 3" in reported[0]
        assert "crash-looping" in reported[-1] and "the rest keeps serving" in reported[-1]
        lines = describe(status)
        assert lines[0] == f"steady: running (pid {steady_pid})"
        assert lines[1].startswith("broken: crash-looping") and "last exit code 3" in lines[1]
        assert supervisor.children[0].proc.pid == steady_pid  # type: ignore[union-attr]
    finally:
        supervisor.stop()
    assert not psutil.pid_exists(steady_pid)
    assert not status.exists()


def test_what_a_dead_child_started_goes_with_it() -> None:
    # The child starts a grandchild (in its process group), then dies: as dramatiq's
    # worker processes are left when dramatiq is killed.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
            "print(p.pid, flush=True)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None
    grandchild = psutil.Process(int(child.stdout.readline()))
    assert reap_group(child) == 0
    grandchild.wait(30)  # ends: it was sent SIGTERM with its group
    assert not grandchild.is_running()
