"""Input rules every API shares: no NUL character, bounded JSON nesting (the decoders
recurse), and the platform's error envelope documented on every /api operation."""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import ASGIApp, Empty, Receive, Scope, Send

from posturio.platform.errors import PosturioError

# Deeper than any real request; the decoders recurse, so depth is bounded before decoding.
MAX_JSON_DEPTH = 128
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 opens, -1 (signed) closes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 4096
# A JSON NUL escape: `\u0000` after an even number of backslashes (`\\u0000` is text).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
MULTIPART = RequestEncodingType.MULTI_PART.value


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text nests arrays/objects deeper than `limit` (strings ignored)."""
    if body.count(b"[") + body.count(b"{") <= limit:  # the common case: nothing to scan
        return False
    steps = array("b", _STRINGS.sub(b"", body).translate(_STEPS, _NOT_BRACKETS))
    depth = 0
    for start in range(0, len(steps), _CHUNK):  # chunks: a deep body stops at once
        sums = list(accumulate(steps[start : start + _CHUNK], initial=depth))
        if max(sums) > limit:
            return True
        depth = sums[-1]
    return False


def has_nul(body: bytes) -> bool:
    r"""True when a JSON text holds a NUL character (JSON can only spell it `\u0000`)."""
    return b"\\u0000" in body and _NUL_ESCAPE.search(body) is not None


class CheckedRequest(Request[Any, Any, Any]):
    """Every JSON body of the app is decoded here: refused when too deep or holding NUL."""

    async def body(self) -> bytes:
        # A multipart form read before the handler (the CSRF check looks for its token)
        # consumed the stream without keeping the bytes; reading again would wait for
        # the client forever, so a handler wanting the raw body refuses the form instead.
        state = self._connection_state
        if state.body is Empty and state.form is not Empty and self.content_type[0] == MULTIPART:
            raise PosturioError("this endpoint does not take a multipart form", status_code=415)
        return await super().body()

    async def json(self) -> Any:
        body = await self.body()
        if json_depth_exceeds(body):
            raise PosturioError(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
        if has_nul(body):
            raise PosturioError("text must not contain NUL (\\u0000) characters")
        return await super().json()


def reject_nul_in_url(app: ASGIApp) -> ASGIApp:
    """Middleware: a NUL in the path or query is refused before any handler sees it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            b"%00" in scope.get("query_string", b"") or "\x00" in scope["path"]
        ):
            raise PosturioError("the URL must not contain NUL (%00) characters")
        await app(scope, receive, send)

    return middleware


# ---------------------------------------------------------------- the envelope in OpenAPI


class Problem(msgspec.Struct):
    message: str
    key: str | None
    source: str | None


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    request_id: str
    details: list[Problem] | None = None  # validation errors: one entry per field


class ErrorBody(msgspec.Struct):
    """What every non-/v1 error answers."""

    error: ErrorDetail


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


_EVERY_CALL = {
    400: _spec("The request is invalid (`invalid_request`); `details` names each field"),
    401: _spec("No valid API key (`unauthorized`)"),
    403: _spec("The key or its holder may not do this (`forbidden`)"),
    404: _spec("No such resource in this tenant (`not_found`)"),
    503: _spec("A dependency is down (`unavailable`); retry after `Retry-After` seconds"),
}
_WRITES = {
    409: _spec("The change conflicts with existing data (`conflict`)"),
    413: _spec("The body is larger than the limit (`body_too_large`)"),
}


class ErrorResponses(ReceiveRoutePlugin):
    """Documents the real error envelope and statuses on every /api operation.

    Litestar documents a `{status_code, detail}` 400 by default and has no app-wide
    `responses=`, so the routes are given them as they are registered; a handler's own
    `responses` win.
    """

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/api/"):
            return
        for handler in route.route_handlers:
            writes = bool(handler.http_methods - {"GET", "HEAD", "OPTIONS"})
            defaults = {**_EVERY_CALL, **(_WRITES if writes else {})}
            handler.responses = {**defaults, **(handler.responses or {})}
