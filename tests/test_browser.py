"""A real browser: headless Chromium (Debian's package) driven by Playwright.

Skipped where /usr/bin/chromium is missing, except in CI (`REQUIRE_BROWSER=1`, set by .ci/run,
which installs chromium): there a missing browser fails the run instead of hiding the test.
"""

from __future__ import annotations

import os
import shutil

import pytest
from django.core.management import call_command

from accounts.models import StaffUser
from accounts.roles import Role
from customers.management.commands.generate_demo_data import DEMO_PASSWORD, DEMO_STAFF
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
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.console_errors = []
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
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


def test_a_demo_login_walks_customers_insights_analytics_and_the_export(live_server, browser_page, tmp_path):
    call_command("generate_demo_data", "--customers", "8", "--users", "160", "--days", "35", "--metrics-days", "2")
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", DEMO_STAFF[Role.SALES_AGENT])
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    assert page.locator("nav.nav a").all_inner_texts() == ["Customers", "Analytics"]  # a sales agent's pages

    page.locator("table a[href$='/insights/']").first.click()
    page.wait_for_selector(".chart-drawn svg.main-svg")
    page.get_by_role("link", name="Analytics").click()
    page.wait_for_url("**/analytics/")
    page.wait_for_function("document.querySelectorAll('.chart-drawn svg.main-svg').length >= 3")
    assert page.locator("[data-figure]").count() == 3
    assert page.locator('[data-family="office365"] [data-metric="usage_pct"]').inner_text().endswith("%")

    page.select_option("form.export select[name=grain]", "family")
    with page.expect_download() as download:
        page.click("form.export button[type=submit]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    lines = saved.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("as_of,customer_id,customer_name,product_family,sold_licenses")
    assert len(lines) > 5
    assert saved.name.startswith("partner-insights_demo_family_")
    assert page.console_errors == []
