"""Each step of the upgrade against the simulator, and each step run twice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fixtures.simulator import legacy_connector, make_tenant

from tenanttls.store.relay_assignments import find_assignment
from tenanttls.store.snapshots import list_snapshots

FORWARD = ["awaiting_consent", "identity", "domain", "accepted", "backup", "connector", "grace", "switched", "verified", "completed"]


@pytest.fixture
def tenant():
    return make_tenant(accepted_domains=["contoso.com"])


@pytest.fixture
def harness(engine_factory, tenant):
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    return harness


def _snapshots(harness, tenant_id: str):
    with harness.store.engine.connect() as connection:
        return list_snapshots(connection, tenant_id)


def _unique_name(harness, tenant_id: str) -> str:
    return harness.context.identities.get(tenant_id).name


def test_full_upgrade_completes(harness, tenant):
    tenant_id = tenant["tenant_id"]

    upgrade = harness.run_until(tenant_id, "completed")

    connectors = harness.connectors(tenant_id)
    name = _unique_name(harness, tenant_id)
    assert upgrade.state == "completed"
    assert set(connectors) == {"CrosswareInboundConnector", "CrosswareInboundConnector-BACKUP"}
    assert connectors["CrosswareInboundConnector"].tls_sender_certificate_name == name
    assert connectors["CrosswareInboundConnector"].enabled is True
    assert connectors["CrosswareInboundConnector-BACKUP"].tls_sender_certificate_name == "*.crossware.co.nz"


def test_states_visited_in_order(harness, tenant):
    tenant_id = tenant["tenant_id"]
    seen = [harness.upgrade(tenant_id).state]

    while seen[-1] != "completed":
        upgrade = harness.upgrade(tenant_id)
        if upgrade.next_attempt_at > harness.clock.now():
            harness.clock.set(upgrade.next_attempt_at)
        harness.step(tenant_id)
        state = harness.upgrade(tenant_id).state
        if state != seen[-1]:
            seen.append(state)

    assert seen == FORWARD


@pytest.mark.parametrize("state", FORWARD[:-1])
def test_step_runs_twice(harness, tenant, state):
    """Run the step that leaves `state`, put the tenant back in `state`, and run it again: nothing new happens."""
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, state)
    harness.run_until(tenant_id, FORWARD[FORWARD.index(state) + 1])
    before = harness.connectors(tenant_id)
    snapshots_before = len(_snapshots(harness, tenant_id))

    from tenanttls.store.upgrades import update_upgrade

    with harness.store.write() as connection:
        update_upgrade(connection, tenant_id, owner=None, state=state, next_attempt_at=harness.clock.now())
    harness.run_until(tenant_id, FORWARD[FORWARD.index(state) + 1])

    after = harness.connectors(tenant_id)
    assert {name: connector.raw.get("Guid") for name, connector in after.items()} == {
        name: connector.raw.get("Guid") for name, connector in before.items()
    }
    assert {name: connector.tls_sender_certificate_name for name, connector in after.items()} == {
        name: connector.tls_sender_certificate_name for name, connector in before.items()
    }
    assert len(_snapshots(harness, tenant_id)) == snapshots_before


def test_snapshot_is_original(harness, tenant):
    tenant_id = tenant["tenant_id"]

    harness.run_until(tenant_id, "connector")

    [snapshot] = _snapshots(harness, tenant_id)
    assert snapshot.connector_name == "CrosswareInboundConnector"
    assert snapshot.connector["TlsSenderCertificateName"] == "*.crossware.co.nz"
    assert snapshot.connector["Name"] == "CrosswareInboundConnector"


def test_grace_is_durable_timer(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "grace")
    grace_until = harness.upgrade(tenant_id).grace_until

    report = harness.step(tenant_id)

    assert report.kind == "wait"
    assert harness.upgrade(tenant_id).state == "grace"
    assert harness.upgrade(tenant_id).next_attempt_at == grace_until
    assert grace_until - harness.clock.now() > timedelta(hours=23)


def test_switch_changes_relay_assignment(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "switched")
    with harness.store.engine.connect() as connection:
        before = find_assignment(connection, tenant_id)

    harness.run_until(tenant_id, "verified")

    with harness.store.engine.connect() as connection:
        after = find_assignment(connection, tenant_id)
    assert before.mode == "legacy"
    assert after.mode == "unique"
    assert after.certificate_name == _unique_name(harness, tenant_id)
    assert after.certificate_id is not None
    assert after.version == before.version + 1


def test_accepted_waits_for_propagation(engine_factory):
    tenant = make_tenant(delays={"accepted_domain_seconds": 600})
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    harness.run_until(tenant["tenant_id"], "accepted")

    report = harness.step(tenant["tenant_id"])

    assert report.kind == "wait"
    assert "not yet listed" in report.detail
    assert harness.run_until(tenant["tenant_id"], "backup").state == "backup"


def test_accepted_wait_reason_stored(engine_factory):
    tenant = make_tenant(delays={"accepted_domain_seconds": 600})
    tenant_id = tenant["tenant_id"]
    harness = engine_factory([tenant])
    harness.enrol(tenant_id)
    harness.run_until(tenant_id, "accepted")

    report = harness.step(tenant_id)
    waiting = harness.upgrade(tenant_id)
    advanced = harness.run_until(tenant_id, "backup")

    assert report.kind == "wait"
    assert waiting.wait_reason == report.detail
    assert "not yet listed" in waiting.wait_reason
    assert advanced.state == "backup"
    assert advanced.wait_reason is None


def test_consent_wait_then_proceed(engine_factory):
    tenant = make_tenant(consent=False)
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    report = harness.step(tenant["tenant_id"])

    assert report.kind == "wait"
    assert harness.upgrade(tenant["tenant_id"]).state == "awaiting_consent"


def test_foreign_connector_untouched(engine_factory):
    foreign = legacy_connector("Archive Gateway", "mx.archive.example")
    tenant = make_tenant(inbound_connectors=[legacy_connector(), foreign])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    harness.run_until(tenant["tenant_id"], "completed")

    connectors = harness.connectors(tenant["tenant_id"])
    assert connectors["Archive Gateway"].tls_sender_certificate_name == "mx.archive.example"
    assert connectors["Archive Gateway"].raw.get("WhenChangedUTC") == connectors["Archive Gateway"].raw.get("WhenCreatedUTC")


def test_api_calls_counted(harness, tenant):
    harness.run_until(tenant["tenant_id"], "completed")

    assert harness.upgrade(tenant["tenant_id"]).api_calls >= 8


def test_audit_trail_has_changes(harness, tenant):
    from tenanttls.migration.service import history

    harness.run_until(tenant["tenant_id"], "completed")

    actions = [event.action for event in history(harness.store, tenant["tenant_id"])]
    for action in ("domain.add", "dns.txt.add", "domain.verify", "connector.snapshot", "connector.rename", "connector.create", "relay.switch"):
        assert action in actions
    rename = next(event for event in history(harness.store, tenant["tenant_id"]) if event.action == "connector.rename")
    assert rename.before == {"Name": "CrosswareInboundConnector"}
    assert rename.after == {"Name": "CrosswareInboundConnector-BACKUP"}
    assert rename.correlation_id == harness.upgrade(tenant["tenant_id"]).run_id
