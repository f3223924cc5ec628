"""From the landing page to a first governed request, in a real browser: signup with the
proof-of-work solved in the page's Web Worker, the playground streaming a reply with the
gateway's metadata, then a prompt with a cloud key blocked before any model sees it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.mark.timeout(180)
def test_landing_signup_playground_in_a_real_browser(server, chromium):
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{server}/")
    assert "An AI gateway your security team can read" in page.inner_text("h1")
    assert "/v1/chat/completions" in page.inner_text("#curl")
    page.fill("#email", f"browser-{uuid.uuid4().hex[:8]}@acme-corp.com")
    page.fill("#organisation", "Browser Evaluation")
    page.click("#signup button[type=submit]")
    page.wait_for_selector("#welcome:not([hidden])", timeout=60_000)
    key = page.inner_text("#api-key").strip()
    assert key.startswith("pst_")
    assert key in page.inner_text("#python")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "signup.png"), full_page=True)

    page.click("text=Open the playground")
    page.wait_for_url("**/playground")
    page.select_option("#model", "echo")
    page.fill("#prompt", "Please write to ana.silva@globex-corp.com about the launch")
    page.click("#chat-form button[type=submit]")
    page.wait_for_selector(".meta", timeout=30_000)
    reply = page.inner_text(".msg.assistant")
    assert reply == "Please write to [EMAIL_1] about the launch"
    meta = page.inner_text(".meta")
    assert "redact" in meta and "route echo:echo/echo" in meta
    assert "email (pii.email) in messages[0].content" in meta

    page.fill("#prompt", "why is AKIAZ7QW3ERT5YUI6OPL rejected?")
    page.click("#chat-form button[type=submit]")
    page.wait_for_selector(".msg.error", timeout=30_000)
    assert "policy_blocked" in page.inner_text(".msg.error")
    assert page.locator(".meta").count() == 2
    assert "block" in page.locator(".meta").nth(1).inner_text()
    assert "AKIAZ7QW3ERT5YUI6OPL" not in page.locator(".meta").nth(1).inner_text()
    page.screenshot(path=str(SHOTS / "playground.png"), full_page=True)
    # No script errors and nothing refused by the content security policy (the blocked
    # request's 400 is the only failed load, and it is the point).
    assert [e for e in errors if "status of 400" not in e] == []
    context.close()
