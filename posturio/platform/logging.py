"""Structured logs carrying the request id (JSON lines, or readable lines at a terminal),
and the middleware that assigns it."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from logging.handlers import RotatingFileHandler
from typing import IO, Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-posturio-request-id"
_request_id: ContextVar[str | None] = ContextVar("posturio_request_id", default=None)
_path: ContextVar[str] = ContextVar("posturio_path", default="")
access_log = structlog.get_logger("posturio.access")
# Polled by load balancers, orchestrators and Prometheus every few seconds: their
# successful answers are logged at debug, so that they do not bury everything else.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def current_request_id() -> str | None:
    return _request_id.get()


def current_path() -> str:
    return _path.get()


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def wants_json(json: bool | None, stream: IO[str]) -> bool:
    """JSON lines for machines (a file, a pipe, a log collector), readable lines for a
    person at a terminal; an explicit setting wins."""
    return json if json is not None else not is_terminal(stream)


def configure_logging(
    level: str = "info", *, json: bool | None = None, stream: IO[str] | None = None
) -> None:
    """Log to `stream` (stderr): JSON, or (`json` None and a terminal) coloured lines."""
    stream = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[Any] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if wants_json(json, stream)
        # The console renderer lays out tracebacks itself.
        else [structlog.dev.ConsoleRenderer(colors=is_terminal(stream))]
    )
    structlog.configure(
        # Level first: a filtered-out line costs a comparison, not a timestamp and a render.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log is replaced by ours (it has the request id and duration).
    logging.getLogger("uvicorn.access").disabled = True


class PrivateRotatingFileHandler(RotatingFileHandler):
    """Size-rotated log file readable by its owner only (request paths, tenant ids and
    error details are in it), including each file a rollover starts."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # also a file left with wider permissions by an older version
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def open_private_log(path: str | os.PathLike[str]) -> int:
    """An append-only descriptor on the log file, created (or narrowed to) mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def redirect_output_to_rotating_file(
    path: str | os.PathLike[str], max_bytes: int, backups: int
) -> Callable[[], None]:
    """Route this process's stdout and stderr, and so those of every child it starts,
    through one pipe into a size-rotated file. One writer owns the file: processes that
    each rotated it themselves would rename it under one another. Returns the function
    that flushes and closes it."""
    handler = PrivateRotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors="replace"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.terminator = ""  # each line keeps the newline it arrived with
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    copier = threading.Thread(
        target=_copy_lines, args=(read_fd, handler), name="log-writer", daemon=True
    )
    copier.start()

    def close() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Back to the original outputs, so that a last error message still lands somewhere.
        for fd, original in zip((1, 2), saved, strict=True):
            os.dup2(original, fd)
            os.close(original)
        # The copier ends at end of file, once every process holding the pipe has exited.
        copier.join(5)
        handler.close()

    return close


def _copy_lines(read_fd: int, handler: logging.Handler) -> None:
    with os.fdopen(read_fd, "rb") as pipe:
        for line in pipe:
            record = logging.makeLogRecord({"msg": line.decode("utf-8", "replace")})
            handler.handle(record)


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Assign a request id, expose it in logs and on the response, log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        token = _request_id.set(request_id)
        path_token = _path.set(scope.get("path", ""))
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                # The gateway's own handlers (mounted here: playground, Navigator answers)
                # already name this request id.
                if not any(name == REQUEST_ID_HEADER for name, _ in headers):
                    headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            routine = status < 400 and path in PROBE_PATHS
            (access_log.debug if routine else access_log.info)(
                "request",
                method=scope.get("method"),
                path=path,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            _request_id.reset(token)
            _path.reset(path_token)
