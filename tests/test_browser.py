"""A real browser: headless Chromium (Debian's package) driven by Playwright.

Skipped where /usr/bin/chromium is missing, except in CI (`REQUIRE_BROWSER=1`, set by .ci/run,
which installs chromium): there a missing browser fails the run instead of hiding the test.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.models import StaffUser
from accounts.roles import Role
from imports.management.commands.generate_demo_data import DEMO_PASSWORD, DEMO_STAFF
from tests.test_collection_pull import fast_world, vendor  # noqa: F401 (vendor: a fixture)
from tests.test_metrics import World

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "browser-test-Password-1"

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),  # like test_tasks: keeps the catalog
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER"),
        reason="needs Debian's chromium (.ci/run installs it)",
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # made before it starts and the live server runs in its own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.console_errors = []  # (text, URL of the resource it is about)
        page.failed_requests = []  # "URL: reason"
        page.error_responses = []  # (status, URL) of every response >= 400
        page.on(
            "console",
            lambda message: (
                message.type == "error" and page.console_errors.append((message.text, message.location.get("url", "")))
            ),
        )
        page.on("pageerror", lambda error: page.console_errors.append((str(error), "")))
        page.on("requestfailed", lambda request: page.failed_requests.append(f"{request.url}: {request.failure}"))
        page.on(
            "response",
            lambda response: response.status >= 400 and page.error_responses.append((response.status, response.url)),
        )
        yield page
        browser.close()


def test_log_in_open_insights_and_see_the_charts(live_server, browser_page, partner):
    world = World(partner)
    world.customer.name = "Trial & Error GmbH"
    world.customer.save()
    world.licensed(world.sub(quantity=4))
    world.licensed(world.sub(is_trial=True))  # usage above 100%
    world.compute()
    StaffUser.objects.create_user("agent@alpha.example", PASSWORD, partner=partner, role=Role.SALES_AGENT)
    page = browser_page

    page.goto(f"{live_server.url}/customers/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", "agent@alpha.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("link", name="Trial & Error GmbH").click()
    page.wait_for_selector(".chart-drawn svg.main-svg")

    assert page.url.endswith(f"/customers/{world.customer.pk}/insights/")
    assert page.locator("[data-figure]").count() == 2
    assert page.locator(".chart-drawn").count() == 2
    assert page.locator(".chart-drawn .bars path, .chart-drawn .scatterlayer path").count() > 0
    assert page.locator('[data-family="office365"] [data-metric="usage_pct"]').inner_text() == "200.0%"
    assert "Why usage passes 100%" in page.content()
    assert page.console_errors == []
    assert page.failed_requests == page.error_responses == []


# SPEC §4: the navigation beyond Customers and Analytics, and the page each link opens.
OPERATOR_PAGES = {"Import": "/imports/", "Sync": "/sync/", "Data status": "/status/", "Settings": "/settings/"}
STAFF_PAGE = {"Staff": "/staff/"}
PAGES_OF = {
    Role.GLOBAL_ADMIN: OPERATOR_PAGES | STAFF_PAGE,
    Role.USER_ADMIN: STAFF_PAGE,
    Role.ADMIN_AGENT: OPERATOR_PAGES,
    Role.SALES_AGENT: {},
}
HEADINGS = {"Import": "Import data", "Sync": "Sync status", "Data status": "Data status", "Settings": "Settings"}
HEADINGS |= {"Staff": "Staff"}


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
def test_each_role_walks_its_pages_sees_only_its_links_and_is_refused_the_others(
    live_server, browser_page, tmp_path, role
):
    call_command("generate_demo_data", "--customers", "3", "--users", "60", "--days", "28", "--metrics-days", "1")
    page, shots = browser_page, screenshot_folder(tmp_path)
    page.goto(f"{live_server.url}/customers/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", DEMO_STAFF[role])
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/customers/")
    allowed = PAGES_OF[role]
    assert page.locator("nav.nav a").all_inner_texts() == ["Customers", "Analytics", *allowed]
    assert role.label in page.locator("header .who").inner_text()
    assert "Northwind" not in page.content()  # the second demo partner stays its own

    page.locator("table a[href$='/insights/']").first.click()
    page.wait_for_selector(".chart-drawn svg.main-svg")
    page.locator("nav.tabs").get_by_role("link", name="Own subscriptions").click()
    page.wait_for_url("**/subscriptions/")
    assert page.locator("nav.tabs [aria-current=page]").inner_text() == "Own subscriptions"
    assert page.locator("table tbody tr").count() > 0

    page.get_by_role("link", name="Analytics").click()
    page.wait_for_url("**/analytics/")
    page.wait_for_function("document.querySelectorAll('.chart-drawn svg.main-svg').length >= 3")
    assert page.locator("[data-figure]").count() == 3
    assert page.locator('[data-family="office365"] [data-metric="usage_pct"]').inner_text().endswith("%")
    page.screenshot(path=shots / f"{role.value}-analytics.png", full_page=True)
    # One night of metrics (a new partner's first morning): the trend shows its one point, by day.
    trend = page.locator("[data-figure=trend-figure]")
    assert trend.locator(".scatterlayer path.point").count() > 0
    ticks = trend.locator(".xtick text").all_text_contents()
    assert ticks
    assert all(":" not in tick for tick in ticks), ticks  # days, not hours
    lines, download_url = download_export(page, tmp_path)
    assert lines[0].startswith("as_of,customer_id,customer_name,product_family,sold_licenses")
    assert len(lines) > 1

    for name, path in allowed.items():
        page.locator("nav.nav").get_by_role("link", name=name).click()
        page.wait_for_url(f"**{path}")
        assert page.locator("h1").first.inner_text() == HEADINGS[name]
    forbidden = [path for name, path in (OPERATOR_PAGES | STAFF_PAGE).items() if name not in allowed]
    for path in forbidden:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 403
        assert page.locator("h1").inner_text() == "You may not do this"
    if forbidden:
        page.screenshot(path=shots / f"{role.value}-403.png", full_page=True)

    refused = [f"{live_server.url}{path}" for path in forbidden]
    assert page.error_responses == [(403, url) for url in refused]
    assert [text for text, url in page.console_errors if url not in refused] == []
    # A navigation that turns into a download is aborted by the browser, which fetches it itself.
    assert page.failed_requests == [f"{download_url}: net::ERR_ABORTED"]


def screenshot_folder(tmp_path: Path) -> Path:
    """BROWSER_SCREENSHOTS=DIR keeps the screenshots to look at; otherwise they go with tmp_path."""
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def download_export(page, tmp_path: Path) -> tuple[list[str], str]:
    """The analytics page's ⬇ export at the family grain, downloaded: its lines and its URL."""
    page.select_option("form.export select[name=grain]", "family")
    with page.expect_download() as download:
        page.click("form.export button[type=submit]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("partner-insights_demo_family_")
    return saved.read_text(encoding="utf-8-sig").splitlines(), download.value.url


SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR", "")  # set it to keep the pages' pictures to look at


def test_the_connection_and_sync_pages_tell_a_partner_what_works_and_what_to_do(
    live_server, browser_page, partner, vendor, tmp_path
):
    world = fast_world(customers=5, users=4, seed=5, concealed={4})
    world.faults[world.tenants[1].tenant_id] = {"consent_revoked"}
    world.faults[world.tenants[2].tenant_id] = {"truncated_csv"}
    vendor(world)
    call_command("pull_vendor_data", "--partner", partner.slug, stderr=io.StringIO())
    StaffUser.objects.create_user("owner@alpha.example", PASSWORD, partner=partner, role=Role.GLOBAL_ADMIN)
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    page = browser_page
    page.goto(f"{live_server.url}/settings/connection/")
    page.fill("input[name=username]", "owner@alpha.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("button", name="Test connection").click()
    page.wait_for_load_state()
    text = page.inner_text("main")
    assert "The connection works." in text
    assert "The partner portal listed 2 customers on its first page." in text
    assert world.secret not in page.content()
    page.screenshot(path=folder / "connection.png", full_page=True)

    page.get_by_role("link", name="Sync", exact=True).click()
    page.wait_for_load_state()
    text = page.inner_text("main")
    assert "Some customers failed" in text
    assert "2 failing" in text
    assert "Consent revoked or never given" in text
    assert "Malformed answer" in text
    assert "1 customer conceals user names in reports" in text
    assert text.count("28 days of activity") == 3
    page.screenshot(path=folder / "sync.png", full_page=True)
    assert page.console_errors == []
    assert page.failed_requests == page.error_responses == []
