"""Wrong or missing settings fail at start with a message naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from posturio.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"POSTURIO_PORT": "eighty"}, "POSTURIO_PORT"),
        ({"POSTURIO_PORT": "70000"}, "POSTURIO_PORT"),
        ({"POSTURIO_DATABASE_URL": "mysql://x"}, "POSTURIO_DATABASE_URL"),
        ({"POSTURIO_REDIS_URL": "localhost:6379"}, "POSTURIO_REDIS_URL"),
        ({"POSTURIO_LOG_LEVEL": "loud"}, "POSTURIO_LOG_LEVEL"),
        ({"POSTURIO_SECRET_KEY": "short"}, "POSTURIO_SECRET_KEY"),
    ],
)
def test_bad_setting_is_named(monkeypatch, env, named):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_production_requires_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("POSTURIO_SECRET_KEY", raising=False)
    settings = load_settings(environment="production", state_dir=tmp_path)
    with pytest.raises(ConfigError, match="POSTURIO_SECRET_KEY"):
        settings.resolved_secret_key()


def test_cli_refuses_to_start_with_bad_setting():
    env = {**os.environ, "POSTURIO_PORT": "eighty"}
    r = subprocess.run(
        [sys.executable, "-m", "posturio.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "POSTURIO_PORT" in r.stderr
