from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tenanttls.errors import InvalidInput, NotFoundError, UpgradeStateError
from tenanttls.migration.safety import Overrides
from tenanttls.migration.service import fleet_status, history, import_tenants, request_rollback, request_upgrades
from tenanttls.store.relay_assignments import find_assignment
from tenanttls.store.upgrades import get_upgrade, update_upgrade

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
A = "11111111-2222-4333-8444-555555555555"
B = "22222222-2222-4333-8444-555555555555"
C = "33333333-2222-4333-8444-555555555555"


@pytest.fixture
def fleet(store, tmp_path):
    path = tmp_path / "tenants.csv"
    path.write_text(
        "tenant_id,initial_domain,display_name\n"
        f"{A},alpha.onmicrosoft.com,Alpha\n{B},beta.onmicrosoft.com,Beta\n{C},gamma.onmicrosoft.com,Gamma\n",
        encoding="utf-8",
    )
    import_tenants(store, path, legacy_certificate_name="*.crossware.co.nz", now=NOW, actor="test")
    return store


def _state(store, tenant_id: str):
    with store.engine.connect() as connection:
        return get_upgrade(connection, tenant_id)


def _set(store, tenant_id: str, **values):
    with store.write() as connection:
        update_upgrade(connection, tenant_id, owner=None, **values)


def test_import_creates_rows(fleet):
    with fleet.engine.connect() as connection:
        assignment = find_assignment(connection, A)

    assert _state(fleet, A).state == "awaiting_consent"
    assert _state(fleet, A).requested is False
    assert assignment.mode == "legacy"
    assert assignment.certificate_name == "*.crossware.co.nz"


def test_import_again_unchanged(fleet, tmp_path):
    summary = import_tenants(fleet, tmp_path / "tenants.csv", legacy_certificate_name="*.crossware.co.nz", now=NOW, actor="test")

    assert summary.to_json() == {"added": 0, "updated": 0, "unchanged": 3}


def test_import_update_audits_before(fleet, tmp_path):
    path = tmp_path / "renamed.csv"
    path.write_text(f"tenant_id,initial_domain,display_name\n{A},alpha.onmicrosoft.com,Alpha Ltd\n", encoding="utf-8")

    import_tenants(fleet, path, legacy_certificate_name="*.crossware.co.nz", now=NOW, actor="test")

    event = history(fleet, A)[-1]
    assert event.action == "tenant.updated"
    assert event.before == {"initial_domain": "alpha.onmicrosoft.com", "display_name": "Alpha"}
    assert event.after == {"initial_domain": "alpha.onmicrosoft.com", "display_name": "Alpha Ltd"}


