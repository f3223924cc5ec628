"""Navigator's console pages in a real browser: the sources page names the allowed
folders (in the form and when a path is refused) and, while a sync runs, refreshes its
counters by itself; the Navigator page links each result to its passage, shows fusion
scores to admins only, and answers a nonsense query with "no good match"."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.test_console_charts_browser import script_errors
from tests.navigator.test_answers import handbook
from tests.navigator.test_sources_browser import PASSWORD, approve_folder, cli


@pytest.fixture
def grant(gateway_env: dict[str, str]) -> Any:
    """The operator grants a folder to a tenant (with the test server's roots)."""

    def run(tenant: str, folder: Path) -> Path:
        done = subprocess.run(
            [sys.executable, "-m", "posturio.cli", "navigator", "grant", tenant, str(folder)],
            env=gateway_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return folder

    return run


def owner_of_new_tenant(prefix: str) -> tuple[str, str]:
    slug = f"{prefix}-{uuid.uuid4().hex[:6]}"
    owner = f"owner-{slug}@acme-corp.com"
    cli("tenants", "create", slug, "--owner-email", owner, "--owner-password", PASSWORD)
    return slug, owner


def sign_in(page: Any, server: str, email: str) -> None:
    page.goto(f"{server}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/console")


DOCUMENTS = 400


@pytest.mark.timeout(300)
def test_sources_page_refreshes_while_a_sync_runs(server, worker, chromium, navigator_root, grant):
    slug, owner = owner_of_new_tenant("sync")
    folder = navigator_root / slug
    folder.mkdir()
    for i in range(DOCUMENTS):
        (folder / f"note-{i:03}.md").write_text(
            f"# Note {i}\n\nTeam note number {i} about release {i % 7} and its checklist.\n"
        )
    grant(slug, folder)
    page = chromium.new_page()
    errors = script_errors(page)
    sign_in(page, server, owner)
    page.goto(f"{server}/console/sources")
    assert str(folder.resolve()) in page.inner_text("#propose")  # named in the form
    page.fill("#propose input[name=name]", "Elsewhere")
    page.fill("#propose input[name=path]", "/etc")
    page.click("#propose button[type=submit]")
    page.wait_for_selector("#flash")
    refused = page.inner_text("#flash")
    assert "Not proposed" in refused and f"Allowed folders: {folder.resolve()}" in refused

    page.fill("#propose input[name=name]", "Notes")
    page.fill("#propose input[name=path]", str(folder))
    page.click("#propose button[type=submit]")
    page.wait_for_selector("#flash")
    row = page.locator("tr[data-name=Notes]")
    row.locator("input[name=reason]").first.fill("team notes")
    row.locator("button.approve").click()
    page.wait_for_selector("#flash")
    page.evaluate("window.notReloaded = true")
    progress = page.locator("tr[data-name=Notes] .progress")
    seen: list[str] = []
    deadline = time.monotonic() + 240
    while f"idle: {DOCUMENTS} indexed" not in progress.inner_text():
        assert time.monotonic() < deadline, seen
        text = progress.inner_text()
        if not seen or seen[-1] != text:
            seen.append(text)
        time.sleep(0.3)
    assert page.evaluate("window.notReloaded") is True  # the page refreshed itself
    running = [t for t in seen if t.startswith("running:")]
    assert running, seen
    assert any(f"of {DOCUMENTS} documents" in t for t in running), running
    assert len(set(seen)) >= 3, seen  # counters moved while it ran, then the end
    assert errors == []
    page.close()


@pytest.mark.timeout(240)
def test_navigator_results_link_and_nonsense_says_no_good_match(
    server, worker, chromium, navigator_root, grant
):
    slug, owner = owner_of_new_tenant("find")
    member = f"member-{slug}@acme-corp.com"
    cli("members", "add", slug, member, "--role", "member", "--password", PASSWORD)
    folder = grant(slug, handbook(navigator_root, slug))
    page = chromium.new_page()
    page.set_default_navigation_timeout(120_000)  # the first search loads the model
    errors = script_errors(page)
    approve_folder(page, server, owner, folder, indexed=2)
    page.goto(f"{server}/console/navigator/?q=annual+leave+portal")
    first = page.locator("#results li.hit").first
    assert "leave.md" in first.inner_text()
    assert first.locator(".scores").count() == 1  # an admin tunes search: scores shown

    page.goto(f"{server}/console/navigator/?q=zxqv+blorf+wibble+frobnicate")
    assert page.locator("#results li.hit").count() == 0
    assert "No good match" in page.inner_text("#no-good-match")
    page.close()

    page = chromium.new_page()
    errors += script_errors(page)
    sign_in(page, server, member)
    page.goto(f"{server}/console/navigator/?q=how+many+days+of+annual+leave")
    first = page.locator("#results li.hit").first
    assert "leave.md" in first.inner_text()
    assert page.locator("#results .scores").count() == 0  # no raw scores for employees
    assert "score" not in page.inner_text("#results")
    first.locator("a.passage-link").click()
    page.wait_for_url("**/console/navigator/chunks/*")
    assert "thirty days" in page.inner_text("section.passage.cited")
    assert errors == []
    page.close()
