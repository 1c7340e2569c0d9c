"""Admin consent granted again in the portal: what it does to a stopped or waiting upgrade."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tenanttls.domain.exchange import ConnectorSettings
from tenanttls.migration.service import request_upgrades
from tenanttls.store.audit import list_events
from tests.portal.conftest import ADMIN_A, ADMIN_B, TENANT_A, TENANT_B, csrf_from


def _grant_consent(portal, client, tenant_id: str) -> str:
    """Press "Grant permissions", follow the round trip through the simulator and return the page it ends on."""
    page = client.get(f"/tenants/{tenant_id}/connector")
    start = client.post(f"/tenants/{tenant_id}/consent", data={"csrf_token": csrf_from(page.text)})
    assert start.status_code == 303
    callback = client.get(start.headers["location"])
    assert callback.status_code == 302
    final = client.get(callback.headers["location"])
    assert final.status_code == 303
    return client.get(final.headers["location"]).text


def _withdraw_consent(portal, tenant_id: str) -> None:
    """Withdraw the app's consent in the simulated tenant, as its admin would in Entra ID."""
    response = httpx.post(
        f"{portal.simulator.base_url}/_simulator/tenants/{tenant_id}/consent", json={"granted": False},
        verify=str(portal.simulator.ca_path),
    )
    assert response.status_code == 200, response.text


def _events(portal, tenant_id: str) -> list:
    with portal.harness.store.engine.connect() as connection:
        return list_events(connection, tenant_id)


