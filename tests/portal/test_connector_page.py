"""The connector page after consent, a manual request and a rollback: summary, timeline, actions."""

from __future__ import annotations

import re

import httpx

from tests.portal.conftest import ADMIN_A, TENANT_A, csrf_from


def _grant_consent(portal, client) -> None:
    page = client.get(f"/tenants/{TENANT_A}/connector")
    start = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    callback = client.get(start.headers["location"])
    assert client.get(callback.headers["location"]).status_code == 303


def _start_upgrade(client) -> None:
    plan = client.get(f"/tenants/{TENANT_A}/plan")
    fingerprint = re.search(r'name="plan" value="([0-9a-f]{64})"', plan.text).group(1)
    answer = client.post(f"/tenants/{TENANT_A}/start", data={"csrf_token": csrf_from(plan.text), "confirm": "yes", "plan": fingerprint})
    assert answer.status_code == 303


def _step(page: str, key: str) -> str:
    """Return the timeline entry of `key` on `page`, as HTML."""
    return re.search(rf'<li class="[a-z]+" data-step="{key}".*?</li>', page, re.S).group(0)


def test_manual_request_shown_on_timeline(portal):
    client = portal.signed_in(ADMIN_A)
    form = client.get(f"/tenants/{TENANT_A}/manual")
    client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": csrf_from(form.text), "contact_email": "it@tenanta.example"})
    page = client.get(f"/tenants/{TENANT_A}/connector").text

    manual = _step(page, "manual")
    assert "Manual upgrade requested" in manual
    assert "<time" in manual
    assert 'data-status="pending"' in _step(page, "awaiting_consent")
    assert "<time" not in _step(page, "awaiting_consent")
    assert "Support will contact you at it@tenanta.example to agree a time" in page


def test_consent_shown_done_at_once(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    page = client.get(f"/tenants/{TENANT_A}/connector").text

    assert "Waiting for an administrator" not in page
    assert re.search(r"Permissions granted \d{4}-\d\d-\d\d \d\d:\d\d UTC\. Review the plan", page)
    consent = _step(page, "awaiting_consent")
    assert 'data-status="done"' in consent
    assert "<time" in consent
    assert 'id="grant-permissions"' not in page
    assert 'id="start"' in page


def test_consent_then_start_says_starting(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    _start_upgrade(client)
    page = client.get(f"/tenants/{TENANT_A}/connector").text

    assert "The upgrade starts once Microsoft 365 applies them" in page
    assert "Nothing to do now: the upgrade runs on its own" in page
    assert 'data-status="current"' not in page


def test_rollback_shown_and_restart_offered(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    _start_upgrade(client)
    portal.harness.run_until(TENANT_A, "grace")
    form = client.get(f"/tenants/{TENANT_A}/rollback")
    client.post(f"/tenants/{TENANT_A}/rollback", data={"csrf_token": csrf_from(form.text), "confirm": "yes"})
    portal.harness.run_until(TENANT_A, "rolled_back")
    page = client.get(f"/tenants/{TENANT_A}/connector").text

    assert re.search(r"Rolled back \d{4}-\d\d-\d\d \d\d:\d\d UTC: your previous connector is active again", page)
    rolled_back = _step(page, "rolled_back")
    assert 'data-status="done"' in rolled_back
    assert "<time" in rolled_back
    for key in ("backup", "connector"):
        assert 'data-status="undone"' in _step(page, key), key
        assert "undone by the rollback" in _step(page, key), key
    assert 'data-status="done"' in _step(page, "accepted")
    assert 'data-status="pending"' in _step(page, "grace")
    assert 'id="grant-permissions"' not in page
    assert ">Start the upgrade again</a>" in page

    _start_upgrade(client)
    upgrade = portal.upgrade(TENANT_A)
    assert upgrade.requested is True
    assert upgrade.state == "awaiting_consent"
    assert portal.harness.run_until(TENANT_A, "grace").state == "grace"
