"""In a real browser: an admin approves a folder, then searches it on the console's
Navigator page (matched words highlighted), asks a question in other words and gets a
streamed answer citing the document, and marks a citation helpful — which shows in the
admins' feedback table."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.navigator.test_answers import handbook
from tests.navigator.test_sources_browser import PASSWORD, SHOTS, approve_folder, cli


@pytest.mark.timeout(240)
def test_member_searches_asks_and_rates_an_answer(server, worker, chromium, navigator_root, grant):
    slug = f"ask-{uuid.uuid4().hex[:6]}"
    owner = f"owner-{slug}@acme-corp.com"
    cli("tenants", "create", slug, "--owner-email", owner, "--owner-password", PASSWORD)
    folder = grant(slug, handbook(navigator_root, slug))

    page = chromium.new_page()
    approve_folder(page, server, owner, folder, indexed=2)

    page.click("nav >> text=Navigator")
    page.fill("#q", "annual leave portal")
    page.click("#search button[type=submit]")
    first = page.locator("#results li.hit").first
    assert "leave.md" in first.inner_text()
    assert first.locator("mark").first.inner_text().lower() in {"annual", "leave", "portal"}

    page.fill("#q", "how much vacation time do I get?")
    page.click("#ask")
    page.wait_for_selector("#answer-citations li")
    assert "thirty days" in page.inner_text("#answer-text")
    citation = page.locator("#answer-citations li").first
    assert "leave.md" in citation.inner_text()
    assert "decision: allow" in page.inner_text("#answer-meta")
    citation.locator("button.vote", has_text="Helpful").first.click()
    expect(page.locator("#vote-status")).to_have_text("Thanks, noted.")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-navigator.png"), full_page=True)

    # The citation leads to the passage in its document.
    citation.locator("a").click()
    page.wait_for_url("**/console/navigator/chunks/*")
    assert "thirty days" in page.inner_text("section.passage.cited")

    page.goto(f"{server}/console/navigator/")
    row = page.locator("#feedback tr").nth(1)
    assert "how much vacation time do I get?" in row.inner_text()
    assert "leave.md" in row.inner_text() or "Leave" in row.inner_text()
    assert "yes" in row.inner_text()
    # The admin chooses which chat model writes answers (extractive by default).
    assert page.inner_text("#answers-now") == "now: extractive"
    page.select_option("#answer_model", "echo")
    page.click("#answer-model button[type=submit]")
    page.wait_for_selector("#flash")
    assert page.inner_text("#answers-now") == "now: generative (echo)"

    # A passage that does not exist, or is not the reader's, is a 404.
    missing = page.goto(f"{server}/console/navigator/chunks/999999999")
    assert missing is not None and missing.status == 404
    page.close()
