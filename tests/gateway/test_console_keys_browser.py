"""The keys page in a real browser against `posturio serve`: sign in, create a key (the
secret shown once), use it, revoke it from its page, and see the gateway refuse it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello from the browser"}]}


def _owner() -> str:
    """A fresh tenant and owner through the operator CLI (a sync test cannot await the
    async builder fixture inside pytest-asyncio's running loop)."""
    email = f"keys-{uuid.uuid4().hex[:8]}@example.com"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "posturio.cli", "tenants", "create", "Keys Browser Co"),
            *("--owner-email", email, "--owner-password", PASSWORD),
        ],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return email


def _chat(server: str, secret: str) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/chat/completions",
        json=CHAT,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )


@pytest.mark.timeout(180)
def test_create_and_revoke_a_key_in_a_real_browser(server, chromium):
    email = _owner()
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{server}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/console")

    page.click('nav.side a[href="/console/keys"]')
    page.wait_for_url("**/console/keys")
    page.fill("#name", "browser-bot")
    page.fill("#tags", "ui, docs")
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#new-key")
    assert "copy it now" in page.inner_text("#new-key")
    secret = page.inner_text("#secret").strip()
    assert secret.startswith("pst_")
    prefix = page.get_attribute("#keys tr[data-prefix]", "data-prefix")
    assert prefix and prefix in secret
    assert _chat(server, secret).status_code == 200

    page.goto(f"{server}/console/keys")
    assert secret not in page.content()  # never again
    page.click(f'#keys tr[data-prefix="{prefix}"] a')
    page.fill("#reason", "browser test")
    page.click("#revoke button[type=submit]")
    page.click("#confirm button[type=submit]")  # revoking asks first
    page.wait_for_selector("#flash")
    assert "revoked" in page.inner_text("#flash")

    refused = _chat(server, secret)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "key_revoked"

    page.goto(f"{server}/console/keys")
    assert "revoked" in page.inner_text(f'#keys tr[data-prefix="{prefix}"]')
    page.fill("#name", "ci-runner")  # a second, active key for the screenshot
    page.fill("#expires_in_days", "90")
    page.click("#create-key button[type=submit]")
    page.wait_for_selector("#new-key")
    page.goto(f"{server}/console/keys")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-keys.png"), full_page=True)
    assert errors == []  # no script errors, nothing refused by the content security policy
    context.close()
