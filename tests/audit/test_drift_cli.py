"""`tenanttls drift` through the CLI: every tenant is checked, errors are reported per tenant."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from tenanttls.cli import app
from tenanttls.errors import InvalidInput
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.upgrades import update_upgrade

from tests.audit.test_drift import CONNECTOR, TENANT, environment  # noqa: F401 (fixture)

# Sorts before TENANT, so `--all` meets it first.
STORE_ONLY = "0a1b2c3d-0000-4000-8000-0000000000c0"


def _drift(environment, *arguments):
    environment.write_config()
    command = ["drift", *arguments, "--data", str(environment.settings.data_dir)]
    return CliRunner().invoke(app, command)


def _add_store_only_tenant(environment):
    """A completed tenant in the store that has no unique name, so its check fails."""
    environment.add(STORE_ONLY, "storeonly.onmicrosoft.com")
    with environment.store.write() as connection:
        update_upgrade(connection, STORE_ONLY, owner=None, state=UpgradeState.COMPLETED.value)


def test_all_goes_on_after_failure(environment):
    _add_store_only_tenant(environment)
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False})

    result = _drift(environment, "--all")

    assert f"{STORE_ONLY}: error: tenant {STORE_ONLY} has no unique name" in result.stderr
    assert f"{TENANT}: drift in 1 field(s)" in result.stdout
    assert "RequireTls is $false, expected $true" in result.stdout
    assert "checked 2 tenant(s): 0 without drift, 1 with drift, 1 could not be checked" in result.stdout
    assert result.exit_code == 3


def test_all_json_lists_error(environment):
    _add_store_only_tenant(environment)

    result = _drift(environment, "--all", "--json")
    entries = json.loads(result.stdout)

    assert [entry["tenant_id"] for entry in entries] == [STORE_ONLY, TENANT]
    assert entries[0]["exit_code"] == 3
    assert "no unique name" in entries[0]["error"]
    assert entries[1]["drifted"] is False
    assert result.exit_code == 3


def test_repair_prints_each_change(environment):
    with environment.store.write() as connection:
        relay_assignments.assign_legacy(connection, TENANT, "*.crossware.co.nz", environment.clock.now())
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False})

    result = _drift(environment, TENANT, "--repair")

    assert result.exit_code == 0, result.output
    assert "  repaired: " in result.stdout
    assert "relay presents" in result.stdout
    assert "nothing remains" in result.stdout
    assert "1 with drift, 0 with drift remaining after the repair" in result.stdout


def test_repair_json_progress_on_stderr(environment):
    environment.context.exchange.set_inbound_connector(TENANT, CONNECTOR, {"RequireTls": False})

    result = _drift(environment, TENANT, "--repair", "--json")

    assert f"{TENANT}: repaired: " in result.stderr
    assert json.loads(result.stdout)[0]["repaired"]
    assert result.exit_code == 0


def test_unreachable_tenant_shows_client_message(environment):
    config = environment.write_config()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(environment.settings.login_url, f"https://127.0.0.1:{closed_port}"), encoding="utf-8")

    result = CliRunner().invoke(app, ["drift", "--all", "--data", str(environment.settings.data_dir)])

    assert result.exit_code == 4
    error_line = next(line for line in result.stderr.splitlines() if line.startswith(f"{TENANT}: error: "))
    assert "could not be reached" in error_line
    assert "1 could not be checked" in result.stdout


def test_tenant_and_all_rejected(environment):
    result = _drift(environment, TENANT, "--all")

    assert isinstance(result.exception, InvalidInput)
    assert str(result.exception) == "give a tenant id or --all, not both"
