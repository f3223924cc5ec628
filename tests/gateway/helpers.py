"""Small helpers for gateway tests: routes through the admin API, SDK clients."""

from __future__ import annotations

from typing import Any

import httpx
from openai import AsyncOpenAI, OpenAI


def deployment(name: str, model: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "model": model,
        "base_url": f"{base_url}/v1",
        "max_retries": 0,
        "timeout_s": 5,
        **extra,
    }


async def put_route(
    server: str, tenant: Any, alias: str, deployments: list[dict[str, Any]], kind: str = "chat"
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server, headers=tenant.admin_headers) as http:
        r = await http.put(f"/api/routes/{alias}", json={"kind": kind, "deployments": deployments})
    assert r.status_code == 200, r.text
    return r.json()


def sdk(server: str, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)


def sync_sdk(server: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)


USER = [{"role": "user", "content": "hello from the test"}]
