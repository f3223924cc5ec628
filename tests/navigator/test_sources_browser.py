"""In a real browser: a member proposes a folder of documents, an admin approves it in the
console, and the page shows it indexed (with the one unreadable file and its reason)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "posturio.cli", *args],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def approve_folder(page: Any, server: str, owner: str, folder: Path, *, indexed: int) -> None:
    """Sign in as the owner, propose `folder` as "Handbook", approve it, wait until the
    page shows `indexed` documents indexed."""
    page.goto(f"{server}/login")
    page.fill("#email", owner)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/console")
    page.goto(f"{server}/console/sources")
    assert str(folder.resolve()) in page.inner_text("#folders")  # the operator granted it
    page.fill("#propose input[name=name]", "Handbook")
    page.fill("#propose input[name=path]", str(folder))
    page.click("#propose button[type=submit]")
    page.wait_for_selector("#flash")
    assert "proposed" in page.inner_text("#flash")
    row = page.locator("tr[data-name=Handbook]")
    row.locator("input[name=reason]").first.fill("HR owns it")
    row.locator("button.approve").click()
    page.wait_for_selector("#flash")
    deadline = time.monotonic() + 120
    progress = page.locator("tr[data-name=Handbook] .progress")
    while f"idle: {indexed} indexed" not in progress.inner_text():
        assert time.monotonic() < deadline, page.inner_text("#sources")
        time.sleep(1)
        page.reload()


@pytest.mark.timeout(240)
def test_admin_approves_a_folder_in_the_console(server, worker, chromium, navigator_root, grant):
    slug = f"nav-{uuid.uuid4().hex[:6]}"
    owner = f"owner-{slug}@acme-corp.com"
    cli("tenants", "create", slug, "--owner-email", owner, "--owner-password", PASSWORD)
    folder = navigator_root / slug
    folder.mkdir()
    (folder / "onboarding.md").write_text(
        "# Onboarding\n\n## Laptops\n\nIT ships laptops on day one.\n"
    )
    (folder / "travel.html").write_text(
        "<html><head><title>Travel</title></head><body><nav>Home | Menu</nav>"
        "<main><h1>Travel policy</h1><p>Book trains for trips under four hours.</p></main>"
        "</body></html>"
    )
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4 garbage")
    grant(slug, folder)

    page = chromium.new_page()
    approve_folder(page, server, owner, folder, indexed=2)
    progress = page.locator("tr[data-name=Handbook] .progress").inner_text()
    assert "1 failed" in progress and "scan.pdf" in progress
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-sources.png"), full_page=True)
    page.close()
