"""The customer's whole journey in Debian's Chromium, driven by Playwright.

Sign in, grant consent, read the plan, start, watch the state advance while the engine's
worker runs and the simulator's clock is moved past the grace period, read the
"Incomplete setup" explanation, roll back. Screenshots go to test-artifacts/portal/.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tenanttls.migration.worker import Worker
from tests.portal.conftest import ADMIN_A, TENANT_A

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium; run .ci/run or apt-get install chromium"),
]


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        # The simulator's pages are served with its own test CA, which Chromium does not know.
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()


@pytest.fixture
def worker(portal):
    """The engine's worker in a thread, as ``tenanttls worker`` runs it."""
    running = Worker(portal.harness.context, concurrency=1, poll_interval=0.2, owner="browser-test-worker")
    thread = threading.Thread(target=running.run, daemon=True, name="worker")
    thread.start()
    yield running
    running.stop()
    thread.join(30)


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_for(page, url: str, selector: str, timeout: float = 60.0) -> None:
    """Reload `url` until `selector` is on the page, as a user pressing Refresh would."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if page.locator(selector).count():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} did not appear on {url} within {timeout} s; the page says: {page.locator('#status').inner_text()}")
        time.sleep(0.5)


def _advance_clock(portal, seconds: float) -> None:
    """Move the simulator's clock, which the engine and the portal share, through its inspection API."""
    answer = httpx.post(f"{portal.simulator.base_url}/_simulator/clock/advance", json={"seconds": seconds}, verify=str(portal.simulator.ca_path))
    assert answer.status_code == 200, answer.text


def test_customer_journey(portal, worker, browser_page):
    page = browser_page
    connector_url = f"{portal.base_url}/tenants/{TENANT_A}/connector"

    # Sign in: the portal sends the browser to the simulated identity platform and back.
    page.goto(portal.base_url)
    page.click("text=Sign in with Microsoft")
    page.wait_for_selector("text=Pick an account")
    _shot(page, "01-identity-platform-sign-in")
    page.click(f'button[data-upn="{ADMIN_A}"]')
    page.wait_for_url(connector_url)
    assert page.locator("h1").inner_text() == "Connector"
    assert "Waiting for an administrator to grant the permissions." in page.locator("#status").inner_text()
    _shot(page, "02-connector-before-consent")

    # Grant the permissions: the admin-consent round trip.
    page.click("#grant-permissions")
    page.wait_for_url(connector_url)
    assert "Permissions granted" in page.locator(".flash.ok").inner_text()
    _shot(page, "03-permissions-granted")

    # NOTE: the simulator derives a new connector's Guid from tenant, name and creation time, so a
    # connector created under the seeded connector's name at the same clock time gets its Guid,
    # and removing one removes the other. A minute on the clock keeps the two apart.
    _advance_clock(portal, 60)

    # See the plan, confirm, start.
    page.click("#start")
    page.wait_for_selector("ol.plan")
    assert "CrosswareInboundConnector-BACKUP" in page.locator("ol.plan").inner_text()
    assert page.locator("#explain-downtime").is_visible()
    _shot(page, "04-plan")
    page.check("#confirm-start")
    page.click("#confirm-start-button")
    page.wait_for_url(connector_url)
    assert "The upgrade has started" in page.locator(".flash.ok").inner_text()

    # The worker runs every step up to the grace period.
    _wait_for(page, connector_url, '[data-step="grace"][data-status="current"]')
    assert "left" in page.locator('[data-step="grace"] .note').inner_text()
    assert page.locator('[data-step="connector"] time').count() == 1
    unique_name = portal.harness.context.identities.get(TENANT_A).name
    assert unique_name in page.locator("#unique-name").inner_text()
    explanation = page.locator("#unique-name #explain-incomplete_setup")
    assert explanation.is_visible()
    assert "Do not remove the domain" in explanation.inner_text()
    assert "CrosswareInboundConnector-BACKUP" in page.locator("#connectors").inner_text()
    _shot(page, "05-grace-period-incomplete-setup")

    # Move the simulator's clock past the 24-hour grace period; the worker finishes the upgrade.
    _advance_clock(portal, 24 * 3600 + 60)
    _wait_for(page, connector_url, '.summary[data-state="completed"]')
    assert page.locator('[data-step="verified"]').get_attribute("data-status") == "done"
    _shot(page, "06-completed")

    # Roll back, with confirmation.
    page.click("#rollback")
    page.wait_for_selector("#confirm-rollback")
    _shot(page, "07-rollback-confirmation")
    page.check("#confirm-rollback")
    page.click("#confirm-rollback-button")
    page.wait_for_url(connector_url)
    _wait_for(page, connector_url, '.summary[data-state="rolled_back"]')
    assert "CrosswareInboundConnector" in page.locator("#connectors").inner_text()
    _shot(page, "08-rolled-back")

    connectors = portal.harness.connectors(TENANT_A)
    assert list(connectors) == ["CrosswareInboundConnector"]
    assert connectors["CrosswareInboundConnector"].tls_sender_certificate_name == "*.crossware.co.nz"


@pytest.fixture
def wide_page():
    """A Chromium page 1280 pixels wide, the width of a common laptop screen."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()


def test_operator_audit_trail_fits_window(portal, wide_page):
    from tenanttls.migration.service import request_upgrades
    from tests.portal.conftest import OPERATOR, PROVIDER_TENANT, TENANT_B

    request_upgrades(portal.harness.store, [TENANT_B], now=portal.clock.now(), actor="test")
    portal.harness.run_until(TENANT_B, "grace")
    httpx.post(
        f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": OPERATOR, "tenant": PROVIDER_TENANT},
        verify=str(portal.simulator.ca_path),
    )
    page = wide_page
    page.goto(f"{portal.base_url}/operator/tenants/{TENANT_B}")
    page.wait_for_selector("table.audit")
    _shot(page, "09-operator-audit-trail")
    page.screenshot(path=str(ARTIFACTS / "09-operator-tenant-top.png"))

    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    change = page.locator("table.audit .change").first
    assert change.bounding_box()["width"] >= 400
    # Each JSON value keeps its lines whole: the longest line of the first change fits or scrolls, never wraps.
    assert page.evaluate("getComputedStyle(document.querySelector('table.audit .change pre')).whiteSpace") == "pre"
