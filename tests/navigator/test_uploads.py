"""Uploads: a member adds files only to a proposed source they may read (a file in an
approved one is indexed without approval, so there an admin's upload is the approval);
members see only the sources they may read; an upload over the file limit is refused
while it streams in, on the API and the console, and every route bounds its body."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import text

from posturio.navigator.api import UPLOAD_CEILING
from posturio.platform import accounts
from posturio.platform.db import tenant_session
from posturio.platform.models import Role
from posturio.platform.principal import Principal
from tests.console_client import csrf, login

PASSWORD = "correct horse battery staple"


async def member(sessionmaker: Any, tenant_id: uuid.UUID, groups: list[str]) -> str:
    """A member with `groups` who signs in with PASSWORD; their e-mail."""
    email = f"m-{uuid.uuid4().hex[:8]}@example.com"
    async with tenant_session(sessionmaker, tenant_id) as session:
        system = Principal(tenant_id, Role.owner, "test")
        view = await accounts.add_member(session, system, email, Role.member, PASSWORD)
        await accounts.set_groups(session, system, str(view.membership.id), groups)
    return email


async def stored(owner_engine: Any, source_id: str) -> list[str]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT filename FROM navigator_uploads WHERE source_id = :s ORDER BY 1"),
            {"s": source_id},
        )
        return [r[0] for r in rows]


async def console_upload(browser: Any, source_id: str, name: str) -> str:
    """Upload a file on the console's sources page; the flash message it leads to."""
    page = await browser.get("/console/sources")
    r = await browser.post(
        f"/console/sources/{source_id}/files",
        data={"_csrf_token": csrf(page.text)},
        files={"file": (name, b"# Note\n\nSome text.\n", "text/markdown")},
    )
    assert r.status_code == 303, r.text
    listing = await browser.get("/console/sources")
    return listing.text.split('id="flash">', 1)[1].split("</p>", 1)[0]


async def test_members_upload_only_to_proposed_sources_they_may_read(
    browser, client, make_tenant, sessionmaker, owner_engine
):
    t = await make_tenant()
    api = {"headers": t.admin_headers}
    ids = {}
    for name, groups in (("Finance", ["finance"]), ("Open", None), ("Draft", None)):
        r = await client.post(
            "/api/navigator/sources", json={"name": name, "kind": "upload", "groups": groups}, **api
        )
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    for name in ("Finance", "Open"):
        r = await client.post(
            f"/api/navigator/sources/{ids[name]}/transition", json={"action": "approve"}, **api
        )
        assert r.json()["status"] == "approved"

    # The API: an admin's upload to an approved source is its approval; a member's key
    # (gateway scope) neither lists sources nor uploads.
    r = await client.put(
        f"/api/navigator/sources/{ids['Open']}/files/admin.md", content=b"x", **api
    )
    assert r.status_code == 200, r.text
    gw = {"Authorization": f"Bearer {t.gateway_key}"}
    r = await client.put(
        f"/api/navigator/sources/{ids['Draft']}/files/k.md", content=b"x", headers=gw
    )
    assert r.status_code == 403
    assert (await client.get("/api/navigator/sources", headers=gw)).status_code == 403

    # The console, as a member of another group.
    assert (await login(browser, await member(sessionmaker, t.id, ["eng"]), PASSWORD)).is_redirect
    page = (await browser.get("/console/sources")).text
    assert 'data-name="Open"' in page and 'data-name="Draft"' in page
    assert 'data-name="Finance"' not in page and ids["Finance"] not in page
    assert f"/console/sources/{ids['Draft']}/files" in page  # proposed: the member may add
    assert f"/console/sources/{ids['Open']}/files" not in page
    assert await console_upload(browser, ids["Finance"], "f.md") == "Not uploaded: source not found"
    assert "only an admin uploads" in await console_upload(browser, ids["Open"], "o.md")
    assert await console_upload(browser, ids["Draft"], "d.md") == "d.md uploaded."
    r = await browser.post(
        f"/console/sources/{ids['Finance']}",
        data={"action": "sync", "_csrf_token": csrf(page)},
    )
    assert r.status_code == 303
    assert "source not found" in (await browser.get("/console/sources")).text

    # The owner uploads to the approved source: that is the approval.
    browser.cookies.clear()
    assert (await login(browser, t.owner_email, t.owner_password)).is_redirect
    assert await console_upload(browser, ids["Open"], "o.md") == "o.md uploaded."
    assert 'data-name="Finance"' in (await browser.get("/console/sources")).text

    assert await stored(owner_engine, ids["Finance"]) == []
    assert await stored(owner_engine, ids["Open"]) == ["admin.md", "o.md"]
    assert await stored(owner_engine, ids["Draft"]) == ["d.md"]


async def chunked_upload(server: str, path: str, headers: str, total: int) -> tuple[bytes, int]:
    """Send up to `total` bytes as a chunked body (no Content-Length) until the server
    answers; the response head and how many bytes had gone out."""
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"{path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n{headers}\r\n".encode()
    )
    answered = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
    size = 1024 * 1024
    frame = f"{size:x}\r\n".encode() + b"a" * size + b"\r\n"
    sent = 0
    while sent < total and not answered.done():
        writer.write(frame)
        drained = asyncio.ensure_future(writer.drain())
        await asyncio.wait({drained, answered}, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done() or drained.exception() is not None:
            drained.cancel()
            break
        sent += size
    head = await asyncio.wait_for(answered, 60)
    writer.close()
    return head, sent


async def test_an_upload_over_the_limit_is_refused_while_it_streams(
    server, make_tenant, owner_engine
):
    t = await make_tenant()
    async with httpx.AsyncClient(base_url=server, headers=t.admin_headers) as http:
        source = (
            await http.post("/api/navigator/sources", json={"name": "Up", "kind": "upload"})
        ).json()
    total = 300 * 1024 * 1024
    head, sent = await chunked_upload(
        server,
        f"PUT /api/navigator/sources/{source['id']}/files/huge.txt",
        f"Authorization: Bearer {t.admin_key}\r\n",
        total,
    )
    assert head.startswith(b"HTTP/1.1 413"), head
    # Refused at the 20 MB limit: the rest was never read (the sender was held back).
    assert sent < total // 3, sent
    assert await stored(owner_engine, source["id"]) == []

    # The console's upload form too, before the form is parsed (or anyone signed in).
    head, sent = await chunked_upload(
        server,
        f"POST /console/sources/{source['id']}/files",
        "Content-Type: multipart/form-data; boundary=xyz\r\n",
        total,
    )
    assert head.startswith(b"HTTP/1.1 413"), head
    assert sent < total // 3, sent


def test_every_route_bounds_its_body(app):
    """Litestar reads no body past its route's bound: every route has one (the app's
    default, or the upload routes' ceiling above the file limit they enforce)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler):
                bound = handler.resolve_request_max_body_size()
                assert bound is not None and 0 < bound <= UPLOAD_CEILING, (route.path, bound)
