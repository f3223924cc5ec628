"""Console exports: a filtered listing (request log, audit log) as CSV or JSON, streamed
batch by batch so that memory stays flat, and bounded so that one click cannot read a
whole tenant's history. The bound is named in the response and, for JSON, whether it cut
the listing short."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

from litestar.response import Stream

from posturio.platform.errors import PosturioError

EXPORT_MAX_ROWS = 50_000
EXPORT_BATCH = 1_000
Format = Literal["csv", "json"]
Rows = AsyncGenerator[list[dict[str, Any]], None]

# A spreadsheet runs a cell that starts like a formula; exported values are often the
# tenant's callers' own text (key names, model aliases), so such cells are quoted.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_format(value: str) -> Format:
    if value not in ("csv", "json"):
        raise PosturioError("export as csv or json", code="invalid_format")
    return "csv" if value == "csv" else "json"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


async def _bounded(rows: Rows, limit: int) -> AsyncIterator[tuple[list[dict[str, Any]], bool]]:
    """Batches of at most `limit` rows in all; the flag says a row was left out."""
    left = limit
    try:
        async for batch in rows:
            if len(batch) > left:
                yield batch[:left], True
                return
            left -= len(batch)
            yield batch, False
            if left == 0:
                async for more in rows:
                    if more:
                        yield [], True
                        return
                return
    finally:
        await rows.aclose()


async def _csv(rows: Rows, columns: list[str], limit: int) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    async for batch, _ in _bounded(rows, limit):
        for row in batch:
            writer.writerow([_cell(row.get(c)) for c in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


async def _json(rows: Rows, limit: int) -> AsyncIterator[str]:
    yield '{"rows": ['
    first, truncated = True, False
    async for batch, cut in _bounded(rows, limit):
        truncated = truncated or cut
        if batch:
            body = ",\n".join(json.dumps(r, default=str, ensure_ascii=False) for r in batch)
            yield ("\n" if first else ",\n") + body
            first = False
    yield f'\n], "limit": {limit}, "truncated": {json.dumps(truncated)}}}\n'


def export_response(
    rows: Rows, *, fmt: Format, name: str, columns: list[str], limit: int = EXPORT_MAX_ROWS
) -> Stream:
    """The rows (newest first) as a download named after what and when."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    body = _csv(rows, columns, limit) if fmt == "csv" else _json(rows, limit)
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Stream(
        body,
        media_type=media,
        headers={
            "content-disposition": f'attachment; filename="posturio-{name}-{stamp}.{fmt}"',
            "x-posturio-export-limit": str(limit),
            "cache-control": "no-store",
        },
    )
