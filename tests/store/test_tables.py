from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.store import relay_assignments, snapshots
from tenanttls.store.audit import AuditEvent, list_events, record_event
from tenanttls.store.tenants import TenantRecord, get_tenant, list_tenants, save_tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
TENANT = "11111111-2222-4333-8444-555555555555"


def _tenant(store, tenant_id: str = TENANT, domain: str = "contoso.onmicrosoft.com", name: str = "Contoso") -> str:
    with store.write() as connection:
        return save_tenant(connection, TenantRecord(tenant_id, domain, name), NOW)


def test_tenant_added_then_unchanged(store):
    assert _tenant(store) == "added"
    assert _tenant(store) == "unchanged"


def test_tenant_display_name_updated(store):
    _tenant(store)

    assert _tenant(store, name="Contoso Ltd") == "updated"
    with store.engine.connect() as connection:
        assert get_tenant(connection, TENANT).display_name == "Contoso Ltd"


def test_tenant_domain_taken(store):
    _tenant(store)

    with pytest.raises(InvalidInput) as error:
        _tenant(store, tenant_id="99999999-2222-4333-8444-555555555555")
    assert "already belongs to tenant" in str(error.value)


def test_tenant_domain_cannot_change(store):
    _tenant(store)

    with pytest.raises(InvalidInput) as error:
        _tenant(store, domain="other.onmicrosoft.com")
    assert "never changes" in str(error.value)


def test_unknown_tenant(store):
    with store.engine.connect() as connection, pytest.raises(NotFoundError) as error:
        get_tenant(connection, "99999999-2222-4333-8444-555555555555")
    assert "tenants import" in str(error.value)


def test_tenants_listed_by_domain(store):
    _tenant(store, domain="zeta.onmicrosoft.com")
    _tenant(store, tenant_id="99999999-2222-4333-8444-555555555555", domain="alpha.onmicrosoft.com")

    with store.engine.connect() as connection:
        domains = [record.initial_domain for record in list_tenants(connection)]
    assert domains == ["alpha.onmicrosoft.com", "zeta.onmicrosoft.com"]


def test_snapshot_first_copy_kept(store):
    _tenant(store)
    original = {"Name": "CrosswareInboundConnector", "Enabled": True, "SenderDomains": ["smtp:*;1"]}

    with store.write() as connection:
        first = snapshots.save_snapshot(
            connection, tenant_id=TENANT, connector_name="CrosswareInboundConnector", run_id="r1",
            connector=original, reason="before-rename", now=NOW,
        )
        second = snapshots.save_snapshot(
            connection, tenant_id=TENANT, connector_name="CrosswareInboundConnector", run_id="r1",
            connector={"Name": "changed"}, reason="before-rename", now=NOW + timedelta(minutes=1),
        )

    assert second.id == first.id
    assert second.connector == original


def test_snapshot_per_run(store):
    _tenant(store)

    with store.write() as connection:
        for run_id in ("r1", "r2"):
            snapshots.save_snapshot(
                connection, tenant_id=TENANT, connector_name="C", run_id=run_id,
                connector={"Name": run_id}, reason="before-rename", now=NOW,
            )
        found = snapshots.find_snapshot(connection, TENANT, run_id="r2")
        every = snapshots.list_snapshots(connection, TENANT)

    assert found.connector == {"Name": "r2"}
    assert len(every) == 2


def test_relay_assignment_switch(store):
    _tenant(store)

    with store.write() as connection:
        created = relay_assignments.ensure_legacy_assignment(connection, TENANT, "*.crossware.co.nz", NOW)
        again = relay_assignments.ensure_legacy_assignment(connection, TENANT, "*.crossware.co.nz", NOW)
        unique = relay_assignments.assign_unique(connection, TENANT, "abc.crosswaretls.com", None, NOW)
        legacy = relay_assignments.assign_legacy(connection, TENANT, "*.crossware.co.nz", NOW)

    assert created is True
    assert again is False
    assert unique.mode == "unique"
    assert unique.version == 1
    assert legacy.mode == "legacy"
    assert legacy.certificate_id is None
    assert legacy.version == 2


def test_audit_events_in_order(store):
    with store.write() as connection:
        for index, action in enumerate(("state", "rename", "create")):
            record_event(
                connection,
                AuditEvent(
                    tenant_id=TENANT, at=NOW + timedelta(seconds=index), actor="worker", action=action,
                    before={"n": index}, after=None, correlation_id="r1",
                ),
            )
        events = list_events(connection, TENANT)
        states = list_events(connection, TENANT, actions=("state",))

    assert [event.action for event in events] == ["state", "rename", "create"]
    assert events[0].before == {"n": 0}
    assert len(states) == 1
