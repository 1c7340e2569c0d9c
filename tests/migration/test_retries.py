"""Transient errors retry with backoff; after max_attempts the tenant needs attention with the reason."""

from __future__ import annotations

from tenanttls.migration.service import add_tenant, request_upgrades
from tenanttls.store.tenants import TenantRecord
from tenanttls.store.upgrades import update_upgrade
from tests.fixtures.simulator import make_tenant

UNKNOWN = "99999999-2222-4333-8444-555555555555"


def test_transient_errors_retry(engine_factory):
    tenant = make_tenant()
    harness = engine_factory([tenant], settings={"faults": {"unavailable_rate": 1.0, "max_faults": 2, "surfaces": ["exchange"]}})
    harness.enrol(tenant["tenant_id"])

    upgrade = harness.run_until(tenant["tenant_id"], "completed")

    assert upgrade.state == "completed"


def test_retry_waits_with_backoff(engine_factory):
    tenant = make_tenant()
    harness = engine_factory([tenant], settings={"faults": {"unavailable_rate": 1.0, "surfaces": ["graph"]}})
    harness.enrol(tenant["tenant_id"])
    harness.run_until(tenant["tenant_id"], "domain")
    now = harness.clock.now()

    report = harness.step(tenant["tenant_id"])

    upgrade = harness.upgrade(tenant["tenant_id"])
    assert report.kind == "retry"
    assert upgrade.attempts == 1
    assert upgrade.next_attempt_at >= now
    assert not upgrade.last_error.startswith("MicrosoftServiceError")


def test_retry_clears_wait_reason(engine_factory):
    tenant = make_tenant()
    tenant_id = tenant["tenant_id"]
    harness = engine_factory([tenant], settings={"faults": {"unavailable_rate": 1.0, "surfaces": ["graph"]}})
    harness.enrol(tenant_id)
    harness.run_until(tenant_id, "domain")
    with harness.store.write() as connection:
        update_upgrade(connection, tenant_id, owner=None, wait_reason="an earlier wait")

    report = harness.step(tenant_id)

    assert report.kind == "retry"
    assert harness.upgrade(tenant_id).wait_reason is None


def test_gives_up_after_max_attempts(engine_factory):
    tenant = make_tenant()
    harness = engine_factory([tenant], settings={"faults": {"unavailable_rate": 1.0, "surfaces": ["graph"]}}, max_attempts=3)
    harness.enrol(tenant["tenant_id"])

    upgrade = harness.run_until(tenant["tenant_id"], "needs_attention")

    assert upgrade.resume_state == "domain"
    assert upgrade.stop_kind == "gave_up"
    assert "gave up after 3 attempts" in upgrade.last_error


def test_unknown_tenant_stops_at_once(engine_factory):
    harness = engine_factory([make_tenant()])
    now = harness.clock.now()
    with harness.store.write() as connection:
        record = TenantRecord(UNKNOWN, "unknown.onmicrosoft.com", "Unknown")
        add_tenant(connection, record, legacy_certificate_name=harness.settings.legacy_certificate_name, now=now, actor="test")
    request_upgrades(harness.store, [UNKNOWN], now=now, actor="test")

    harness.step(UNKNOWN)

    upgrade = harness.upgrade(UNKNOWN)
    assert upgrade.state == "needs_attention"
    assert upgrade.stop_kind == "unknown_tenant"
    assert upgrade.last_error.startswith(f"tenant {UNKNOWN} was not found by Microsoft Entra ID")
