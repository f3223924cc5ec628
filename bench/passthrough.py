"""The ceiling for Python here: a bare ASGI passthrough with aiohttp, no auth, policy,
limits or usage. Served by the same uvicorn as Posturio, so the ratio measures what
Posturio's own work costs.

Run: BENCH_UPSTREAM=http://127.0.0.1:PORT uvicorn bench.passthrough:app ...
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9000") + "/v1/chat/completions"
_session: aiohttp.ClientSession | None = None


async def _read(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = await _read(receive)
    async with _session.post(
        UPSTREAM, data=body, headers={"content-type": "application/json"}
    ) as upstream:
        await send(
            {
                "type": "http.response.start",
                "status": upstream.status,
                "headers": [(b"content-type", upstream.headers["content-type"].encode())],
            }
        )
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
