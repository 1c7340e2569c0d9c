"""Stops without a test file of their own, and the kind of stop each one records."""

from __future__ import annotations

from datetime import timedelta

import httpx

from tenanttls.store.audit import list_events
from tests.fixtures.simulator import make_tenant


def test_missing_role_stops_as_permissions(engine_factory):
    tenant = make_tenant(app_roles=["Global Reader"])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    upgrade = harness.run_until(tenant["tenant_id"], "needs_attention", "completed")

    assert upgrade.state == "needs_attention"
    assert upgrade.resume_state == "backup"
    assert upgrade.stop_kind == "permissions"
    assert "User is not allowed to call Set-InboundConnector" in upgrade.last_error


def test_name_taken_elsewhere_stops_as_rejected(engine_factory):
    tenant = make_tenant()
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    harness.run_until(tenant["tenant_id"], "domain")
    name = harness.context.identities.get(tenant["tenant_id"]).name
    # Another tenant verifies the unique name first, so Graph rejects adding it here.
    answer = httpx.post(
        f"{harness.simulator.base_url}/_simulator/seed", json={"tenants": [make_tenant(accepted_domains=[name])]},
        verify=str(harness.simulator.ca_path),
    )
    assert answer.status_code == 201, answer.text

    upgrade = harness.run_until(tenant["tenant_id"], "needs_attention", "completed")

    assert upgrade.state == "needs_attention"
    assert upgrade.resume_state == "domain"
    assert upgrade.stop_kind == "rejected"
    assert "already verified in another tenant" in upgrade.last_error


def test_accepted_deadline_stops_as_timed_out(engine_factory):
    tenant = make_tenant(delays={"accepted_domain_seconds": "1h"})
    harness = engine_factory([tenant], accepted_deadline=timedelta(minutes=5))
    harness.enrol(tenant["tenant_id"])

    upgrade = harness.run_until(tenant["tenant_id"], "needs_attention", "completed")

    assert upgrade.state == "needs_attention"
    assert upgrade.resume_state == "accepted"
    assert upgrade.stop_kind == "timed_out"
    assert "Get-AcceptedDomain still does not list" in upgrade.last_error


def test_stop_event_records_kind(engine_factory):
    tenant = make_tenant(app_roles=["Global Reader"])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    harness.run_until(tenant["tenant_id"], "needs_attention")

    with harness.store.engine.connect() as connection:
        events = list_events(connection, tenant["tenant_id"], actions=("state",))

    assert events[-1].before == {"state": "backup"}
    assert events[-1].after == {"state": "needs_attention", "stop_kind": "permissions"}
