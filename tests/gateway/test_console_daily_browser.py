"""The console's everyday use in a real browser: a refusal is a page inside the layout
(menu and all, the API's status and message) while the console's own scripts still get
JSON; the request log pages both ways, shows each key by name, each request's findings
and a 429 as refused, filters findings by category or detector in any case, and exports
what the filter finds; people are named by e-mail wherever a record keeps an actor;
destructive actions ask first, without script too; the audit log finds sign-ins by an
action prefix and exports them; the landing page and playground fit a phone."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.test_console_browser import (
    AWS_KEY,
    SHOTS,
    chat,
    cli,
    make_org,
    sign_in,
    wait_for,
)


@pytest.fixture(scope="module")
def org(server: str) -> dict[str, str]:
    return make_org()


def content(page: Any) -> str:
    return page.inner_text("section.content")


@pytest.mark.timeout(120)
def test_console_errors_are_pages_inside_the_layout(server, chromium, org):
    page = chromium.new_page()
    sign_in(page, server, org["owner"])
    for url, status, words in (
        ("/console/requests?since=yesterday", 400, "since"),
        (f"/console/requests?view={uuid.uuid4()}", 404, "saved view not found"),
        ("/console/requests?limit=0", 400, "limit"),
        ("/console/requests/no-such-request", 404, "request not found"),
    ):
        response = page.goto(f"{server}{url}")
        assert response is not None and response.status == status, url
        assert response.headers["content-type"].startswith("text/html")
        assert page.locator("nav.side a[href='/console/requests']").count() == 1  # the menu
        assert words in page.inner_text("#error"), url
        assert page.get_attribute("#console-error", "data-status") == str(status)
    page.screenshot(path=str(SHOTS / "console-error.png"), full_page=True)
    # The console's scripts post JSON and keep reading the API's envelope.
    api = page.request.get(
        f"{server}/console/requests?since=yesterday", headers={"accept": "application/json"}
    )
    assert api.status == 400 and api.json()["error"]["code"] == "invalid_filter"
    page.close()

    reviewer = chromium.new_page()
    sign_in(reviewer, server, org["reviewer"])
    response = reviewer.goto(f"{server}/console/members")
    assert response is not None and response.status == 403
    assert "admin role" in reviewer.inner_text("#forbidden")
    assert reviewer.locator("nav.side a[href='/console/review']").count() == 1
    reviewer.close()


def table_ids(page: Any) -> list[str]:
    return [
        r.get_attribute("data-request") for r in page.locator("#requests tr[data-request]").all()
    ]


def set_rpm_limit(page: Any, server: str, key_name: str, rpm: int) -> None:
    page.goto(f"{server}/console/keys?q={key_name}")
    page.click(f"#keys tr:has-text('{key_name}') a")
    page.fill("#rpm_limit", str(rpm))
    page.click("#limits button[type=submit]")
    page.wait_for_selector("#flash")


@pytest.mark.timeout(300)
def test_request_log_pages_filters_and_exports(server, worker, chromium, org):
    sent = {
        "email": chat(server, org["key"], "mail ana.silva@globex-corp.com please"),
        "secret": chat(server, org["key"], f"deploy with {AWS_KEY} now"),
        "plain": chat(server, org["key"], "hello there"),
    }
    assert sent["secret"].status_code == 400
    limited = cli("keys", "create", org["slug"], "--name", "batch-job").strip().splitlines()[-1]
    page = chromium.new_page()
    sign_in(page, server, org["owner"])
    set_rpm_limit(page, server, "batch-job", 1)
    assert chat(server, limited, "first of the minute").status_code == 200
    refused = chat(server, limited, "second of the minute")
    assert refused.status_code == 429, refused.text
    refused_id = refused.headers["x-posturio-request-id"]

    wait_for(page, f"{server}/console/requests", f"tr[data-request='{refused_id}']")
    row = page.locator(f"tr[data-request='{refused_id}']")
    assert row.locator(".decision").inner_text() == "refused"  # not "allow"
    assert "batch-job" in row.locator(".key").inner_text()
    ids = {k: r.headers["x-posturio-request-id"] for k, r in sent.items()}
    email_row = page.locator(f"tr[data-request='{ids['email']}']")
    assert "email" in email_row.locator(".findings").inner_text()
    assert "app" in email_row.locator(".key").inner_text()
    page.screenshot(path=str(SHOTS / "console-requests.png"), full_page=True)

    # Findings by category or detector, in any case.
    for term, present, absent in (
        ("EMAIL", "email", "secret"),
        ("Pii", "email", "secret"),
        ("secrets", "secret", "email"),
    ):
        page.goto(f"{server}/console/requests?finding={term}")
        shown = table_ids(page)
        assert ids[present] in shown and ids[absent] not in shown, term
        assert ids["plain"] not in shown

    # Two-way paging: two rows a page, back in time and forward again.
    page.goto(f"{server}/console/requests?limit=2")
    first = table_ids(page)
    page.click("a.next")
    second = table_ids(page)
    assert len(second) == 2 and not set(first) & set(second)
    page.click("a.prev")
    assert table_ids(page) == first
    assert page.locator("a.prev").count() == 0  # the newest page has nothing newer

    # Export of the filtered set: a CSV download and a JSON document.
    page.goto(f"{server}/console/requests?finding=pii")
    with page.expect_download() as download:
        page.click("#export a:text('CSV')")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert ids["email"] in {r["request_id"] for r in rows}
    assert all("email" in r["findings"] for r in rows)
    assert {r["key_name"] for r in rows} == {"app"}
    exported = page.request.get(f"{server}/console/requests/export?format=json&status=429")
    body = exported.json()
    assert exported.headers["x-posturio-export-limit"] == "50000"
    assert body["truncated"] is False
    assert [r["decision"] for r in body["rows"]] == ["refused"]
    assert body["rows"][0]["key_name"] == "batch-job"
    page.close()


@pytest.mark.timeout(240)
def test_people_are_named_never_by_id(server, worker, chromium, org):
    request_id = chat(server, org["key"], "and bob.jones@acme-mail.net too").headers[
        "x-posturio-request-id"
    ]
    page = chromium.new_page()
    sign_in(page, server, org["owner"])
    page.goto(f"{server}/console/members")  # an invitation: "invited by" the owner
    page.fill("#email", f"guest-{uuid.uuid4().hex[:6]}@acme-corp.com")
    page.click("form#invite button[type=submit]")
    page.wait_for_selector("#invite-link")
    page.goto(f"{server}/console/members")
    assert page.inner_text("#invitations .invited-by") == org["owner"]

    page.goto(f"{server}/console/policies")  # a policy version of the owner's, undone
    for _ in range(2):
        page.locator("form[action$='/shadow'] button").last.click()
        page.wait_for_selector("#flash")
    assert page.inner_text("#versions tr[data-version='1'] .by") == org["owner"]

    wait_for(page, f"{server}/console/requests", f"input[value='{request_id}']")
    page.check(f"input[value='{request_id}']")
    page.fill("#investigate input[name=title]", "Who touched this")
    page.click("#investigate button[type=submit]")
    page.wait_for_selector("#case-title")
    page.fill("#body", "looked at it")
    page.click("#note-form button[type=submit]")
    page.wait_for_selector("#flash")
    authors = {a.inner_text() for a in page.locator("#timeline .author").all()}
    assert authors == {org["owner"]}
    assert org["owner"] in page.inner_text("#case-opened")
    for url in ("/console/members", "/console/policies", page.url, "/console/audit"):
        page.goto(url if url.startswith("http") else f"{server}{url}")
        assert "user:" not in content(page), url
    assert org["owner"] in page.inner_text("#events .actor")
    page.close()


@pytest.mark.timeout(180)
def test_destructive_actions_ask_first_even_without_script(server, chromium, org):
    secret = cli("keys", "create", org["slug"], "--name", "to-revoke").strip().splitlines()[-1]
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, server, org["owner"])
    page.goto(f"{server}/console/keys?q=to-revoke")
    page.click("#keys tr:has-text('to-revoke') a")
    key_url = page.url
    page.fill("#reason", "laptop lost")
    page.click("#revoke button[type=submit]")
    page.wait_for_selector("#confirm")
    assert "Revoke key to-revoke" in page.inner_text("#confirm h1")
    assert chat(server, secret, "still mine?").status_code == 200  # asked, nothing done
    page.screenshot(path=str(SHOTS / "console-confirm.png"), full_page=True)
    page.click("#confirm a.cancel")
    assert page.url == key_url
    assert chat(server, secret, "still mine?").status_code == 200

    page.fill("#reason", "laptop lost")
    page.click("#revoke button[type=submit]")
    page.click("#confirm button[type=submit]")
    page.wait_for_selector("#flash")
    assert "revoked" in page.inner_text("#flash")
    assert chat(server, secret, "still mine?").status_code == 401
    page.goto(f"{server}/console/audit?action=key.revoke")
    assert "laptop lost" in page.inner_text("#events .details")
    context.close()


@pytest.mark.timeout(180)
def test_audit_log_finds_sign_ins_by_prefix_and_exports(server, chromium, org):
    page = chromium.new_page()
    page.goto(f"{server}/login")  # a failed sign-in first, then the real one
    page.fill("#email", org["owner"])
    page.fill("#password", "not the password")
    page.click("main button[type=submit]")
    page.wait_for_selector(".error")
    sign_in(page, server, org["owner"])
    page.goto(f"{server}/console/audit?action=auth.")
    actions = [a.inner_text() for a in page.locator("#events .action").all()]
    assert "auth.sign_in" in actions and "auth.sign_in_failed" in actions
    assert all(a.startswith("auth.") for a in actions)
    rows = page.locator("#events tr:has(td.action)").all()
    failed = next(r for r in rows if r.locator(".action").inner_text() == "auth.sign_in_failed")
    details = failed.locator(".details").inner_text()
    assert "reason" in details and "wrong_password" in details and "method" in details
    assert failed.locator(".target").inner_text() == org["owner"]  # named, not an id
    page.screenshot(path=str(SHOTS / "console-audit.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export a:text('CSV')")
    exported_rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["action"] for r in exported_rows} >= {"auth.sign_in", "auth.sign_in_failed"}
    assert all(r["action"].startswith("auth.") for r in exported_rows)
    exported = json.loads(
        page.request.get(f"{server}/console/audit/export?format=json&action=auth.").text()
    )
    assert exported["truncated"] is False and len(exported["rows"]) >= 2
    page.close()


PHONE = {"width": 390, "height": 844}


def overflow(page: Any) -> int:
    """How far the page is wider than the screen (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.timeout(180)
def test_landing_and_playground_fit_a_phone(server, chromium):
    context = chromium.new_context(
        viewport=PHONE, is_mobile=True, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server}/")
    assert overflow(page) == 0
    assert page.eval_on_selector("#signup", "f => f.getBoundingClientRect().width") > 300
    page.click("button[data-copy=curl]")
    assert "/v1/chat/completions" in page.evaluate("navigator.clipboard.readText()")
    page.fill("#email", f"phone-{uuid.uuid4().hex[:8]}@acme-corp.com")
    page.fill("#organisation", "Phone Evaluation")
    page.click("#signup button[type=submit]")
    page.wait_for_selector("#welcome:not([hidden])", timeout=60_000)
    key = page.inner_text("#api-key").strip()
    page.click("button[data-copy=api-key]")
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert overflow(page) == 0  # with the long key and snippets shown
    page.screenshot(path=str(SHOTS / "landing-phone.png"), full_page=True)

    page.click("text=Open the playground")
    page.wait_for_url("**/playground")
    assert overflow(page) == 0
    assert page.eval_on_selector("#chat-form", "f => f.getBoundingClientRect().width") > 300
    page.fill("#prompt", "Please write to ana.silva@globex-corp.com about the launch")
    page.click("#chat-form button[type=submit]")
    page.wait_for_selector(".meta", timeout=30_000)
    assert overflow(page) == 0  # the reply's metadata wraps too
    page.click("button[data-copy=snippet-curl]")
    assert "Bearer $POSTURIO_API_KEY" in page.evaluate("navigator.clipboard.readText()")
    page.screenshot(path=str(SHOTS / "playground-phone.png"), full_page=True)
    assert errors == []
    context.close()
