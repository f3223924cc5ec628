"""Navigator's fixtures: the operator granting a tenant a folder, as the operator does."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

Grant = Callable[[uuid.UUID | str, Path], Path]


def operator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`posturio navigator …` as the operator runs it, with the test server's roots."""
    return subprocess.run(
        [sys.executable, "-m", "posturio.cli", "navigator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def grant(gateway_env: dict[str, str]) -> Grant:
    """`grant(tenant, folder)`: the operator grants `folder` to the tenant (id or slug)
    with `posturio navigator grant`; returns the folder."""

    def run(tenant: uuid.UUID | str, folder: Path) -> Path:
        done = operator(gateway_env, "grant", str(tenant), str(folder))
        assert done.returncode == 0, done.stderr
        return folder

    return run
