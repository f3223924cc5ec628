"""`posturio status` asks the stack that `posturio up` started, on whatever port it was
given, even from a shell whose settings name another port (or none)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from click.testing import CliRunner

from posturio.cli import _services_env, main
from posturio.config import load_settings
from posturio.platform.embedded import free_port


def _started_here(state: Path, port: int) -> None:
    """What `posturio up` leaves in its state directory while it runs: its pid and the
    services file (written by up's own writer) naming the API's port."""
    state.mkdir(parents=True)
    (state / "posturio.pid").write_text(str(os.getpid()))
    env = {
        "POSTURIO_DATABASE_URL": "postgresql://posturio@127.0.0.1:1/posturio",
        "POSTURIO_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    _services_env(state, env, load_settings(port=port))


def test_status_finds_the_api_on_the_port_up_was_given(tmp_path: Path, server: str) -> None:
    api_port = urlsplit(server).port
    assert api_port is not None
    state = tmp_path / "state"
    _started_here(state, api_port)
    elsewhere = str(free_port())  # this shell's setting: nothing listens there
    result = CliRunner().invoke(
        main, ["status"], env={"POSTURIO_STATE_DIR": str(state), "POSTURIO_PORT": elsewhere}
    )
    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:{api_port}" in result.output and "readyz 200" in result.output


def test_status_says_when_the_api_it_started_does_not_answer(tmp_path: Path) -> None:
    state = tmp_path / "state"
    silent = free_port()
    _started_here(state, silent)
    result = CliRunner().invoke(main, ["status"], env={"POSTURIO_STATE_DIR": str(state)})
    assert result.exit_code == 1, result.output
    assert f"127.0.0.1:{silent}" in result.output and "API not answering" in result.output


def test_status_without_a_running_stack_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status"], env={"POSTURIO_STATE_DIR": str(tmp_path)})
    assert result.exit_code == 3 and "not running" in result.output
