"""The console's charts and forms in a real browser: the overview draws time-series charts
(a time axis with dates, a legend, the values under the pointer) and does not count
policy blocks as errors; it fits a phone. The keys page shows each key's usage and spend;
a rule added with the policy form is a new version the gateway enforces; a deployment
added with the route form serves the next request."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.gateway.test_console_browser import AWS_KEY, SHOTS, chat, make_org, sign_in
from tests.gateway.test_console_daily_browser import PHONE, overflow


@pytest.fixture(scope="module")
def org(server: str) -> dict[str, str]:
    return make_org()


def script_errors(page: Any) -> list[str]:
    """Collects uncaught script errors and console errors (a CSP refusal is one); a form
    refused with 400 is a page the test asks for, not an error."""
    errors: list[str] = []

    def console(msg: Any) -> None:
        if msg.type == "error" and "status of 400" not in msg.text:
            errors.append(msg.text)

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", console)
    return errors


def wait_for_text(page: Any, url: str, selector: str, pattern: str, within_s: float = 30) -> None:
    """The worker drains usage about every second: reload until the text shows."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        page.goto(url)
        if re.search(pattern, page.inner_text(selector)):
            return
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} never appeared in {selector} on {url}")


def legend(page: Any, chart: str) -> dict[str, str]:
    """The chart's legend as label -> value shown."""
    rows = page.locator(f"#chart-{chart} .u-legend .u-series").all()
    return {
        r.locator(".u-label").inner_text().strip(): r.locator(".u-value").inner_text().strip()
        for r in rows
    }


def hover_last_bucket(page: Any, chart: str) -> None:
    """The pointer over the newest bucket (the right edge of the plotting area)."""
    over = page.locator(f"#chart-{chart} .u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)


@pytest.mark.timeout(240)
def test_overview_charts_over_time(server, worker, chromium, org):
    for content in ("hello there", "write to ana.silva@globex-corp.com", "hi again"):
        assert chat(server, org["key"], content).status_code == 200
    assert chat(server, org["key"], f"deploy with {AWS_KEY}").status_code == 400
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors = script_errors(page)
    sign_in(page, server, org["owner"])
    wait_for_text(page, f"{server}/console/?days=1", "#totals", r"Requests\s*4\b")
    assert page.inner_text("#errors") == "0"  # a policy block is not an error
    assert "by the hour" in page.inner_text("nav.ranges")
    assert page.get_attribute("nav.ranges a[aria-current=page]", "href") == "?days=1"

    for chart in ("decisions", "latency", "overhead", "cost-by-key", "cost-by-model", "findings"):
        assert page.locator(f"#chart-{chart} canvas").count() == 1, chart
    shown = legend(page, "decisions")
    assert {"allow", "redact", "block", "flag", "reroute", "refused"} <= set(shown)
    colours = page.eval_on_selector_all(
        "#chart-decisions .u-legend .u-series .u-marker",
        "ms => ms.map(m => getComputedStyle(m).backgroundColor)",
    )
    assert len(set(colours[1:])) == len(colours) - 1  # one colour per decision

    hover_last_bucket(page, "decisions")
    shown = legend(page, "decisions")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:00", shown["Time"]), shown
    assert (shown["allow"], shown["redact"], shown["block"]) == ("2", "1", "1"), shown
    hover_last_bucket(page, "latency")
    assert re.fullmatch(r"[\d.]+ ms", legend(page, "latency")["p95"])
    hover_last_bucket(page, "findings")
    found = legend(page, "findings")
    assert found["email"] == "1" and found["cloud_credential"] == "1", found

    # Thirty days: by the day, dates on the axis and in the legend.
    page.click("nav.ranges a[href='?days=30']")
    page.wait_for_url("**/console/?days=30")
    assert "by the day" in page.inner_text("nav.ranges")
    hover_last_bucket(page, "decisions")
    shown = legend(page, "decisions")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown["Time"]), shown
    assert shown["block"] == "1"
    page.goto(f"{server}/console/?days=1")
    hover_last_bucket(page, "decisions")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "console-overview.png"), full_page=True)
    page.locator("#chart-decisions").screenshot(path=str(SHOTS / "console-chart.png"))
    assert errors == []
    page.close()


@pytest.mark.timeout(120)
def test_overview_fits_a_phone(server, chromium, org):
    context = chromium.new_context(viewport=PHONE, is_mobile=True)
    page = context.new_page()
    errors = script_errors(page)
    sign_in(page, server, org["owner"])
    for days in (1, 30):
        page.goto(f"{server}/console/?days={days}")
        page.wait_for_selector("#chart-decisions canvas")
        assert overflow(page) == 0, days
        width = page.eval_on_selector("#chart-decisions canvas", "c => c.clientWidth")
        assert 200 <= width <= PHONE["width"]
    assert errors == []
    context.close()


