"""Throwaway embedded PostgreSQL + Redis with migrations applied, for benchmarks."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from posturio.config import Settings, load_settings
from posturio.platform.embedded import EmbeddedPostgres, EmbeddedRedis
from posturio.platform.migrate import upgrade


@contextmanager
def embedded_services(keep: Path | None = None) -> Iterator[Settings]:
    """The services in a temporary folder, or in `keep`, where a later run finds its data
    again (migrations added since are applied). The folder is `settings.state_dir.parent`.
    Migrations run their own event loop: enter this outside `asyncio.run`."""
    with tempfile.TemporaryDirectory(prefix="posturio-bench-") as tmp:
        root = (keep or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        pg = EmbeddedPostgres(root / "postgres")
        redis = EmbeddedRedis(root / "redis", persist=False)
        try:
            os.environ["POSTURIO_DATABASE_URL"] = pg.start()
            os.environ["POSTURIO_REDIS_URL"] = redis.start()
            os.environ.setdefault("POSTURIO_SECRET_KEY", secrets.token_urlsafe(40))
            os.environ["POSTURIO_STATE_DIR"] = str(root / "state")
            settings = load_settings()
            upgrade(settings)
            yield settings
        finally:
            redis.stop()
            pg.stop()


@contextmanager
def running_server() -> Iterator[str]:
    """`posturio serve` on a free port against the services above; yields its base URL
    once /readyz answers, and stops it on the way out (before the services stop)."""
    import subprocess
    import sys
    import time

    import httpx

    from posturio.platform.embedded import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "posturio.cli", "serve"],
        env={**os.environ, "POSTURIO_PORT": str(port), "POSTURIO_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("posturio serve did not become ready")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
