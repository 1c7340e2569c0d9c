"""Drift of a completed tenant in the simulator: detected field by field, and repaired."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tenanttls.audit.drift import (
    DRIFT_CLEARED,
    DRIFT_DETECTED,
    DRIFT_PARTIALLY_REPAIRED,
    DRIFT_REPAIRED,
    DriftItem,
    check_tenant,
    completed_tenants,
    latest_drift,
)
from tenanttls.errors import MicrosoftApiError
from tenanttls.migration.states import UpgradeState

from tests.fixtures.simulator import make_tenant
from tests.manual.engine import start_environment

TENANT = "0a1b2c3d-0000-4000-8000-0000000000d1"
CONNECTOR = "CrosswareInboundConnector"


@pytest.fixture
def environment(tmp_path, simulator_factory, monkeypatch, store_url):
    # NOTE: requests prefers these variables over the CA bundle the token provider passes to MSAL.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    environment, stops = start_environment(tmp_path, simulator_factory, [make_tenant(TENANT, "drifttenant.onmicrosoft.com")], store_url)
    environment.add(TENANT, "drifttenant.onmicrosoft.com")
    assert environment.upgrade(TENANT) == UpgradeState.COMPLETED.value
    yield environment
    for stop in stops:
        stop()


def _unique_name(environment) -> str:
    return environment.context.identities.get(TENANT).name


def _fields(report):
    return {(item.subject, item.field) for item in report.items}


def test_completed_tenant_no_drift(environment):
    report = check_tenant(environment.context, TENANT)

    assert report.items == ()
    assert completed_tenants(environment.context) == [TENANT]
    assert latest_drift(environment.context, TENANT) is None


def test_connector_field_detected_and_repaired(environment):
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False, "SenderDomains": ["contoso.com"]})

    report = check_tenant(environment.context, TENANT)

    assert _fields(report) == {("connector", "RequireTls"), ("connector", "SenderDomains")}
    by_field = {item.field: item for item in report.items}
    assert by_field["RequireTls"].actual is False
    assert by_field["RequireTls"].expected is True
    assert by_field["SenderDomains"].actual == ("contoso.com",)
    assert latest_drift(environment.context, TENANT).action == DRIFT_DETECTED

    repaired = check_tenant(environment.context, TENANT, repair=True)

    assert repaired.remaining == ()
    assert repaired.repaired
    assert environment.context.exchange.get_inbound_connector(TENANT, CONNECTOR).require_tls is True
    assert latest_drift(environment.context, TENANT).action == DRIFT_REPAIRED


def test_disabled_connector_detected_and_repaired(environment):
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"Enabled": False})

    report = check_tenant(environment.context, TENANT, repair=True)

    assert _fields(report) == {("connector", "Enabled")}
    assert report.remaining == ()
    assert environment.context.exchange.get_inbound_connector(TENANT, CONNECTOR).enabled is True


def test_removed_accepted_domain_detected_and_repaired(environment):
    name = _unique_name(environment)
    environment.context.graph.delete_domain(TENANT, name)

    report = check_tenant(environment.context, TENANT, repair=True)

    assert ("accepted domain", "present") in _fields(report)
    assert ("graph domain", "present") in _fields(report)
    assert environment.context.graph.get_domain(TENANT, name).is_verified is True

    for _ in range(100):
        if any(d.domain_name == name for d in environment.context.exchange.get_accepted_domains(TENANT)):
            break
        environment.clock.advance(60)
    assert check_tenant(environment.context, TENANT).items == ()
    event = latest_drift(environment.context, TENANT)
    if report.remaining:
        assert event.action == DRIFT_CLEARED  # the repair waited for Exchange; the later check closed it
    else:
        assert event.action == DRIFT_REPAIRED
        assert event.after == []


def test_drift_cleared_after_outside_fix(environment):
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False})
    assert check_tenant(environment.context, TENANT).drifted
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": True})

    assert check_tenant(environment.context, TENANT).items == ()
    assert latest_drift(environment.context, TENANT).action == DRIFT_CLEARED


def test_removed_connector_recreated(environment):
    environment.context.exchange.remove_inbound_connector(TENANT, CONNECTOR)

    report = check_tenant(environment.context, TENANT, repair=True)

    assert _fields(report) == {("connector", "present")}
    assert report.remaining == ()
    recreated = environment.context.exchange.get_inbound_connector(TENANT, CONNECTOR)
    assert recreated.tls_sender_certificate_name == _unique_name(environment)


def test_relay_drift_repaired(environment):
    from tenanttls.store import relay_assignments

    with environment.store.write() as connection:
        relay_assignments.assign_legacy(connection, TENANT, "*.crossware.co.nz", environment.clock.now())

    report = check_tenant(environment.context, TENANT, repair=True)

    assert ("relay", "mode") in _fields(report)
    assert report.remaining == ()


def test_drift_only_for_completed(environment):
    from tenanttls.errors import UpgradeStateError
    from tenanttls.store.upgrades import update_upgrade

    with environment.store.write() as connection:
        update_upgrade(connection, TENANT, owner=None, state=UpgradeState.GRACE.value)

    with pytest.raises(UpgradeStateError):
        check_tenant(environment.context, TENANT)


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (DriftItem("connector", "X", "present", True, False), "connector X: missing, expected present"),
        (DriftItem("accepted domain", "a.example", "present", True, False), "accepted domain a.example: missing, expected present"),
        (DriftItem("graph domain", "a.example", "isVerified", True, False), "graph domain a.example: not verified (isVerified is false), expected verified"),
        (DriftItem("connector", "X", "RequireTls", True, False), "connector X: RequireTls is $false, expected $true"),
        (DriftItem("relay", "a.example", "assignment", "unique", None), "relay a.example: no relay assignment, expected mode 'unique'"),
        (DriftItem("connector", "X", "SenderDomains", ("*",), ("contoso.com",)), "connector X: SenderDomains is [contoso.com], expected [*]"),
    ],
)
def test_item_described_in_words(item, text):
    assert item.describe() == text
    assert "True" not in item.describe()
    assert "False" not in item.describe()


def test_remaining_drift_partially_repaired(environment):
    name = _unique_name(environment)
    environment.simulator.state.update_tenant(TENANT, {"delays": {"accepted_domain_seconds": 3600}})
    environment.context.graph.delete_domain(TENANT, name)

    report = check_tenant(environment.context, TENANT, repair=True)

    assert [(item.subject, item.field) for item in report.remaining] == [("accepted domain", "present")]
    event = latest_drift(environment.context, TENANT)
    assert event.action == DRIFT_PARTIALLY_REPAIRED
    assert event.after == [item.to_json() for item in report.remaining]

    environment.clock.advance(3601)
    assert check_tenant(environment.context, TENANT).items == ()
    assert latest_drift(environment.context, TENANT).action == DRIFT_CLEARED


def test_failed_repair_reports_progress(environment):
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False})
    environment.context.graph.delete_domain(TENANT, _unique_name(environment))
    applied = []

    def break_exchange(tenant_id, items):
        environment.simulator.state.update_tenant(TENANT, {"faults": {"unavailable_rate": 1.0, "surfaces": ["exchange"]}})

    with pytest.raises(MicrosoftApiError):
        check_tenant(
            environment.context, TENANT, repair=True, on_drift=break_exchange,
            on_repair=lambda tenant_id, line: applied.append(line),
        )

    assert any("add domain" in line for line in applied)
    event = latest_drift(environment.context, TENANT)
    assert event.action == DRIFT_PARTIALLY_REPAIRED
    assert event.after is None
    assert "failed:" in event.detail
    assert all(line in event.detail for line in applied)


def test_scheduled_pass_records_drift(environment):
    from tenanttls.audit.drift import check_completed_tenants

    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False})

    result = check_completed_tenants(environment.context, interval=timedelta(hours=6))

    assert result.checked == 1
    assert result.drifted == 1
    assert result.failed == 0
    assert latest_drift(environment.context, TENANT).action == DRIFT_DETECTED
    assert latest_drift(environment.context, TENANT).actor == "worker:drift"
    assert environment.context.exchange.get_inbound_connector(TENANT, CONNECTOR).require_tls is False


def test_scheduled_pass_stops_when_asked(environment):
    import threading

    from tenanttls.audit.drift import check_completed_tenants

    stop = threading.Event()
    stop.set()

    result = check_completed_tenants(environment.context, interval=timedelta(hours=6), stop=stop)

    assert result.checked == 0
    assert latest_drift(environment.context, TENANT) is None
