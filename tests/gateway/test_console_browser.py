"""The console in a real browser against a running gateway and worker: a blocked request
reaches the review queue, is marked a false positive with its value allowlisted, and the
same prompt is then allowed; an investigation is built from two requests, noted, and its
saved view reopened after signing out and in; a reviewer is refused the policy editor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
AWS_KEY = "AKIAZ7QW3ERT5YUI6OPL"


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


@pytest.fixture(scope="module")
def org(server: str) -> dict[str, str]:
    slug = f"console-{uuid.uuid4().hex[:6]}"
    owner = f"owner-{slug}@acme-corp.com"
    reviewer = f"reviewer-{slug}@acme-corp.com"
    cli("tenants", "create", slug, "--owner-email", owner, "--owner-password", PASSWORD)
    cli("members", "add", slug, reviewer, "--role", "reviewer", "--password", PASSWORD)
    key = cli("keys", "create", slug, "--name", "app").strip().splitlines()[-1]
    return {"slug": slug, "owner": owner, "reviewer": reviewer, "key": key}


def chat(server: str, key: str, content: str) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": content}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def sign_in(page: Any, server: str, email: str) -> None:
    page.goto(f"{server}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/console")


def wait_for(page: Any, url: str, selector: str, within_s: float = 30) -> None:
    """The worker drains records about every second: reload until the row shows."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        page.goto(url)
        if page.locator(selector).count():
            return
        time.sleep(0.5)
    raise AssertionError(f"{selector} never appeared on {url}")


@pytest.mark.timeout(240)
def test_false_positive_allowlists_the_value(server, worker, chromium, org):
    prompt = f"our staging key {AWS_KEY} is a test fixture"
    blocked = chat(server, org["key"], prompt)
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "policy_blocked"
    page = chromium.new_page()
    sign_in(page, server, org["owner"])
    wait_for(page, f"{server}/console/review", "#queue tr.item")
    assert "cloud_credential" in page.inner_text("#queue")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-review.png"), full_page=True)
    page.press("body", "f")  # keyboard: false positive on the selected item (allowlist ticked)
    page.wait_for_selector("#flash")
    assert "Allowlisted in policy version 1" in page.inner_text("#flash")
    assert page.locator("#queue tr.item").count() == 0
    allowed = chat(server, org["key"], prompt)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-posturio-policy"].endswith(";v=1")
    page.goto(f"{server}/console/policies")
    assert "allowlist after false positive" in page.inner_text("#versions")
    page.screenshot(path=str(SHOTS / "console-policies.png"), full_page=True)
    page.close()


@pytest.mark.timeout(240)
def test_investigation_with_saved_view_survives_sign_out(server, worker, chromium, org):
    first = chat(server, org["key"], "mail ana.silva@globex-corp.com please").headers[
        "x-posturio-request-id"
    ]
    second = chat(server, org["key"], "and bob.jones@acme-mail.net too").headers[
        "x-posturio-request-id"
    ]
    page = chromium.new_page()
    sign_in(page, server, org["owner"])
    wait_for(page, f"{server}/console/requests?decision=redact", f"text={second[:12]}")
    page.check(f"input[value='{first}']")
    page.check(f"input[value='{second}']")
    page.fill("#investigate input[name=title]", "Personal data in prompts")
    page.click("#investigate button[type=submit]")
    page.wait_for_selector("#case-title")
    assert page.inner_text("#case-title") == "Personal data in prompts"
    assert page.locator("#linked tr").count() == 3  # header + two requests
    page.fill("#body", "Both from the support bot; <b>ask</b> the owner.")
    page.click("#note-form button[type=submit]")
    page.wait_for_selector("#flash")
    assert "<b>ask</b>" in page.inner_text("#timeline")  # shown as text, never as markup
    page.fill("#save-view input[name=name]", "Redactions today")
    page.fill("#save-view input[name=decision]", "redact")
    page.click("#save-view button[type=submit]")
    page.wait_for_selector("#views a")
    case_url = page.url
    page.screenshot(path=str(SHOTS / "console-investigation.png"), full_page=True)
    page.click("text=Sign out")
    page.wait_for_url("**/login")

    sign_in(page, server, org["owner"])
    page.goto(case_url)
    page.click("#views a")
    page.wait_for_selector("#saved-view")
    assert "Redactions today" in page.inner_text("#saved-view")
    table = page.inner_text("#requests")
    assert first[:12] in table and second[:12] in table
    page.screenshot(path=str(SHOTS / "console-requests.png"), full_page=True)
    page.click(f"text={first[:12]}")
    assert "pii.email" in page.inner_text("table.findings")
    assert "ana.silva@globex-corp.com" not in page.content()
    page.close()


@pytest.mark.timeout(120)
def test_reviewer_is_refused_the_policy_editor(server, chromium, org):
    page = chromium.new_page()
    sign_in(page, server, org["reviewer"])
    assert "Routes" not in page.inner_text("nav.side")
    page.goto(f"{server}/console/policies")
    assert page.locator("#edit-policy").count() == 0
    response = page.goto(f"{server}/console/policies/edit")
    assert response.status == 403
    assert "admin role" in page.inner_text("#forbidden")
    page.goto(f"{server}/console/")
    page.screenshot(path=str(SHOTS / "console-overview.png"), full_page=True)
    page.close()
