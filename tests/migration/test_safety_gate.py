"""The safety gate against the simulator: each rejection stops the tenant before any change, and its override."""

from __future__ import annotations

from tests.fixtures.simulator import legacy_connector, make_tenant

from tenanttls.migration.service import request_upgrades
from tenanttls.migration.safety import Overrides


def _backup(**fields):
    connector = legacy_connector("CrosswareInboundConnector-BACKUP")
    connector.update(fields)
    return connector


def _stopped(harness, tenant_id):
    upgrade = harness.run_until(tenant_id, "needs_attention", "completed")
    assert upgrade.state == "needs_attention"
    return upgrade


def test_existing_backup_rejected(engine_factory):
    tenant = make_tenant(inbound_connectors=[legacy_connector(), _backup(RequireTls=False)])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    upgrade = _stopped(harness, tenant["tenant_id"])

    assert upgrade.resume_state == "backup"
    assert upgrade.stop_kind == "safety"
    assert "'CrosswareInboundConnector-BACKUP'" in upgrade.last_error
    assert "--force-backup-overwrite" in upgrade.last_error
    connectors = harness.connectors(tenant["tenant_id"])
    assert connectors["CrosswareInboundConnector"].tls_sender_certificate_name == "*.crossware.co.nz"
    assert connectors["CrosswareInboundConnector-BACKUP"].require_tls is False


def test_existing_backup_override(engine_factory):
    tenant = make_tenant(inbound_connectors=[legacy_connector(), _backup(RequireTls=False)])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    _stopped(harness, tenant["tenant_id"])

    request_upgrades(harness.store, [tenant["tenant_id"]], overrides=Overrides(force_backup_overwrite=True), now=harness.clock.now(), actor="test")
    assert harness.upgrade(tenant["tenant_id"]).stop_kind is None
    harness.run_until(tenant["tenant_id"], "completed")

    connectors = harness.connectors(tenant["tenant_id"])
    assert connectors["CrosswareInboundConnector-BACKUP"].require_tls is True
    assert connectors["CrosswareInboundConnector-BACKUP"].tls_sender_certificate_name == "*.crossware.co.nz"


def test_identical_backup_replaced(engine_factory):
    tenant = make_tenant(inbound_connectors=[legacy_connector(), _backup()])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    assert harness.run_until(tenant["tenant_id"], "completed").state == "completed"


def test_several_legacy_rejected(engine_factory):
    second = legacy_connector("Crossware Inbound (old)")
    tenant = make_tenant(inbound_connectors=[legacy_connector(), second])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    upgrade = _stopped(harness, tenant["tenant_id"])

    assert upgrade.stop_kind == "safety"
    assert "2 connectors look like the legacy connector" in upgrade.last_error
    assert "--legacy-connector NAME" in upgrade.last_error
    assert set(harness.connectors(tenant["tenant_id"])) == {"CrosswareInboundConnector", "Crossware Inbound (old)"}


def test_several_legacy_override(engine_factory):
    second = legacy_connector("Crossware Inbound (old)")
    tenant = make_tenant(inbound_connectors=[legacy_connector(), second])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"], legacy_connector="CrosswareInboundConnector")

    harness.run_until(tenant["tenant_id"], "completed")

    assert set(harness.connectors(tenant["tenant_id"])) == {
        "CrosswareInboundConnector", "CrosswareInboundConnector-BACKUP", "Crossware Inbound (old)",
    }


def test_foreign_unique_name_rejected(engine_factory):
    tenant = make_tenant()
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    harness.run_until(tenant["tenant_id"], "backup")
    name = harness.context.identities.get(tenant["tenant_id"]).name
    foreign = legacy_connector("Someone Else", name)
    foreign["Comment"] = "made by hand"
    from tenanttls.domain.exchange import ConnectorSettings

    harness.context.exchange.new_inbound_connector(
        tenant["tenant_id"], ConnectorSettings(name="Someone Else", tls_sender_certificate_name=name, comment="made by hand")
    )

    upgrade = _stopped(harness, tenant["tenant_id"])

    assert upgrade.stop_kind == "safety"
    assert "'Someone Else'" in upgrade.last_error
    assert "--allow-foreign-connector" in upgrade.last_error
    assert harness.connectors(tenant["tenant_id"])["CrosswareInboundConnector"].tls_sender_certificate_name == "*.crossware.co.nz"


def test_connectors_created_disabled(engine_factory):
    tenant = make_tenant(connectors_created_disabled=True)
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])

    upgrade = _stopped(harness, tenant["tenant_id"])

    assert upgrade.resume_state == "connector"
    assert upgrade.stop_kind == "connector_disabled"
    assert "created connector 'CrosswareInboundConnector' disabled" in upgrade.last_error
    assert "--allow-disabled-connector" in upgrade.last_error
    from tenanttls.store.relay_assignments import find_assignment

    with harness.store.engine.connect() as connection:
        assert find_assignment(connection, tenant["tenant_id"]).mode == "legacy"


def test_disabled_connector_wait_override(engine_factory):
    tenant = make_tenant(connectors_created_disabled=True)
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"], allow_disabled_connector=True)
    harness.run_until(tenant["tenant_id"], "connector")

    harness.step(tenant["tenant_id"])
    report = harness.step(tenant["tenant_id"])

    assert report.kind == "wait"
    assert "waiting for Microsoft support" in report.detail
    assert harness.upgrade(tenant["tenant_id"]).state == "connector"


def test_plan_shows_violation(engine_factory):
    from tenanttls.migration.observe import plan_for

    tenant = make_tenant(inbound_connectors=[legacy_connector(), _backup(RequireTls=False)])
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    harness.run_until(tenant["tenant_id"], "backup")
    before = harness.connectors(tenant["tenant_id"])

    plan = plan_for(harness.context, tenant["tenant_id"])

    assert not plan.is_safe
    assert [violation.flag for violation in plan.violations] == ["--force-backup-overwrite"]
    assert any("rename connector" in line for line in plan.describe())
    assert {name: c.raw for name, c in harness.connectors(tenant["tenant_id"]).items()} == {name: c.raw for name, c in before.items()}
