"""Folder grants: a tenant's directory and local git sources read only folders the
operator granted to that tenant (the operator's roots are shared by every tenant), at
proposal and again at every sync; only the operator grants, and only under the roots."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from posturio.navigator.models import FolderGrant
from posturio.platform.db import tenant_session
from tests.navigator.conftest import Grant, operator
from tests.navigator.test_search import indexed
from tests.navigator.test_sources import search


def folder_with(root: Path, name: str, text: str) -> Path:
    folder = root / f"{name}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "notes.md").write_text(f"# Notes\n\n{text}\n")
    return folder


async def propose(http: httpx.AsyncClient, kind: str, location: str) -> httpx.Response:
    key = "path" if kind == "directory" else "url"
    return await http.post(
        "/api/navigator/sources",
        json={"name": f"s-{uuid.uuid4().hex[:6]}", "kind": kind, "config": {key: location}},
    )


async def test_a_tenant_cannot_propose_another_tenants_folder(
    server, make_tenant, navigator_root: Path, grant: Grant
):
    a, b = await make_tenant(), await make_tenant()
    ours = grant(a.id, folder_with(navigator_root, "a", "Ours."))
    theirs = grant(b.id, folder_with(navigator_root, "b", "Theirs."))
    (ours / "into-b").symlink_to(theirs)
    async with httpx.AsyncClient(base_url=server, headers=a.admin_headers) as http:
        for kind in ("directory", "git"):
            for path in (
                theirs,  # B's granted folder
                navigator_root,  # the root every tenant shares
                ours / ".." / theirs.name,  # `..` out of ours into B's
                ours / "into-b",  # a symlink in ours leading to B's
                navigator_root.parent,  # outside the roots altogether
            ):
                r = await propose(http, kind, str(path))
                assert r.status_code == 403, (kind, path, r.text)
                assert r.json()["error"]["code"] == "path_not_allowed"
        # Inside its own grant: a missing folder is a plain bad request; the folder is fine.
        r = await propose(http, "directory", str(ours / "missing"))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_source"
        r = await propose(http, "directory", str(ours))
        assert r.status_code == 201, r.text
        assert r.json()["config"]["path"] == str(ours.resolve())
        # Each tenant lists only its own grants (any key of the tenant).
        listed = await http.get(
            "/api/navigator/folders", headers={"Authorization": f"Bearer {a.gateway_key}"}
        )
        assert listed.status_code == 200
        assert [f["path"] for f in listed.json()] == [str(ours.resolve())]
    async with httpx.AsyncClient(base_url=server, headers=b.admin_headers) as http:
        assert (await propose(http, "directory", str(theirs))).status_code == 201


@pytest.mark.timeout(300)
async def test_a_revoked_grant_stops_the_next_sync_before_reading(
    server, worker, make_tenant, navigator_root: Path, grant: Grant, gateway_env
):
    t = await make_tenant()
    folder = grant(t.id, folder_with(navigator_root, "hr", "The glorptime rule applies."))
    async with httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=60) as http:
        source = await indexed(http, "HR", folder)
        assert source["progress"]["indexed"] == 1
        assert [h["uri"] for h in await search(http, "glorptime")] == ["notes.md"]

        done = operator(gateway_env, "revoke", t.slug, str(folder))
        assert done.returncode == 0, done.stderr
        (folder / "new.md").write_text("# New\n\nThe snarfwidget arrived.\n")
        r = await http.post(f"/api/navigator/sources/{source['id']}/sync")
        assert r.status_code == 202
        state = await progress_until(http, source["id"], "error")
        assert "not in a folder the operator granted" in state["error"]
        assert state["discovered"] == 0  # nothing listed, nothing read
        documents = (await http.get(f"/api/navigator/sources/{source['id']}/documents")).json()
        assert [d["uri"] for d in documents] == ["notes.md"]
        assert await search(http, "snarfwidget") == []
        # A new proposal of the folder is refused too.
        assert (await propose(http, "directory", str(folder))).status_code == 403


async def progress_until(
    http: httpx.AsyncClient, source_id: str, state: str, within_s: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        progress = (await http.get(f"/api/navigator/sources/{source_id}")).json()["progress"]
        if progress.get("state") == state:
            return progress
        assert time.monotonic() < deadline, progress
        await asyncio.sleep(0.5)


async def test_only_the_operator_grants_and_only_under_the_roots(
    server, make_tenant, navigator_root: Path, gateway_env, sessionmaker
):
    t = await make_tenant()
    folder = folder_with(navigator_root, "ops", "x")
    for outside in ("/etc", str(navigator_root / ".."), str(navigator_root.parent)):
        done = operator(gateway_env, "grant", t.slug, outside)
        assert done.returncode != 0 and "not under a root" in done.stderr, done.stderr
    assert operator(gateway_env, "grant", t.slug, str(folder / "missing")).returncode != 0
    assert operator(gateway_env, "grant", "no-such-tenant", str(folder)).returncode != 0

    assert operator(gateway_env, "grant", str(t.id), str(folder)).returncode == 0
    assert operator(gateway_env, "grant", t.slug, str(folder)).returncode == 0  # the same grant
    listed = operator(gateway_env, "grants", t.slug)
    assert listed.returncode == 0 and folder.name in listed.stdout
    async with httpx.AsyncClient(base_url=server, headers=t.admin_headers) as http:
        assert len((await http.get("/api/navigator/folders")).json()) == 1
        # No API writes grants.
        r = await http.post("/api/navigator/folders", json={"path": str(navigator_root)})
        assert r.status_code == 405
        audit = (await http.get("/api/audit?action=navigator.folder_grant")).json()["items"]
        assert [e["data"]["path"] for e in audit] == [str(folder.resolve())]

    # Nor can the application's database role, whatever a bug let through.
    with pytest.raises(DBAPIError, match="permission denied"):
        async with tenant_session(sessionmaker, t.id) as session:
            session.add(FolderGrant(tenant_id=t.id, path=str(navigator_root), granted_by="x"))

    assert operator(gateway_env, "revoke", t.slug, str(folder)).returncode == 0
    assert operator(gateway_env, "revoke", t.slug, str(folder)).returncode != 0  # gone already
