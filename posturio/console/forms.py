"""Form reading for console actions: values as strings, repeated fields as lists."""

from __future__ import annotations

from typing import Any

from litestar import Request


async def form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    data = await request.form()
    out: dict[str, Any] = {}
    for key in data:
        values = data.getall(key)
        out[key] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return out


def text(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key, default)
    return (value[0] if isinstance(value, list) else str(value)).strip()


def many(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    return [v for v in (value if isinstance(value, list) else [value]) if v]
