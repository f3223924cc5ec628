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
def embedded_services() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="posturio-bench-") as tmp:
        root = Path(tmp)
        pg = EmbeddedPostgres(root / "postgres")
        redis = EmbeddedRedis(root / "redis", persist=False)
        try:
            os.environ["POSTURIO_DATABASE_URL"] = pg.start()
            os.environ["POSTURIO_REDIS_URL"] = redis.start()
            os.environ["POSTURIO_SECRET_KEY"] = secrets.token_urlsafe(40)
            os.environ["POSTURIO_STATE_DIR"] = str(root / "state")
            settings = load_settings()
            upgrade(settings)
            yield settings
        finally:
            redis.stop()
            pg.stop()