def _delay_consent(portal, tenant_id: str, delay: timedelta) -> None:
    """Make the simulated tenant's next grant take effect for tokens only after `delay`."""
    response = httpx.patch(
        f"{portal.simulator.base_url}/_simulator/tenants/{tenant_id}", json={"delays": {"consent_seconds": delay.total_seconds()}},
        verify=str(portal.simulator.ca_path),
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def consent_stopped(portal):
    """Tenant B, stopped in needs_attention at the domain step because its consent was withdrawn.

    The engine has only an Exchange token after the consent step, so the domain step's
    first Graph token request is the one that finds the consent missing. The consent was
    recorded longer ago than `consent_propagation`, so the step stops instead of waiting.
    """
    request_upgrades(portal.harness.store, [TENANT_B], now=portal.clock.now(), actor="test")
    portal.harness.run_until(TENANT_B, "domain")
    portal.clock.advance(portal.harness.context.options.consent_propagation)
    _withdraw_consent(portal, TENANT_B)
    portal.harness.step(TENANT_B)

    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.state == "needs_attention"
    assert upgrade.resume_state == "domain"
    assert upgrade.stop_kind == "consent"
    assert upgrade.last_error.startswith("consent is missing"), upgrade.last_error
    return portal


@pytest.fixture
def safety_stopped(portal):
    """Tenant B, stopped in needs_attention by the safety gate: a -BACKUP connector with other settings exists."""
    leftover = ConnectorSettings(
        name="CrosswareInboundConnector-BACKUP", tls_sender_certificate_name="old.tenantb.example", require_tls=False,
    )
    portal.harness.context.exchange.new_inbound_connector(TENANT_B, leftover)
    request_upgrades(portal.harness.store, [TENANT_B], now=portal.clock.now(), actor="test")

    upgrade = portal.harness.run_until(TENANT_B, "needs_attention")
    assert upgrade.resume_state == "backup"
    assert upgrade.stop_kind == "safety"
    assert "safety gate" in upgrade.last_error, upgrade.last_error
    return portal


def test_consent_stop_page_says_grant_continues(consent_stopped):
    page = consent_stopped.signed_in(ADMIN_B).get(f"/tenants/{TENANT_B}/connector").text

    assert "can grant them again on this page. The upgrade then continues on its own." in page
    assert "ask the provider to resume" not in page
    assert 'id="grant-permissions"' in page


def test_regrant_after_consent_stop_resumes(consent_stopped):
    portal = consent_stopped
    client = portal.signed_in(ADMIN_B)
    page = _grant_consent(portal, client, TENANT_B)

    assert "Permissions granted. The upgrade continues from the step where it stopped" in page
    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.state == "domain"
    assert upgrade.last_error is None
    assert upgrade.stop_kind is None
    assert upgrade.requested is True
    assert upgrade.next_attempt_at <= portal.clock.now()

    resumed = [event for event in _events(portal, TENANT_B) if event.action == "upgrade.resumed"]
    assert len(resumed) == 1
    assert ADMIN_B in resumed[0].actor
    assert resumed[0].before == {"state": "needs_attention"}
    assert resumed[0].after["state"] == "domain"

    assert portal.harness.run_until(TENANT_B, "grace").state == "grace"


def test_regrant_waits_for_propagation(consent_stopped):
    portal = consent_stopped
    _delay_consent(portal, TENANT_B, timedelta(minutes=10))
    _grant_consent(portal, portal.signed_in(ADMIN_B), TENANT_B)
    granted_at = portal.upgrade(TENANT_B).consented_at

    report = portal.harness.step(TENANT_B)

    assert report.kind == "wait"
    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.state == "domain"
    assert upgrade.last_error is None
    assert upgrade.next_attempt_at > portal.clock.now()
    assert upgrade.next_attempt_at <= granted_at + portal.harness.context.options.consent_propagation

    assert portal.harness.run_until(TENANT_B, "grace").state == "grace"
    assert portal.clock.now() >= granted_at + timedelta(minutes=10)
    stops = [event for event in _events(portal, TENANT_B) if (event.after or {}).get("state") == "needs_attention"]
    assert len(stops) == 1


def test_regrant_not_applied_stops_again(consent_stopped):
    portal = consent_stopped
    _delay_consent(portal, TENANT_B, timedelta(hours=2))
    client = portal.signed_in(ADMIN_B)
    _grant_consent(portal, client, TENANT_B)
    window_end = portal.upgrade(TENANT_B).consented_at + portal.harness.context.options.consent_propagation

    upgrade = portal.harness.run_until(TENANT_B, "needs_attention")

    assert upgrade.resume_state == "domain"
    assert upgrade.last_error.startswith("consent is missing"), upgrade.last_error
    assert upgrade.state_entered_at >= window_end
    page = client.get(f"/tenants/{TENANT_B}/connector").text
    assert "can grant them again on this page. The upgrade then continues on its own." in page
    assert 'id="grant-permissions"' in page


def test_regrant_after_safety_stop_stays_stopped(safety_stopped):
    portal = safety_stopped
    stopped = portal.upgrade(TENANT_B)
    client = portal.signed_in(ADMIN_B)
    page = _grant_consent(portal, client, TENANT_B)

    assert "Permissions granted." in page
    assert "The upgrade continues" not in page
    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.consented_at is not None
    assert upgrade.consented_at != stopped.consented_at
    assert upgrade.state == "needs_attention"
    assert upgrade.resume_state == "backup"
    assert upgrade.stop_kind == "safety"
    assert upgrade.last_error == stopped.last_error
    assert upgrade.next_attempt_at is None

    actions = [event.action for event in _events(portal, TENANT_B)]
    assert actions[-1] == "consent.granted"
    assert "upgrade.resumed" not in actions


def test_grant_makes_waiting_upgrade_due(portal):
    request_upgrades(portal.harness.store, [TENANT_A], now=portal.clock.now(), actor="test")
    report = portal.harness.step(TENANT_A)
    assert report.kind == "wait"
    waiting = portal.upgrade(TENANT_A)
    assert waiting.next_attempt_at > portal.clock.now()

    client = portal.signed_in(ADMIN_A)
    page = _grant_consent(portal, client, TENANT_A)

    assert "Permissions granted. The upgrade starts once Microsoft 365 applies them" in page
    upgrade = portal.upgrade(TENANT_A)
    assert upgrade.state == "awaiting_consent"
    assert upgrade.next_attempt_at <= portal.clock.now()

    due = [event for event in _events(portal, TENANT_A) if event.action == "upgrade.due_now"]
    assert len(due) == 1
    assert ADMIN_A in due[0].actor
    assert portal.harness.run_until(TENANT_A, "identity").state == "identity"
