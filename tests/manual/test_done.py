"""Recording the manual path: the upgrade script run by hand, checked from its exports,
the relay switched after the grace period, and the rollback script."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tenanttls.audit.drift import check_tenant, completed_tenants
from tenanttls.errors import InvalidInput, UpgradeStateError
from tenanttls.manual.done import record_done
from tenanttls.manual.service import write_rollback_script, write_upgrade_script
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.audit import list_events
from tenanttls.store.upgrades import get_upgrade, update_upgrade

from tests.manual.psreader import read_values
from tests.manual.test_script_simulator import (  # noqa: F401 (environment is a fixture)
    ENGINE_TENANT,
    NO_CONSENT_TENANT,
    SCRIPT_TENANT,
    _run_script,
    environment,
)


def _export(environment, tenant_id, folder):
    """Write what the script's Export-Result writes: ConvertTo-Json of both cmdlets."""
    def plain(raw):
        return {key: value for key, value in raw.items() if "@odata" not in key}

    connectors = folder / "connectors.json"
    domains = folder / "accepted-domains.json"
    connectors.write_text(json.dumps([plain(c.raw) for c in environment.context.exchange.get_inbound_connectors(tenant_id)]), encoding="utf-8")
    domains.write_text(json.dumps([plain(d.raw) for d in environment.context.exchange.get_accepted_domains(tenant_id)]), encoding="utf-8")
    return [connectors, domains]


def _relay(environment, tenant_id):
    with environment.store.engine.connect() as connection:
        return relay_assignments.find_assignment(connection, tenant_id)


def test_done_then_switch_completes(environment, tmp_path):
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support").text
    _run_script(environment, SCRIPT_TENANT, script)
    files = _export(environment, SCRIPT_TENANT, tmp_path)

    result = record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support", exports=files)

    assert result.ok, result.problems
    assert result.state == UpgradeState.MANUAL.value
    with pytest.raises(UpgradeStateError):
        record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support", exports=files, switch=True)

    environment.clock.advance(environment.settings.grace + timedelta(seconds=1))
    switched = record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support", exports=files, switch=True)

    assert switched.state == UpgradeState.COMPLETED.value
    assert _relay(environment, SCRIPT_TENANT).mode == relay_assignments.UNIQUE
    assert check_tenant(environment.context, SCRIPT_TENANT).items == ()


def test_done_reports_problems(environment, tmp_path):
    write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")
    files = _export(environment, SCRIPT_TENANT, tmp_path)

    result = record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support", exports=files)

    assert not result.ok
    assert any("is not an accepted domain" in problem for problem in result.problems)
    assert any("lacks the tenanttls marker" in problem for problem in result.problems)


def test_rollback_script_and_done(environment, tmp_path):
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support").text
    _run_script(environment, SCRIPT_TENANT, script)
    record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support",
                exports=_export(environment, SCRIPT_TENANT, tmp_path))

    rollback = write_rollback_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")
    values = read_values(rollback.text)

    assert values["LegacyName"] == "CrosswareInboundConnector"
    assert values["SnapshotSettings"]["TlsSenderCertificateName"] == "*.crossware.co.nz"
    assert _relay(environment, SCRIPT_TENANT).mode == relay_assignments.LEGACY

    exchange = environment.context.exchange
    exchange.remove_inbound_connector(SCRIPT_TENANT, values["ConnectorName"])
    exchange.set_inbound_connector(SCRIPT_TENANT, values["BackupName"], {"Name": values["LegacyName"]})
    rolled_folder = tmp_path / "rolled"
    rolled_folder.mkdir()

    result = record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support",
                         exports=_export(environment, SCRIPT_TENANT, rolled_folder), rolled_back=True)

    assert result.ok, result.problems
    assert result.state == UpgradeState.ROLLED_BACK.value


def test_rollback_script_needs_snapshot(environment):
    with pytest.raises(UpgradeStateError):
        write_rollback_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")


def _done(environment, tenant_id=SCRIPT_TENANT, **options):
    return record_done(environment.settings, environment.store, environment.clock, tenant_id, actor="support", **options)


def _upgraded(environment, folder):
    """Run the upgrade script, record it, pass the grace period and switch; return the export files."""
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support").text
    _run_script(environment, SCRIPT_TENANT, script)
    files = _export(environment, SCRIPT_TENANT, folder)
    assert _done(environment, exports=files).ok
    environment.clock.advance(environment.settings.grace + timedelta(seconds=1))
    assert _done(environment, exports=files, switch=True).state == UpgradeState.COMPLETED.value
    return files


def _upgrade_row(environment, tenant_id=SCRIPT_TENANT):
    with environment.store.engine.connect() as connection:
        return get_upgrade(connection, tenant_id)


def _actions(environment, tenant_id=SCRIPT_TENANT):
    with environment.store.engine.connect() as connection:
        return [event.action for event in list_events(connection, tenant_id)]


def _state_changes(environment, tenant_id=SCRIPT_TENANT):
    with environment.store.engine.connect() as connection:
        events = list_events(connection, tenant_id)
    return [
        (event.action, event.before["state"], event.after["state"])
        for event in events
        if isinstance(event.before, dict) and isinstance(event.after, dict) and "state" in event.before
    ]


def _failing_save(text):
    raise InvalidInput("cannot write the script to out.ps1: disk full")


def test_rollback_script_hands_tenant_to_support(environment, tmp_path):
    _upgraded(environment, tmp_path)

    written = write_rollback_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")

    assert _upgrade_row(environment).state == UpgradeState.MANUAL.value
    assert _relay(environment, SCRIPT_TENANT).mode == relay_assignments.LEGACY
    assert any("relay switched back" in notice and "*.crossware.co.nz" in notice for notice in written.notices)
    assert any("moved from state completed to manual" in notice for notice in written.notices)
    assert ("manual.rollback_script", "completed", "manual") in _state_changes(environment)
    assert SCRIPT_TENANT not in completed_tenants(environment.context)


