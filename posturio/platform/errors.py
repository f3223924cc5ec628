"""One error type for the non-/v1 APIs and the global handlers that map failures to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from posturio.platform.db import DB_RETRY_AFTER_S, database_unreachable
from posturio.platform.logging import current_request_id, new_request_id

log = structlog.get_logger("posturio.errors")


class PosturioError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class NotFound(PosturioError):
    status_code = 404
    code = "not_found"


class Conflict(PosturioError):
    status_code = 409
    code = "conflict"


class Unauthorized(PosturioError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PosturioError):
    status_code = 403
    code = "forbidden"


class Unavailable(PosturioError):
    status_code = 503
    code = "unavailable"


def _json(
    status: int, code: str, message: str, retry_after: int | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    if retry_after is None and status == 503:
        retry_after = 1
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    request_id = current_request_id()
    if request_id is None:
        # No route matched, so no middleware ran: the id is made here.
        request_id = new_request_id()
        headers["x-posturio-request-id"] = request_id
    # (/v1 never gets here: the gateway answers every /v1 path in OpenAI's envelope.)
    body = {"error": {"code": code, "message": message, "request_id": request_id, **extra}}
    return Response(body, status_code=status, headers=headers or None)


def _posturio(request: Request[Any, Any, Any], exc: PosturioError) -> Response[dict[str, Any]]:
    return _json(exc.status_code, exc.code, exc.message, exc.retry_after)


def _validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    detail = exc.detail or "invalid request"
    # Litestar's decoding errors are already precise ("Expected `str`, got `int` - at `$.name`").
    problems: list[dict[str, Any]] = [
        {"message": str(e.get("message")), "key": e.get("key"), "source": e.get("source")}
        for e in (exc.extra or [])
        if isinstance(e, dict)
    ]
    message = (
        "; ".join(f"{p['key']}: {p['message']}" if p["key"] else p["message"] for p in problems)
        or detail
    )
    return _json(400, "invalid_request", message, details=problems)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {
        400: "invalid_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        429: "rate_limited",
    }.get(exc.status_code, "bad_request")
    if exc.status_code >= 500:
        code = "server_error"
    response = _json(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _not_utf8(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    return _json(400, "invalid_request", f"the request is not valid UTF-8 (byte {exc.start})")


def _integrity(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    return _json(409, "conflict", "the change conflicts with existing data")


def _dependency_down(
    name: str,
) -> Callable[[Request[Any, Any, Any], Exception], Response[dict[str, Any]]]:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
        log.warning("dependency_unavailable", dependency=name, error=type(exc).__name__)
        return _json(503, "unavailable", f"{name} is unavailable, try again shortly")

    return handler


_UNAVAILABLE_PAGE = (
    "<!doctype html><title>Unavailable</title><h1>Posturio is briefly unavailable</h1>"
    "<p>{what} cannot be reached. Try again in a few seconds.</p>"
)


def _unavailable(request: Request[Any, Any, Any], what: str, retry_after: int) -> Response[Any]:
    """503 + Retry-After: the platform envelope on the APIs, a page for a browser."""
    if "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
        "/api/"
    ):
        return Response(
            _UNAVAILABLE_PAGE.format(what=what.capitalize()),
            status_code=503,
            media_type="text/html",
            headers={"retry-after": str(retry_after)},
        )
    return _json(503, "unavailable", f"{what} is unavailable, try again shortly", retry_after)


def _database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("dependency_unavailable", dependency="database", error=type(exc).__name__)
    return _unavailable(request, "the database", DB_RETRY_AFTER_S)


# SQLSTATEs that only a value from the request can cause: the caller's mistake, not ours.
_BAD_VALUE = {
    # asyncpg's own, when an argument does not fit its column (an integer past int4/int8)
    "22000": "a value in the request is out of range for its field",
    "22003": "a number in the request is out of range",  # numeric_value_out_of_range
    "22021": "text must not contain NUL (\\u0000) characters",  # character_not_in_repertoire
    "22P05": "text must not contain NUL (\\u0000) characters",  # untranslatable_character
    "22001": "a value in the request is too long",  # string_data_right_truncation
    "22P02": "a value in the request is not valid for its field",  # invalid_text_representation
}


def _bad_value(exc: Exception) -> str | None:
    """Why Postgres refused a value of the request; None when the fault is not the caller's."""
    return _BAD_VALUE.get(getattr(getattr(exc, "orig", exc), "sqlstate", None) or "")


def _database(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if database_unreachable(exc):
        return _database_down(request, exc)
    if (message := _bad_value(exc)) is not None:
        log.info("value_refused_by_database", detail=str(exc)[:200])
        return _json(400, "invalid_request", message)
    return _unexpected(request, exc)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # OSError subclasses here are almost always a dependency that is down (refused,
    # unreachable, reset; the database's connect errors arrive unwrapped): a 503 the
    # caller can retry, not a 500.
    if isinstance(exc, OSError | TimeoutError):
        log.warning("dependency_unavailable", error=type(exc).__name__, detail=str(exc)[:200])
        return _unavailable(request, "a dependency", DB_RETRY_AFTER_S)
    log.exception("unhandled_error", exc_info=exc)
    return _json(HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "internal error (see request id)")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    PosturioError: _posturio,
    ValidationException: _validation,
    HTTPException: _http,
    UnicodeDecodeError: _not_utf8,
    IntegrityError: _integrity,
    DBAPIError: _database,
    asyncpg.PostgresError: _database,  # raised unwrapped while connecting
    asyncpg.InterfaceError: _database,
    PoolTimeoutError: _database_down,
    RedisConnectionError: _dependency_down("redis"),
    RedisTimeoutError: _dependency_down("redis"),
    Exception: _unexpected,
}
