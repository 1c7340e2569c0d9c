"""Recording the manual path: the upgrade script run by hand, checked from its exports,
the relay switched after the grace period, and the rollback script."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tenanttls.audit.drift import check_tenant
from tenanttls.errors import UpgradeStateError
from tenanttls.manual.service import record_done, write_rollback_script, write_upgrade_script
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments

from tests.manual.psreader import read_values
from tests.manual.test_script_simulator import SCRIPT_TENANT, _run_script, environment  # noqa: F401 (fixture)


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
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")
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
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")
    _run_script(environment, SCRIPT_TENANT, script)
    record_done(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support",
                exports=_export(environment, SCRIPT_TENANT, tmp_path))

    rollback = write_rollback_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="support")
    values = read_values(rollback)

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
