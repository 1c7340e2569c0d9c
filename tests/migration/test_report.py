"""The demo report: time each tenant spends in each state, needs_attention included, and why it stopped."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tenanttls.migration.report import fleet_report, seconds_in_states
from tenanttls.migration.service import add_tenant
from tenanttls.store.audit import AuditEvent
from tenanttls.store.tenants import TenantRecord
from tenanttls.store.upgrades import update_upgrade

TENANT = "11111111-2222-4333-8444-555555555555"
START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _event(seconds: int, action: str, state: str) -> AuditEvent:
    return AuditEvent(tenant_id=TENANT, at=START + timedelta(seconds=seconds), actor="test", action=action, after={"state": state})


def test_needs_attention_until_resumed():
    events = [
        _event(0, "upgrade.requested", "awaiting_consent"),
        _event(10, "state", "needs_attention"),
        _event(40, "upgrade.resumed", "backup"),
        _event(45, "state", "completed"),
    ]

    durations = seconds_in_states(events, START + timedelta(seconds=100))

    assert durations == {"awaiting_consent": 10.0, "needs_attention": 30.0, "backup": 5.0}


def test_needs_attention_counts_until_now():
    events = [_event(0, "upgrade.requested", "awaiting_consent"), _event(10, "state", "needs_attention")]

    durations = seconds_in_states(events, START + timedelta(seconds=25))

    assert durations["needs_attention"] == 15.0


def test_fleet_report_names_stop_kind(store):
    with store.write() as connection:
        record = TenantRecord(TENANT, "alpha.onmicrosoft.com", "Alpha")
        add_tenant(connection, record, legacy_certificate_name="*.crossware.co.nz", now=START, actor="test")
        update_upgrade(
            connection, TENANT, owner=None, state="needs_attention", resume_state="domain",
            last_error="consent is missing", stop_kind="consent",
        )

    [tenant] = fleet_report(store, START + timedelta(seconds=5), 5.0).to_json()["tenants"]

    assert tenant["state"] == "needs_attention"
    assert tenant["stop_kind"] == "consent"
    assert tenant["last_error"] == "consent is missing"