@pytest.mark.timeout(180)
def test_keys_show_usage_and_spend(server, worker, chromium, org):
    from tests.gateway.test_console_browser import cli

    key = cli("keys", "create", org["slug"], "--name", "spend-bot").strip().splitlines()[-1]
    for content in ("one", "two", "three"):
        assert chat(server, key, content).status_code == 200
    page = chromium.new_page()
    errors = script_errors(page)
    sign_in(page, server, org["owner"])
    row = "#keys tr:has-text('spend-bot')"
    wait_for_text(page, f"{server}/console/keys?q=spend-bot", f"{row} td.requests", r"^3$")
    assert int(page.inner_text(f"{row} td.tokens").replace(",", "")) > 0
    assert page.inner_text(f"{row} td.cost").startswith("$")
    assert "Cost, 30 d" in page.inner_text("#keys tr:first-child")
    page.click(f"{row} a")
    assert page.inner_text("#spend .requests") == "3"
    assert errors == []
    page.close()


@pytest.mark.timeout(180)
def test_rule_form_adds_an_enforced_rule(server, chromium):
    org = make_org()
    prompt = "please write to ana.silva@globex-corp.com"
    before = chat(server, org["key"], prompt)
    assert before.status_code == 200 and before.headers["x-posturio-decision"] == "redact"
    page = chromium.new_page()
    errors = script_errors(page)
    sign_in(page, server, org["owner"])
    page.goto(f"{server}/console/policies")
    page.click("#add-rule")
    # Refused by the same validation as the JSON editor: a reroute needs a target.
    page.fill("#rule-id", "block-email")
    page.select_option("#rule-action", "reroute")
    page.check("#rule-categories input[value=email]")
    page.click("#rule-form button[type=submit]")
    assert "reroute_to" in page.inner_text("#rule-error")
    assert page.input_value("#rule-id") == "block-email"  # the form is kept
    assert page.is_checked("#rule-categories input[value=email]")
    page.select_option("#rule-action", "block")
    page.check("#rule-dialects input[value=chat]")
    page.fill("#rule-description", "No e-mail addresses leave, even redacted.")
    page.screenshot(path=str(SHOTS / "console-policy-form.png"), full_page=True)
    page.click("#rule-form button[type=submit]")
    page.wait_for_url("**/console/policies")
    assert "version 1 is in force" in page.inner_text("#flash")
    assert page.inner_text("#policy-version") == "1"
    assert "block-email" in page.inner_text("section.content")

    after = chat(server, org["key"], prompt)
    assert after.status_code == 400, after.text
    assert after.json()["error"]["code"] == "policy_blocked"
    assert after.headers["x-posturio-policy"].endswith(";v=1")
    page.goto(f"{server}/console/policies/edit")
    document = page.input_value("#document")
    assert document.index('"block-email"') < document.index('"block-secrets"')  # first
    assert '"dialects": [\n          "chat"' in document
    assert errors == []
    page.close()


@pytest.mark.timeout(180)
def test_deployment_form_adds_a_serving_deployment(server, chromium):
    org = make_org()
    page = chromium.new_page()
    errors = script_errors(page)
    sign_in(page, server, org["owner"])
    page.goto(f"{server}/console/routes")
    page.fill("#dep-alias", "team-chat")
    page.fill("#dep-name", "primary")
    page.select_option("#dep-provider", "echo")
    page.fill("#dep-model", "echo")
    page.fill("#dep-weight", "3")
    page.click("#deployment-form button[type=submit]")
    page.wait_for_selector("#flash")
    assert "added to team-chat" in page.inner_text("#flash")
    reply = httpx_chat(server, org["key"], "team-chat")
    assert reply.status_code == 200 and reply.headers["x-posturio-route"] == "primary:echo/echo"

    # A second one keeps the first; a refused one (a hosted provider without a
    # credential) changes nothing and keeps the form.
    page.fill("#dep-alias", "team-chat")
    page.fill("#dep-name", "backup")
    page.select_option("#dep-provider", "openai")
    page.fill("#dep-model", "gpt-4o-mini")
    page.click("#deployment-form button[type=submit]")
    assert page.locator("#deployment-error").count() == 1
    assert page.input_value("#dep-name") == "backup"
    page.fill("#dep-alias", "team-chat")
    page.select_option("#dep-provider", "echo")
    page.fill("#dep-model", "echo")
    page.fill("#dep-priority", "1")
    page.click("#deployment-form button[type=submit]")
    page.wait_for_selector("#flash")
    route = page.locator("section.route[data-alias='team-chat'] table.deployments")
    assert route.locator("tr").count() == 3  # header, primary, backup
    text = route.inner_text()
    assert "primary" in text and "backup" in text
    assert errors == []
    page.close()


def httpx_chat(server: str, key: str, model: str) -> Any:
    import httpx

    return httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