def test_rollback_script_failed_save_changes_nothing(environment, tmp_path):
    _upgraded(environment, tmp_path)
    actions_before = _actions(environment)

    with pytest.raises(InvalidInput):
        write_rollback_script(
            environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support", save=_failing_save
        )

    assert _upgrade_row(environment).state == UpgradeState.COMPLETED.value
    assert _relay(environment, SCRIPT_TENANT).mode == relay_assignments.UNIQUE
    assert _actions(environment) == actions_before


def test_upgrade_script_failed_save_records_nothing(environment):
    with pytest.raises(InvalidInput):
        write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support", save=_failing_save)

    assert "manual.script" not in _actions(environment)
    assert _upgrade_row(environment).run_id is None


def test_upgrade_script_completed_note(environment, tmp_path):
    _upgraded(environment, tmp_path)

    written = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")

    assert len(written.notices) == 1
    assert "already upgraded (state completed)" in written.notices[0]


def test_script_tenant_id_not_guid(environment):
    with pytest.raises(InvalidInput) as caught:
        write_upgrade_script(environment.settings, environment.store, environment.clock, "scripttenant", actor="support")

    assert "invalid tenant id 'scripttenant'" in str(caught.value)


def test_done_after_completion_changes_nothing(environment, tmp_path):
    files = _upgraded(environment, tmp_path)
    row = _upgrade_row(environment)

    again = _done(environment, exports=files)

    assert again.ok
    assert again.state == UpgradeState.COMPLETED.value
    assert again.message == "already completed; nothing changed"
    assert _upgrade_row(environment).state_entered_at == row.state_entered_at
    assert _upgrade_row(environment).version == row.version


def test_done_records_every_state_change(environment, tmp_path):
    _upgraded(environment, tmp_path)

    assert _state_changes(environment) == [
        ("manual.verified", "awaiting_consent", "manual"),
        ("manual.done", "manual", "completed"),
    ]


def test_done_again_keeps_grace(environment, tmp_path):
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support").text
    _run_script(environment, SCRIPT_TENANT, script)
    files = _export(environment, SCRIPT_TENANT, tmp_path)
    _done(environment, exports=files)
    grace_until = _upgrade_row(environment).grace_until
    environment.clock.advance(3600)

    again = _done(environment, exports=files)

    assert again.ok
    assert _upgrade_row(environment).grace_until == grace_until
    assert "already running" in again.actions[0]


def test_switch_without_accepted_domains_export(environment, tmp_path):
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support").text
    _run_script(environment, SCRIPT_TENANT, script)
    connectors, _ = _export(environment, SCRIPT_TENANT, tmp_path)

    with pytest.raises(InvalidInput) as caught:
        _done(environment, exports=[connectors], switch=True)

    assert "no Get-AcceptedDomain output" in str(caught.value)
    assert "Get-AcceptedDomain | ConvertTo-Json" in str(caught.value)


def test_done_without_connectors_export(environment, tmp_path):
    _, domains = _export(environment, SCRIPT_TENANT, tmp_path)

    with pytest.raises(InvalidInput) as caught:
        _done(environment, exports=[domains])

    assert "no Get-InboundConnector output" in str(caught.value)


def test_done_without_consent_asks_for_exports(environment):
    def observe(tenant_id):
        raise AssertionError("the API must not be called for a tenant without consent")

    with pytest.raises(InvalidInput) as caught:
        _done(environment, tenant_id=NO_CONSENT_TENANT, observe_api=observe)

    assert "--export" in str(caught.value)
    assert "ask the tenant's admin" not in str(caught.value)


def test_done_consent_withdrawn_asks_for_exports(environment):
    from tenanttls.manual.done import Observed

    with environment.store.write() as connection:
        update_upgrade(connection, NO_CONSENT_TENANT, owner=None, consented_at=environment.clock.now())
    exchange = environment.context.exchange

    def observe(tenant_id):
        return Observed(exchange.get_inbound_connectors(tenant_id), exchange.get_accepted_domains(tenant_id), "api")

    with pytest.raises(InvalidInput) as caught:
        _done(environment, tenant_id=NO_CONSENT_TENANT, observe_api=observe)

    assert "pass the files the script wrote" in str(caught.value)
    assert "ask the tenant's admin" not in str(caught.value)


def test_switch_and_rolled_back_rejected(environment, tmp_path):
    files = _export(environment, SCRIPT_TENANT, tmp_path)

    with pytest.raises(InvalidInput) as caught:
        _done(environment, exports=files, switch=True, rolled_back=True)

    assert "--switch and --rolled-back" in str(caught.value)


def test_rolled_back_names_remaining_connector(environment, tmp_path):
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support").text
    _run_script(environment, SCRIPT_TENANT, script)
    files = _export(environment, SCRIPT_TENANT, tmp_path)
    _done(environment, exports=files)

    result = _done(environment, exports=files, rolled_back=True)

    assert "connector 'CrosswareInboundConnector' created by tenanttls still exists" in result.problems


def test_export_of_other_tenant(environment, tmp_path):
    files = _export(environment, ENGINE_TENANT, tmp_path)

    with pytest.raises(InvalidInput) as caught:
        _done(environment, exports=files)

    message = str(caught.value)
    assert "enginetenant.onmicrosoft.com" in message
    assert "scripttenant.onmicrosoft.com" in message
    assert "audit" not in message
