"""Keeps the processes of `posturio up` running.

A child that exits is started again after a backoff that doubles from `backoff_s` up to
`cap_s`; one that keeps exiting soon after each start is reported as crash-looping (in
the log and in `posturio status`) and retried at the cap, while the others keep serving.
The state of every child is written to a JSON file for `posturio status`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posturio.files import write_private

Start = Callable[[], "subprocess.Popen[bytes]"]


def has_exited(proc: subprocess.Popen[Any]) -> bool:
    """Like `poll()`, but leaves the exited process unreaped (see `reap_group`)."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def reap_group(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> int:
    """Wait for `proc` (the leader of its own process group) and signal what is left of
    its group before reaping it: processes it forked must not outlive it as orphans.
    Waiting without reaping first keeps the group id from being reused meanwhile."""
    if proc.returncode is None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
    return proc.wait()


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the process that started it dies,
    even by SIGKILL (Linux; elsewhere a no-op)."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    name: str
    start: Start
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_exits: int = 0  # consecutive exits soon after a start
    last_exit: int | None = None
    restart_at: float | None = None
    next_try_at: float | None = None  # the same moment on the wall clock, for status

    @property
    def state(self) -> str:
        if self.proc is not None:
            return "running"
        return "restarting" if self.restart_at is not None else "stopped"


class Supervisor:
    def __init__(
        self,
        status_path: Path,
        report: Callable[[str], None],
        *,
        backoff_s: float = 1.0,
        cap_s: float = 30.0,
        stable_s: float = 60.0,
        crash_loop_after: int = 3,
    ) -> None:
        self.status_path = status_path
        self.report = report
        self.backoff_s = backoff_s
        self.cap_s = cap_s
        self.stable_s = stable_s
        self.crash_loop_after = crash_loop_after
        self.children: list[Child] = []
        self._saved = ""

    def add(self, name: str, start: Start) -> None:
        child = Child(name, start)
        self.children.append(child)
        self._launch(child)

    def all_running(self) -> bool:
        """True while no child has exited (starting up: any exit is a failure to start)."""
        return all(c.proc is not None and not has_exited(c.proc) for c in self.children)

    def check(self) -> None:
        """Notice exited children, restart those whose backoff is over, save the state."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and has_exited(child.proc):
                self._exited(child, now)
            elif child.proc is not None and now - child.started_at >= self.stable_s:
                child.quick_exits = 0  # up long enough: no longer crash-looping
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._launch(child)
        self._save()

    def crash_looping(self, child: Child) -> bool:
        return child.quick_exits >= self.crash_loop_after

    def stop(self, timeout_s: float = 15) -> None:
        """Terminate every child (SIGKILL after `timeout_s`) and what is left of its group."""
        running = [c.proc for c in self.children if c.proc is not None]
        for child in self.children:
            child.proc, child.restart_at = None, None
        for proc in running:
            if not has_exited(proc):
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(has_exited(p) for p in running):
            time.sleep(0.1)
        for proc in running:
            if not has_exited(proc):
                proc.kill()
            reap_group(proc)
        self.status_path.unlink(missing_ok=True)

    def _launch(self, child: Child) -> None:
        child.proc = child.start()
        child.started_at = time.monotonic()
        child.restart_at = None

    def _exited(self, child: Child, now: float) -> None:
        assert child.proc is not None
        code = reap_group(child.proc)
        child.proc = None
        child.last_exit = code
        ran_s = now - child.started_at
        child.quick_exits = child.quick_exits + 1 if ran_s < self.stable_s else 1
        delay = min(self.cap_s, self.backoff_s * 2 ** (child.quick_exits - 1))
        child.restart_at = now + delay
        child.next_try_at = time.time() + delay
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if self.crash_looping(child):
            self.report(
                f"{child.name} {how}; it is crash-looping ({child.quick_exits} exits in a row"
                f" within {self.stable_s:.0f} s of starting), next try in {delay:.0f} s;"
                " the rest keeps serving"
            )
        else:
            self.report(f"{child.name} {how} after {ran_s:.0f} s; restarting in {delay:.0f} s")

    def _save(self) -> None:
        state = json.dumps(
            {
                c.name: {
                    "state": "crash-looping" if self.crash_looping(c) else c.state,
                    "pid": c.proc.pid if c.proc is not None else None,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "next_try_at": c.next_try_at if c.restart_at is not None else None,
                }
                for c in self.children
            }
        )
        if state != self._saved:  # checked twice a second; written only when it changes
            # Replaced whole, so `posturio status` never reads half a file.
            partial = self.status_path.with_suffix(".tmp")
            write_private(partial, state)
            partial.replace(self.status_path)
            self._saved = state


def describe(status_path: Path) -> list[str]:
    """Lines for `posturio status`, one per supervised process."""
    try:
        state: dict[str, dict[str, Any]] = json.loads(status_path.read_text())
    except (OSError, ValueError):
        return []
    lines = []
    for name, s in state.items():
        line = f"{name}: {s['state']}"
        if s["pid"]:
            line += f" (pid {s['pid']})"
        if s["restarts"]:
            line += f", restarted {s['restarts']} time(s), last exit code {s['last_exit']}"
        if s["next_try_at"] is not None:
            line += f", next try in {max(0.0, s['next_try_at'] - time.time()):.0f} s"
        lines.append(line)
    return lines
