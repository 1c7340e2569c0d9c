"""The engine's commands against the simulator, as an operator runs them, and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.simulator import legacy_connector, make_tenant
from tests.migration.test_crash_recovery import _write_config

pytestmark = pytest.mark.slow


def tenanttls(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    return subprocess.run(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.fixture
def operator(engine_factory, tmp_path):
    backup = legacy_connector("CrosswareInboundConnector-BACKUP")
    backup["RequireTls"] = False
    plain, awkward = make_tenant(), make_tenant(inbound_connectors=[legacy_connector(), backup])
    # The worker processes use the wall clock, so the simulator does too.
    harness = engine_factory([plain, awkward], wall_clock=True)
    harness.enrol(plain["tenant_id"], awkward["tenant_id"])
    config = tmp_path / "tenanttls.toml"
    _write_config(harness, config)
    return harness, str(config), plain["tenant_id"], awkward["tenant_id"]


def test_plan_json_changes_nothing(operator):
    harness, config, plain, _ = operator
    before = {c.name: c.raw for c in harness.context.exchange.get_inbound_connectors(plain)}

    result = tenanttls("plan", plain, "--config", config, "--json")

    document = json.loads(result.stdout)
    assert result.returncode == 0
    assert document["safe"] is True
    assert [change["type"] for change in document["changes"]][:2] == ["AllocateIdentity", "IssueCertificate"]
    assert {c.name: c.raw for c in harness.context.exchange.get_inbound_connectors(plain)} == before


def test_plan_rejected_exit_code(operator):
    _, config, _, awkward = operator

    result = tenanttls("plan", awkward, "--config", config)

    assert result.returncode == 5
    assert "REJECTED" in result.stdout
    assert "--force-backup-overwrite" in result.stdout


def test_plan_with_override_is_safe(operator):
    _, config, _, awkward = operator

    result = tenanttls("plan", awkward, "--config", config, "--force-backup-overwrite")

    assert result.returncode == 0
    assert "remove connector 'CrosswareInboundConnector-BACKUP'" in result.stdout


def test_worker_then_override_then_rollback(operator):
    harness, config, plain, awkward = operator

    first = tenanttls("worker", "--config", config, "--exit-when-idle", "--poll", "0.2")
    status = json.loads(tenanttls("status", "--config", config, "--json").stdout)
    states = {tenant["tenant_id"]: tenant for tenant in status["tenants"]}
    assert first.returncode == 0, first.stderr[-2000:]
    assert states[plain]["state"] == "completed"
    assert states[awkward]["state"] == "needs_attention"
    assert states[awkward]["stop_kind"] == "safety"
    assert "--force-backup-overwrite" in states[awkward]["last_error"]

    again = tenanttls("upgrade", plain, "--config", config)
    assert "already completed; nothing to do" in again.stdout

    resumed = tenanttls("upgrade", awkward, "--force-backup-overwrite", "--config", config)
    assert "resumes in state backup" in resumed.stdout
    assert tenanttls("worker", "--config", config, "--exit-when-idle", "--poll", "0.2").returncode == 0
    assert json.loads(tenanttls("status", awkward, "--config", config, "--json").stdout)["tenants"][0]["state"] == "completed"

    rollback = tenanttls("rollback", plain, "--config", config, "--json")
    document = json.loads(rollback.stdout)
    assert rollback.returncode == 0, rollback.stderr[-2000:]
    assert document["final_state"] == "rolled_back"
    assert [c.name for c in harness.context.exchange.get_inbound_connectors(plain)] == ["CrosswareInboundConnector"]

    history = json.loads(tenanttls("history", plain, "--config", config, "--json").stdout)
    actions = [event["action"] for event in history]
    assert "rollback.requested" in actions
    assert actions.index("connector.create") < actions.index("connector.remove")


def test_demo_small_fleet(tmp_path):
    result = tenanttls("demo", "--tenants", "6", "--grace", "1s", "--data", str(tmp_path / "demo"), "--json", timeout=300)

    document = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert document["demo"]["success"] is True
    cases = {tenant["case"]: tenant for tenant in document["tenants"]}
    assert cases["never-consents"]["state"] == "awaiting_consent"
    assert cases["existing-backup"]["state"] == "completed"
    assert cases["foreign-connector"]["state"] == "completed"
    assert document["fleet"]["states"]["completed"] == 5
    assert "progress:" in result.stderr


def test_demo_rejects_used_folder(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "file").write_text("x")

    result = tenanttls("demo", "--tenants", "2", "--data", str(used))

    assert result.returncode == 78
    assert "not empty" in result.stderr


def test_plan_without_consent(engine_factory, tmp_path):
    tenant = make_tenant(consent=False)
    harness = engine_factory([tenant], wall_clock=True)
    harness.enrol(tenant["tenant_id"])
    config = tmp_path / "tenanttls.toml"
    _write_config(harness, config)

    result = tenanttls("plan", tenant["tenant_id"], "--config", str(config))

    assert result.returncode == 4
    assert result.stderr.count("AADSTS") == 1
    assert not (harness.settings.data_dir / "ca").exists()