def test_import_bad_file_changes_nothing(store, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(f"tenant_id,initial_domain\n{A},alpha.onmicrosoft.com\n{B},beta.example\n", encoding="utf-8")

    with pytest.raises(InvalidInput):
        import_tenants(store, path, legacy_certificate_name="*.crossware.co.nz", now=NOW, actor="test")

    assert fleet_status(store) == []


def test_upgrade_requested(fleet):
    [result] = request_upgrades(fleet, [A], now=NOW, actor="test")

    upgrade = _state(fleet, A)
    assert result.outcome == "requested"
    assert upgrade.requested is True
    assert upgrade.next_attempt_at == NOW
    assert upgrade.run_id


def test_upgrade_unknown_changes_nothing(fleet):
    with pytest.raises(NotFoundError) as error:
        request_upgrades(fleet, [A, "99999999-2222-4333-8444-555555555555"], now=NOW, actor="test")

    assert "99999999-2222-4333-8444-555555555555" in str(error.value)
    assert _state(fleet, A).requested is False


def test_upgrade_completed_is_noop(fleet):
    _set(fleet, A, state="completed", requested=True)

    [result] = request_upgrades(fleet, [A], now=NOW, actor="test")

    assert result.outcome == "unchanged"
    assert "already completed" in result.message
    assert _state(fleet, A).state == "completed"


def test_upgrade_in_progress_noop(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    run_id = _state(fleet, A).run_id

    [result] = request_upgrades(fleet, [A], now=NOW + timedelta(minutes=1), actor="test")

    assert result.outcome == "unchanged"
    assert "in progress" in result.message
    assert _state(fleet, A).run_id == run_id


def test_upgrade_resumes_with_override(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    _set(fleet, A, state="needs_attention", resume_state="backup", last_error="gate", stop_kind="safety", next_attempt_at=None)

    [result] = request_upgrades(fleet, [A], overrides=Overrides(force_backup_overwrite=True), now=NOW, actor="test")

    upgrade = _state(fleet, A)
    assert result.outcome == "resumed"
    assert upgrade.state == "backup"
    assert upgrade.last_error is None
    assert upgrade.stop_kind is None
    assert upgrade.overrides == {"force_backup_overwrite": True}


def test_upgrade_after_rollback_new_run(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    first = _state(fleet, A).run_id
    _set(fleet, A, state="rolled_back", next_attempt_at=None)

    [result] = request_upgrades(fleet, [A], now=NOW, actor="test")

    assert result.outcome == "restarted"
    assert _state(fleet, A).state == "awaiting_consent"
    assert _state(fleet, A).run_id != first


def test_upgrade_all_with_wave(fleet):
    results = request_upgrades(fleet, None, wave=2, now=NOW, actor="test")

    assert [(result.tenant_id, result.outcome) for result in results] == [(A, "requested"), (B, "requested"), (C, "deferred")]
    assert _state(fleet, C).requested is False


def test_upgrade_all_skips_started(fleet):
    request_upgrades(fleet, None, wave=2, now=NOW, actor="test")

    results = request_upgrades(fleet, None, wave=2, now=NOW, actor="test")

    assert [result.tenant_id for result in results] == [C]


def test_rollback_never_upgraded(fleet):
    with pytest.raises(UpgradeStateError) as error:
        request_rollback(fleet, A, now=NOW, actor="test")

    assert "never upgraded" in str(error.value)
    assert _state(fleet, A).state == "awaiting_consent"


def test_rollback_unknown_tenant(fleet):
    with pytest.raises(NotFoundError):
        request_rollback(fleet, "99999999-2222-4333-8444-555555555555", now=NOW, actor="test")


def test_rollback_requested(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    _set(fleet, A, state="grace")

    result = request_rollback(fleet, A, now=NOW, actor="test")

    assert result.outcome == "requested"
    assert _state(fleet, A).state == "rolling_back"
    assert _state(fleet, A).next_attempt_at == NOW


def test_rollback_clears_stop_kind(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    _set(fleet, A, state="needs_attention", resume_state="backup", last_error="gate", stop_kind="safety", next_attempt_at=None)

    request_rollback(fleet, A, now=NOW, actor="test")

    upgrade = _state(fleet, A)
    assert upgrade.state == "rolling_back"
    assert upgrade.last_error is None
    assert upgrade.stop_kind is None


def test_rollback_twice_noop(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    _set(fleet, A, state="rolled_back")

    result = request_rollback(fleet, A, now=NOW, actor="test")

    assert result.outcome == "unchanged"
    assert "already rolled back" in result.message


def test_status_unknown_tenant(fleet):
    with pytest.raises(NotFoundError):
        fleet_status(fleet, ["99999999-2222-4333-8444-555555555555"])


def test_status_json(fleet):
    request_upgrades(fleet, [B], now=NOW, actor="test")

    [status] = fleet_status(fleet, [B])

    document = status.to_json()
    assert document["state"] == "awaiting_consent"
    assert document["requested"] is True
    assert document["relay_mode"] == "legacy"
    assert document["progress"] == 0
    assert document["stop_kind"] is None


def test_status_json_stop_kind(fleet):
    request_upgrades(fleet, [B], now=NOW, actor="test")
    _set(fleet, B, state="needs_attention", resume_state="domain", last_error="consent is missing", stop_kind="consent")

    [status] = fleet_status(fleet, [B])

    document = status.to_json()
    assert document["state"] == "needs_attention"
    assert document["stop_kind"] == "consent"
    assert document["last_error"] == "consent is missing"


def test_history_lists_actions(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")

    actions = [event.action for event in history(fleet, A)]

    assert actions == ["tenant.added", "upgrade.requested"]


def test_history_unknown_tenant(fleet):
    with pytest.raises(NotFoundError):
        history(fleet, "99999999-2222-4333-8444-555555555555")


def test_upgrade_all_skips_rolled_back(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    _set(fleet, A, state="rolled_back", next_attempt_at=None)

    results = request_upgrades(fleet, None, now=NOW, actor="test")

    assert [result.tenant_id for result in results] == [B, C]
    assert _state(fleet, A).state == "rolled_back"


def test_upgrade_again_makes_waiting_tenant_due(fleet):
    request_upgrades(fleet, [A], now=NOW, actor="test")
    with fleet.write() as connection:
        update_upgrade(connection, A, owner=None, next_attempt_at=NOW + timedelta(hours=1))

    [result] = request_upgrades(fleet, [A], now=NOW + timedelta(minutes=1), actor="test")

    assert "checks it again now" in result.message
    assert _state(fleet, A).next_attempt_at == NOW + timedelta(minutes=1)
    assert history(fleet, A)[-1].action == "upgrade.due_now"
