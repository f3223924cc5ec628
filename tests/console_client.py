"""Driving the console over HTTP as a browser would: CSRF tokens from the page's forms."""

from __future__ import annotations

import re
from typing import Any


def csrf(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


async def login(client: Any, email: str, password: str) -> Any:
    page = await client.get("/login")
    return await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": csrf(page.text)}
    )


async def submit(client: Any, page_url: str, action: str, data: dict[str, str]) -> Any:
    """Post a form found on `page_url` (its CSRF token taken from that page)."""
    page = await client.get(page_url)
    return await client.post(action, data={**data, "_csrf_token": csrf(page.text)})
