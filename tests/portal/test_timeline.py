"""The timeline: step status from the state, times from the audit trail, the grace period left."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tenanttls.portal.timeline import build_timeline, format_left
from tenanttls.store.audit import AuditEvent

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _moved(before: str, after: str, minutes: int) -> AuditEvent:
    return AuditEvent(tenant_id="t", at=T0 + timedelta(minutes=minutes), actor="worker", action="state",
                      before={"state": before}, after={"state": after})


def test_timeline_marks_done_current_pending():
    events = [_moved("awaiting_consent", "identity", 1), _moved("identity", "domain", 2)]
    entries = build_timeline(state="domain", consented_at=T0, grace_until=None, events=events, now=T0)
    status = {entry.key: entry.status for entry in entries}

    assert status["awaiting_consent"] == "done"
    assert status["identity"] == "done"
    assert status["domain"] == "current"
    assert status["verified"] == "pending"
    assert "completed" not in status


def test_timeline_times_come_from_events():
    events = [_moved("awaiting_consent", "identity", 1), _moved("identity", "domain", 2)]
    entries = {entry.key: entry for entry in build_timeline(state="domain", consented_at=T0, grace_until=None, events=events, now=T0)}

    assert entries["awaiting_consent"].at == T0
    assert entries["identity"].at == T0 + timedelta(minutes=2)
    assert entries["domain"].at is None


def test_timeline_grace_shows_time_left():
    grace_until = T0 + timedelta(hours=23, minutes=30)
    entries = {entry.key: entry for entry in build_timeline(state="grace", consented_at=None, grace_until=grace_until, events=[], now=T0)}
    assert entries["grace"].note.startswith("23 h 30 min left")


def test_timeline_after_rollback_keeps_reached_steps():
    events = [_moved("awaiting_consent", "identity", 1), _moved("identity", "domain", 2), _moved("domain", "rolling_back", 3)]
    entries = {entry.key: entry for entry in build_timeline(state="rolled_back", consented_at=None, grace_until=None, events=events, now=T0)}
    assert entries["awaiting_consent"].status == "done"
    assert entries["identity"].status == "done"
    assert entries["domain"].status == "pending"


def _forward(*states: str, start: int = 0) -> list[AuditEvent]:
    return [_moved(before, after, start + index) for index, (before, after) in enumerate(zip(states, states[1:]))]


def test_timeline_consent_done_before_worker():
    entries = build_timeline(state="awaiting_consent", consented_at=T0, grace_until=None, events=[], now=T0)
    status = {entry.key: entry.status for entry in entries}

    assert entries[0].key == "awaiting_consent"
    assert entries[0].status == "done"
    assert entries[0].at == T0
    assert "current" not in status.values()


def test_timeline_manual_request_not_consent():
    request = AuditEvent(tenant_id="t", at=T0 + timedelta(minutes=5), actor="tenant:a", action="manual.requested",
                         before={"state": "awaiting_consent"}, after={"state": "manual", "contact": "it@contoso.com"})
    entries = build_timeline(state="manual", consented_at=None, grace_until=None, events=[request], now=T0)

    assert entries[0].key == "manual"
    assert entries[0].label == "Manual upgrade requested"
    assert entries[0].at == T0 + timedelta(minutes=5)
    assert [entry.status for entry in entries[1:]] == ["pending"] * 9
    assert entries[1].at is None


def test_timeline_rollback_greys_undone_steps():
    events = _forward("awaiting_consent", "identity", "domain", "accepted", "backup", "connector", "grace", "switched", "verified", "completed")
    events.append(AuditEvent(tenant_id="t", at=T0 + timedelta(minutes=20), actor="tenant:a", action="rollback.requested",
                             before={"state": "completed"}, after={"state": "rolling_back"}))
    events.append(_moved("rolling_back", "rolled_back", 21))
    entries = {entry.key: entry for entry in build_timeline(state="rolled_back", consented_at=T0, grace_until=None, events=events, now=T0)}

    assert entries["accepted"].status == "done"
    for key in ("backup", "connector", "grace", "switched", "verified"):
        assert entries[key].status == "undone", key
        assert entries[key].note == "undone by the rollback", key
    assert entries["rolled_back"].status == "done"
    assert entries["rolled_back"].at == T0 + timedelta(minutes=21)
    assert list(entries)[-1] == "rolled_back"


def test_timeline_new_run_after_rollback():
    events = _forward("awaiting_consent", "identity", "domain", "accepted", "backup", "rolling_back", "rolled_back")
    events.append(_moved("rolled_back", "awaiting_consent", 10))
    events += _forward("awaiting_consent", "identity", start=11)
    entries = {entry.key: entry for entry in build_timeline(state="identity", consented_at=None, grace_until=None, events=events, now=T0)}

    assert entries["awaiting_consent"].at == T0 + timedelta(minutes=11)
    assert entries["identity"].status == "current"
    assert entries["backup"].status == "pending"
    assert "rolled_back" not in entries


def test_timeline_needs_attention_marks_stop():
    events = _forward("awaiting_consent", "identity", "domain", "accepted", "backup", "connector") + [_moved("connector", "needs_attention", 9)]
    entries = {entry.key: entry for entry in build_timeline(
        state="needs_attention", consented_at=T0, grace_until=None, events=events, now=T0, resume_state="connector"
    )}

    assert entries["backup"].status == "done"
    assert entries["connector"].status == "warning"
    assert entries["connector"].at is None
    assert entries["grace"].status == "pending"


def test_timeline_disabled_connector_warns():
    events = _forward("awaiting_consent", "identity", "domain", "accepted", "backup", "connector") + [_moved("connector", "needs_attention", 9)]
    entries = {entry.key: entry for entry in build_timeline(
        state="needs_attention", consented_at=T0, grace_until=None, events=events, now=T0, resume_state="connector",
        connector_disabled=True,
    )}

    assert entries["connector"].status == "warning"
    assert "created it disabled" in entries["connector"].note


def test_format_left_units():
    assert format_left(timedelta(minutes=59)) == "59 min"
    assert format_left(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert format_left(timedelta(seconds=-5)) == "0 min"
