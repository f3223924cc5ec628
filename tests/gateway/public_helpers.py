"""Helpers for the public path's tests: a browser-like client from its own loopback
address (so each test has its own throttles and network), and a proof-of-work solver."""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

import httpx

from posturio.platform.signup import leading_zero_bits


def fresh_address() -> str:
    """A loopback address in its own /24: its own IP buckets and signup counters."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.1"


def solve(challenge: str, difficulty: int) -> str:
    counter = 0
    while (
        leading_zero_bits(hashlib.sha256(f"{challenge}:{counter}".encode()).digest()) < difficulty
    ):
        counter += 1
    return str(counter)


class Visitor:
    """A browser session: cookies, the page's CSRF token, one source address."""

    def __init__(self, server: str, address: str | None = None) -> None:
        self.address = address or fresh_address()
        self.http = httpx.AsyncClient(
            base_url=server,
            transport=httpx.AsyncHTTPTransport(local_address=self.address),
            timeout=30,
        )
        self.csrf = ""

    async def open(self, path: str = "/") -> httpx.Response:
        page = await self.http.get(path)
        match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        if match:
            self.csrf = match.group(1)
        return page

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"x-csrftoken": self.csrf})

    async def challenge(self) -> dict[str, Any]:
        r = await self.post("/signup/challenge", {})
        assert r.status_code == 200, r.text
        return r.json()

    async def signup(self, email: str, organisation: str = "Acme") -> httpx.Response:
        c = await self.challenge()
        return await self.post(
            "/signup",
            {
                "email": email,
                "organisation": organisation,
                "challenge": c["challenge"],
                "solution": solve(c["challenge"], c["difficulty"]),
            },
        )

    async def close(self) -> None:
        await self.http.aclose()
