"""Request bodies of /v1: decoded once, the fields the gateway relies on checked, the rest
kept as sent (it is forwarded untouched)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from posturio.gateway.errors import GatewayError, invalid
from posturio.gateway.schemas import check_json_depth

_AT = re.compile(r" - at `\$\.?(.*)`$")
S = TypeVar("S")


def _validation_error(exc: msgspec.ValidationError) -> GatewayError:
    message = str(exc)
    match = _AT.search(message)
    param = match.group(1) if match else None
    return invalid(_AT.sub("", message) + (f" (at {param})" if param else ""), param)


def decode_object(body: bytes) -> dict[str, Any]:
    check_json_depth(body)
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise invalid(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    except UnicodeDecodeError as exc:
        raise invalid(
            f"the request body is not valid UTF-8 (byte {exc.start})", code="invalid_json"
        ) from None
    if not isinstance(payload, dict):
        raise invalid("the request body must be a JSON object", code="invalid_json")
    return payload


def parse(body: bytes, shape: type[S]) -> tuple[dict[str, Any], S]:
    """The body as a dict (passed through untouched) and the fields we rely on, checked."""
    payload = decode_object(body)
    try:
        return payload, msgspec.convert(payload, shape)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
