"""Rollback from every state restores the original connector and the legacy relay assignment."""

from __future__ import annotations

import pytest

from tests.fixtures.simulator import legacy_connector, make_tenant

from tenanttls.migration.service import request_rollback, request_upgrades, run_now
from tenanttls.store.relay_assignments import find_assignment

STATES = ["identity", "domain", "accepted", "backup", "connector", "grace", "switched", "verified", "completed"]


def _original():
    connector = legacy_connector()
    connector.update({"CloudServicesMailEnabled": False, "Comment": "Crossware email signatures"})
    return connector


@pytest.fixture
def tenant():
    return make_tenant(inbound_connectors=[_original()])


@pytest.fixture
def harness(engine_factory, tenant):
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    return harness


def _rollback(harness, tenant_id):
    result = request_rollback(harness.store, tenant_id, now=harness.clock.now(), actor="test")
    assert result.outcome == "requested"
    return harness.run_until(tenant_id, "rolled_back")


@pytest.mark.parametrize("state", STATES)
def test_rollback_from_state(harness, tenant, state):
    tenant_id = tenant["tenant_id"]
    original = harness.connectors(tenant_id)["CrosswareInboundConnector"]
    harness.run_until(tenant_id, state)

    upgrade = _rollback(harness, tenant_id)

    connectors = harness.connectors(tenant_id)
    assert upgrade.state == "rolled_back"
    assert set(connectors) == {"CrosswareInboundConnector"}
    restored = connectors["CrosswareInboundConnector"]
    assert restored.tls_sender_certificate_name == original.tls_sender_certificate_name
    assert restored.cloud_services_mail_enabled is False
    assert restored.require_tls == original.require_tls
    assert restored.enabled is True
    assert restored.comment == "Crossware email signatures"
    with harness.store.engine.connect() as connection:
        assert find_assignment(connection, tenant_id).mode == "legacy"


def test_rollback_restores_changed_settings(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "completed")
    harness.context.exchange.set_inbound_connector(tenant_id, "CrosswareInboundConnector-BACKUP", {"RequireTls": False})

    _rollback(harness, tenant_id)

    assert harness.connectors(tenant_id)["CrosswareInboundConnector"].require_tls is True


def test_rollback_run_now(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "grace")
    request_rollback(harness.store, tenant_id, now=harness.clock.now(), actor="test")

    reports = run_now(harness.context, tenant_id, "cli-test")

    assert reports[-1].state_after.value == "rolled_back"
    assert set(harness.connectors(tenant_id)) == {"CrosswareInboundConnector"}


def test_rollback_twice_is_noop(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "completed")
    _rollback(harness, tenant_id)

    result = request_rollback(harness.store, tenant_id, now=harness.clock.now(), actor="test")

    assert result.outcome == "unchanged"


def test_upgrade_again_after_rollback(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "completed")
    name = harness.context.identities.get(tenant_id).name
    _rollback(harness, tenant_id)

    request_upgrades(harness.store, [tenant_id], now=harness.clock.now(), actor="test")
    harness.run_until(tenant_id, "completed")

    connectors = harness.connectors(tenant_id)
    assert connectors["CrosswareInboundConnector"].tls_sender_certificate_name == name
    assert connectors["CrosswareInboundConnector-BACKUP"].cloud_services_mail_enabled is False


def test_rollback_backup_deleted_needs_attention(harness, tenant):
    tenant_id = tenant["tenant_id"]
    harness.run_until(tenant_id, "grace")
    harness.context.exchange.remove_inbound_connector(tenant_id, "CrosswareInboundConnector-BACKUP")
    request_rollback(harness.store, tenant_id, now=harness.clock.now(), actor="test")

    upgrade = harness.run_until(tenant_id, "needs_attention")

    assert "snapshot" in upgrade.last_error
    assert upgrade.resume_state == "rolling_back"
    assert upgrade.stop_kind == "rollback_blocked"
