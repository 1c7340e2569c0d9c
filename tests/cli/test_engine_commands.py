from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy

A = "11111111-2222-4333-8444-555555555555"
B = "22222222-2222-4333-8444-555555555555"
UNKNOWN = "99999999-2222-4333-8444-555555555555"


def tenanttls(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI entry point in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


@pytest.fixture
def database(store_backend, new_store_url, monkeypatch):
    """Point the CLI at an empty PostgreSQL database through the environment, on that backend."""
    if store_backend == "postgresql":
        monkeypatch.setenv("TENANTTLS_DATABASE_URL", new_store_url())
    return store_backend


def execute(data, statement: str, **parameters) -> None:
    """Run one SQL statement on the store the CLI uses (``--data`` or TENANTTLS_DATABASE_URL)."""
    url = os.environ.get("TENANTTLS_DATABASE_URL") or f"sqlite:///{data / 'tenanttls.db'}"
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(statement), parameters)
    engine.dispose()


@pytest.fixture
def data(tmp_path, database):
    folder = tmp_path / "data"
    assert tenanttls("init", "--data", str(folder)).returncode == 0
    tenants = tmp_path / "tenants.csv"
    tenants.write_text(f"tenant_id,initial_domain,display_name\n{A},alpha.onmicrosoft.com,Alpha\n{B},beta.onmicrosoft.com,Beta\n")
    assert tenanttls("tenants", "import", str(tenants), "--data", str(folder)).returncode == 0
    return folder


def test_init_twice(tmp_path, database):
    first = tenanttls("init", "--data", str(tmp_path / "d"))
    second = tenanttls("init", "--data", str(tmp_path / "d"))

    assert first.returncode == 0
    assert second.returncode == 0
    assert "schema revision" in second.stdout


