"""The manual-path commands through the CLI: output paths, notices and flag checks."""

from __future__ import annotations

from typer.testing import CliRunner

from tenanttls.cli import app
from tenanttls.errors import InvalidInput
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments

from tests.manual.test_done import _relay, _upgrade_row, _upgraded
from tests.manual.test_script_simulator import SCRIPT_TENANT, environment  # noqa: F401 (fixture)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _run(*arguments):
    return CliRunner().invoke(app, [str(argument) for argument in arguments])


def test_script_output_folder_missing(tmp_path):
    target = tmp_path / "missing" / "rb.ps1"

    result = _run("script", TENANT, "--rollback", "-o", target, "--data", tmp_path)

    assert isinstance(result.exception, InvalidInput)
    assert f"the folder {target.parent} does not exist" in str(result.exception)
    assert not (tmp_path / "tenanttls.db").exists()


def test_script_output_is_folder(tmp_path):
    result = _run("script", TENANT, "-o", tmp_path, "--data", tmp_path)

    assert isinstance(result.exception, InvalidInput)
    assert f"cannot write the script to {tmp_path}: it is a folder" in str(result.exception)


def test_rollback_prints_relay_switch(environment, tmp_path):
    _upgraded(environment, tmp_path)
    environment.write_config()
    target = tmp_path / "rb.ps1"

    result = _run("script", SCRIPT_TENANT, "--rollback", "-o", target, "--data", environment.settings.data_dir)

    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"\xef\xbb\xbf#Requires")
    assert "relay switched back" in result.stderr
    assert "moved from state completed to manual" in result.stderr
    assert f"tenanttls manual done {SCRIPT_TENANT} --rolled-back" in result.stderr
    assert _upgrade_row(environment).state == UpgradeState.MANUAL.value
    assert _relay(environment, SCRIPT_TENANT).mode == relay_assignments.LEGACY


def test_rollback_missing_folder_leaves_relay(environment, tmp_path):
    _upgraded(environment, tmp_path)
    environment.write_config()

    result = _run("script", SCRIPT_TENANT, "--rollback", "-o", tmp_path / "missing" / "rb.ps1", "--data", environment.settings.data_dir)

    assert isinstance(result.exception, InvalidInput)
    assert _relay(environment, SCRIPT_TENANT).mode == relay_assignments.UNIQUE
    assert _upgrade_row(environment).state == UpgradeState.COMPLETED.value


def test_done_switch_and_rolled_back(tmp_path):
    result = _run("manual", "done", TENANT, "--switch", "--rolled-back", "--data", tmp_path)

    assert isinstance(result.exception, InvalidInput)
    assert "--switch and --rolled-back" in str(result.exception)
