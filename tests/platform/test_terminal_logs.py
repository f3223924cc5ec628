"""`make run` at a terminal: readable log lines for the person watching, JSON lines for
a file or a pipe (the detached log), and routine chatter (scheduler ticks, health
probes) at debug so that the start-up banner stays on screen."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from litestar.types import Receive, Scope, Send

from posturio.config import Settings, load_settings
from posturio.platform.logging import RequestIdMiddleware, configure_logging
from posturio.workers.broker import setup_broker
from posturio.workers.scheduler import run_scheduler
from tests.eventually import eventually


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging changes the process's logging: put it back for the next test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line.strip()]


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(stream)]


def test_a_terminal_gets_readable_coloured_lines() -> None:
    terminal = Terminal()
    configure_logging("info", json=None, stream=terminal)
    structlog.get_logger("posturio.test").info("source_synced", documents=3)
    [line] = _lines(terminal)
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert "source_synced" in line and "documents" in line and "3" in line
    assert "\x1b[" in line  # coloured


def test_a_file_or_pipe_gets_json_lines() -> None:
    pipe = io.StringIO()  # not a terminal: what the detached log file receives
    configure_logging("info", json=None, stream=pipe)
    structlog.get_logger("posturio.test").info("source_synced", documents=3)
    [record] = _records(pipe)
    assert record["event"] == "source_synced" and record["documents"] == 3
    assert record["level"] == "info"


def test_an_explicit_setting_wins_over_the_terminal() -> None:
    terminal = Terminal()
    configure_logging("info", json=True, stream=terminal)
    structlog.get_logger("posturio.test").info("source_synced")
    assert _records(terminal)[0]["event"] == "source_synced"
    pipe = io.StringIO()
    configure_logging("info", json=False, stream=pipe)
    structlog.get_logger("posturio.test").info("source_synced")
    [line] = _lines(pipe)
    assert "source_synced" in line and "\x1b[" not in line  # readable, no colour codes


def test_the_default_setting_chooses_by_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTURIO_LOG_JSON", raising=False)
    assert Settings().log_json is None


async def _answer(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _request(path: str, status: int) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(status, scope, receive, send)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    scope: Any = {"type": "http", "method": "GET", "path": path, "headers": []}
    await RequestIdMiddleware(app)(scope, receive, send)


async def test_successful_health_probes_are_logged_at_debug_and_the_rest_at_info() -> None:
    out = io.StringIO()
    configure_logging("debug", json=True, stream=out)
    await _request("/readyz", 200)
    await _request("/healthz", 200)
    await _request("/readyz", 503)  # a failing probe is news
    await _request("/api/tenant", 200)
    levels = [(r["path"], r["status"], r["level"]) for r in _records(out)]
    assert levels == [
        ("/readyz", 200, "debug"),
        ("/healthz", 200, "debug"),
        ("/readyz", 503, "info"),
        ("/api/tenant", 200, "info"),
    ]


async def test_the_schedulers_routine_tick_is_logged_at_debug(settings: Settings) -> None:
    # An interval no other scheduler in this run uses: its tick keys are this test's own.
    mine = load_settings(usage_drain_interval_s=37)
    setup_broker(mine)
    out = io.StringIO()
    configure_logging("debug", json=True, stream=out)
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(mine, stop), daemon=True)
    thread.start()
    try:

        async def ticks() -> list[dict[str, Any]]:
            return [
                r
                for r in _records(out)
                if r.get("event") == "scheduled_job_enqueued"
                and r.get("actor") == "gateway.drain_usage"
            ]

        [tick] = await eventually(ticks, bool, within_s=10, what="a scheduler tick")
    finally:
        stop.set()
        thread.join(5)
    assert tick["level"] == "debug"