def test_import_bad_line(data, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(f"tenant_id,initial_domain\n{UNKNOWN},ok.onmicrosoft.com\nnope,x.onmicrosoft.com\n")

    result = tenanttls("tenants", "import", str(bad), "--data", str(data))

    assert result.returncode == 2
    assert "line 3" in result.stderr
    assert UNKNOWN not in tenanttls("tenants", "list", "--data", str(data)).stdout


def test_import_json_output(data, tmp_path):
    again = tmp_path / "t.json"
    again.write_text(json.dumps([{"tenant_id": A, "initial_domain": "alpha.onmicrosoft.com", "display_name": "Alpha Ltd"}]))

    result = tenanttls("tenants", "import", str(again), "--data", str(data), "--json")

    assert result.returncode == 0
    assert json.loads(result.stdout) == {"added": 0, "updated": 1, "unchanged": 0}


def test_status_json(data):
    result = tenanttls("status", "--data", str(data), "--json")

    document = json.loads(result.stdout)
    assert result.returncode == 0
    assert document["states"] == {"awaiting_consent": 2}
    assert {tenant["tenant_id"] for tenant in document["tenants"]} == {A, B}


def test_status_text_table(data):
    result = tenanttls("status", A, "--data", str(data))

    assert result.returncode == 0
    assert "upgrade not requested" in result.stdout
    assert "1 tenant(s) shown: awaiting_consent 1" in result.stdout
    assert "fleet:" not in result.stdout


def test_status_whole_fleet_summary(data):
    result = tenanttls("status", "--data", str(data))

    assert "fleet: awaiting_consent 2" in result.stdout


def test_tenants_list_header(data):
    result = tenanttls("tenants", "list", "--data", str(data))

    assert result.stdout.splitlines()[0].split() == ["tenant", "initial", "domain", "state", "display", "name"]


def test_status_stopped_tenant(data):
    execute(data, "UPDATE upgrades SET state='needs_attention', resume_state='backup', requested=true, "
                  "last_error='stopped here', next_attempt_at=NULL WHERE tenant_id=:tenant", tenant=A)

    result = tenanttls("status", A, "--data", str(data))

    assert "next attempt (UTC)" in result.stdout
    assert "at backup" in result.stdout
    assert "0/9" not in result.stdout


def test_status_shows_stop_kind(data):
    execute(data, "UPDATE upgrades SET state='needs_attention', resume_state='backup', requested=true, "
                  "last_error='stopped here', stop_kind='safety', next_attempt_at=NULL WHERE tenant_id=:tenant", tenant=A)

    text = tenanttls("status", A, "--data", str(data))
    document = json.loads(tenanttls("status", A, "--data", str(data), "--json").stdout)

    assert "[safety] stopped here" in text.stdout
    assert document["tenants"][0]["stop_kind"] == "safety"
    assert document["tenants"][0]["last_error"] == "stopped here"


def test_status_shows_wait_reason(data):
    reason = "unique name not yet listed by Get-AcceptedDomain"
    execute(data, "UPDATE upgrades SET state='accepted', requested=true, wait_reason=:reason, "
                  "next_attempt_at=CURRENT_TIMESTAMP WHERE tenant_id=:tenant", reason=reason, tenant=A)

    text = tenanttls("status", A, "--data", str(data))
    document = json.loads(tenanttls("status", A, "--data", str(data), "--json").stdout)

    assert f"waiting: {reason}" in text.stdout
    assert document["tenants"][0]["wait_reason"] == reason
    assert document["tenants"][0]["last_error"] is None


def test_status_error_before_wait_reason(data):
    execute(data, "UPDATE upgrades SET state='accepted', requested=true, wait_reason='earlier wait', "
                  "last_error='Exchange timed out', next_attempt_at=CURRENT_TIMESTAMP WHERE tenant_id=:tenant", tenant=A)

    text = tenanttls("status", A, "--data", str(data))

    assert "Exchange timed out" in text.stdout
    assert "waiting:" not in text.stdout


def test_upgrade_unknown_tenant(data):
    result = tenanttls("upgrade", A, UNKNOWN, "--data", str(data))

    assert result.returncode == 3
    assert UNKNOWN in result.stderr
    status = json.loads(tenanttls("status", A, "--data", str(data), "--json").stdout)
    assert status["tenants"][0]["requested"] is False


def test_upgrade_requires_target(data):
    result = tenanttls("upgrade", "--data", str(data))

    assert result.returncode == 2
    assert "--all" in result.stderr


def test_upgrade_then_again(data):
    first = tenanttls("upgrade", A, "--data", str(data), "--json")
    second = tenanttls("upgrade", A, "--data", str(data))

    assert json.loads(first.stdout)["tenants"][0]["outcome"] == "requested"
    assert second.returncode == 0
    assert "already in progress" in second.stdout
    assert second.stdout.count("state awaiting_consent") == 1


def test_upgrade_completed_noop(data):
    execute(data, "UPDATE upgrades SET state='completed', requested=true WHERE tenant_id=:tenant", tenant=A)

    result = tenanttls("upgrade", A, "--data", str(data))

    assert result.returncode == 0
    assert "already completed; nothing to do" in result.stdout


def test_upgrade_all_wave(data):
    result = tenanttls("upgrade", "--all", "--wave", "1", "--data", str(data), "--json")

    document = json.loads(result.stdout)
    assert [item["tenant_id"] for item in document["tenants"]] == [A]
    assert document["deferred"] == [B]


def test_upgrade_wave_names_deferred(data):
    result = tenanttls("upgrade", A, B, "--wave", "1", "--data", str(data))

    assert result.returncode == 0
    assert f"left for a later wave: {B} (run upgrade again)" in result.stdout


def test_rollback_never_upgraded(data):
    result = tenanttls("rollback", A, "--data", str(data))

    assert result.returncode == 6
    assert "never upgraded" in result.stderr


def test_history_json(data):
    tenanttls("upgrade", B, "--data", str(data))

    result = tenanttls("history", B, "--data", str(data), "--json")

    assert [event["action"] for event in json.loads(result.stdout)] == ["tenant.added", "upgrade.requested"]


def test_history_unknown(data):
    result = tenanttls("history", UNKNOWN, "--data", str(data))

    assert result.returncode == 3


def test_newer_schema_rejected(data):
    execute(data, "UPDATE alembic_version SET version_num='9999'")

    result = tenanttls("status", "--data", str(data))

    assert result.returncode == 10
    assert "9999" in result.stderr
    assert "newer" in result.stderr


def test_missing_store(tmp_path, database):
    result = tenanttls("status", "--data", str(tmp_path / "none"))

    assert result.returncode == 10
    assert "tenanttls init" in result.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    "command",
    [["init"], ["tenants", "import"], ["tenants", "list"], ["plan"], ["upgrade"], ["status"], ["rollback"], ["worker"], ["history"], ["demo"]],
)
def test_help_explains(command):
    result = tenanttls(*command, "--help")

    assert result.returncode == 0
    assert "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) > 5


@pytest.mark.parametrize("command", [["worker", "--grace", "24"], ["worker", "--drift-interval", "6"], ["demo", "--grace", "24"]])
def test_duration_needs_unit(command, tmp_path):
    result = tenanttls(*command, "--data", str(tmp_path / "data"))

    assert result.returncode == 2
    assert "invalid duration '" in result.stderr
    assert "add a unit, such as" in result.stderr
    assert not (tmp_path / "data").exists()
