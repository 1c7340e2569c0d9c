"""Missing consent right after a grant makes the step wait for Microsoft to apply it, and later stop.

The simulator's ``consent_seconds`` delay keeps a fresh grant from taking effect for tokens,
as with a grant that Microsoft has not applied yet.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import pytest

from tenanttls.config import load_settings
from tenanttls.errors import ConfigurationError
from tenanttls.migration.context import EngineOptions
from tenanttls.migration.service import request_upgrades
from tenanttls.migration.runner import CONSENT_RECHECK
from tenanttls.store.audit import list_events
from tenanttls.store.upgrades import update_upgrade
from tests.fixtures.simulator import make_tenant

CONSENT_MISSING = "consent is missing or was withdrawn"


@pytest.fixture
def tenant():
    return make_tenant()


def _simulator(harness, method: str, path: str, body: dict) -> None:
    response = httpx.request(
        method, f"{harness.simulator.base_url}/_simulator/tenants/{path}", json=body, verify=str(harness.simulator.ca_path)
    )
    assert response.status_code == 200, response.text


def _stop_for_consent(harness, tenant_id: str) -> None:
    """Bring the tenant to the domain step long after its consent, withdraw the consent and run the step."""
    harness.enrol(tenant_id)
    harness.run_until(tenant_id, "domain")
    harness.clock.advance(harness.context.options.consent_propagation)
    _simulator(harness, "POST", f"{tenant_id}/consent", {"granted": False})

    report = harness.step(tenant_id)

    assert report.kind == "stop"
    assert report.detail.startswith(CONSENT_MISSING), report.detail


def _grant_again(harness, tenant_id: str, applied_after: timedelta) -> None:
    """Grant the consent in the simulator (effective for tokens after `applied_after`), record it and resume."""
    _simulator(harness, "PATCH", tenant_id, {"delays": {"consent_seconds": applied_after.total_seconds()}})
    _simulator(harness, "POST", f"{tenant_id}/consent", {"granted": True})
    now = harness.clock.now()
    with harness.store.write() as connection:
        update_upgrade(connection, tenant_id, owner=None, consented_at=now, consent_method="admin_consent")
    [result] = request_upgrades(harness.store, [tenant_id], now=now, actor="test")
    assert result.state == "domain"


def _steps_until_settled(harness, tenant_id: str) -> list:
    """Step the tenant at each due time until a step advances or stops, and return every report."""
    reports = []
    for _ in range(20):
        upgrade = harness.upgrade(tenant_id)
        if upgrade.next_attempt_at > harness.clock.now():
            harness.clock.set(upgrade.next_attempt_at)
        reports.append(harness.step(tenant_id))
        if reports[-1].kind in ("advance", "stop"):
            return reports
    raise AssertionError(f"tenant {tenant_id} neither advanced nor stopped in 20 steps: {reports}")


def test_regrant_waits_then_completes(engine_factory, tenant, caplog):
    tenant_id = tenant["tenant_id"]
    harness = engine_factory([tenant])
    _stop_for_consent(harness, tenant_id)
    _grant_again(harness, tenant_id, applied_after=timedelta(minutes=10))
    granted_at = harness.clock.now()
    caplog.set_level(logging.INFO, logger="tenanttls.migration.runner")

    report = harness.step(tenant_id)

    assert report.kind == "wait"
    assert "may not be applied yet" in report.detail
    upgrade = harness.upgrade(tenant_id)
    assert upgrade.state == "domain"
    assert upgrade.requested is True
    assert upgrade.last_error is None
    assert upgrade.next_attempt_at == harness.clock.now() + CONSENT_RECHECK
    assert f"consent wait: tenant={tenant_id} step=domain" in caplog.text

    reports = _steps_until_settled(harness, tenant_id)

    assert [report.kind for report in reports] == ["wait"] * (len(reports) - 1) + ["advance"]
    assert harness.clock.now() >= granted_at + timedelta(minutes=10)
    # Re-checked each minute, so the step goes on soon after the grant applies, not at the window's end.
    assert harness.clock.now() <= granted_at + timedelta(minutes=10) + CONSENT_RECHECK + timedelta(seconds=30)
    assert harness.run_until(tenant_id, "completed").state == "completed"
    with harness.store.engine.connect() as connection:
        stops = [event for event in list_events(connection, tenant_id) if (event.after or {}).get("state") == "needs_attention"]
    assert len(stops) == 1


def test_grant_not_applied_in_window_stops(engine_factory, tenant):
    tenant_id = tenant["tenant_id"]
    harness = engine_factory([tenant])
    _stop_for_consent(harness, tenant_id)
    _grant_again(harness, tenant_id, applied_after=timedelta(hours=2))
    window_end = harness.upgrade(tenant_id).consented_at + harness.context.options.consent_propagation

    reports = _steps_until_settled(harness, tenant_id)

    assert [report.kind for report in reports] == ["wait"] * (len(reports) - 1) + ["stop"]
    assert len(reports) >= 2
    upgrade = harness.upgrade(tenant_id)
    assert upgrade.state == "needs_attention"
    assert upgrade.resume_state == "domain"
    assert upgrade.stop_kind == "consent"
    assert upgrade.last_error.startswith(CONSENT_MISSING), upgrade.last_error
    assert "grant it again in the portal" in upgrade.last_error
    assert "(Microsoft Entra ID: " in upgrade.last_error
    assert "retry after a few minutes" not in upgrade.last_error
    assert upgrade.state_entered_at >= window_end


def test_last_wait_ends_at_window_end(engine_factory, tenant):
    tenant_id = tenant["tenant_id"]
    harness = engine_factory([tenant], consent_propagation=timedelta(seconds=90))
    _stop_for_consent(harness, tenant_id)
    _grant_again(harness, tenant_id, applied_after=timedelta(hours=2))
    window_end = harness.upgrade(tenant_id).consented_at + harness.context.options.consent_propagation

    first = harness.step(tenant_id)
    assert first.kind == "wait"
    harness.clock.set(harness.upgrade(tenant_id).next_attempt_at)
    second = harness.step(tenant_id)

    assert second.kind == "wait"
    assert harness.upgrade(tenant_id).next_attempt_at == window_end


def test_zero_window_stops_at_once(engine_factory, tenant):
    tenant_id = tenant["tenant_id"]
    harness = engine_factory([tenant], consent_propagation=timedelta(0))
    _stop_for_consent(harness, tenant_id)
    _grant_again(harness, tenant_id, applied_after=timedelta(minutes=10))

    report = harness.step(tenant_id)

    assert report.kind == "stop"
    assert report.detail.startswith(CONSENT_MISSING), report.detail
    assert harness.upgrade(tenant_id).state == "needs_attention"


def test_window_setting_reaches_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"TENANTTLS_CONSENT_PROPAGATION": "5m"})

    assert EngineOptions.from_settings(settings).consent_propagation == timedelta(minutes=5)
    assert load_settings(environ={}).consent_propagation == timedelta(minutes=15)


@pytest.mark.parametrize("value", ["25h", "2d"])
def test_window_setting_over_limit(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environ={"TENANTTLS_CONSENT_PROPAGATION": value})

    assert "invalid consent_propagation" in str(raised.value)
    assert "from 0 to 1d" in str(raised.value)
