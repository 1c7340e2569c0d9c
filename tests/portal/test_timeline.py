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
    events = [_moved("awaiting_consent", "identity", 1), _moved("identity", "rolling_back", 2)]
    entries = {entry.key: entry for entry in build_timeline(state="rolled_back", consented_at=None, grace_until=None, events=events, now=T0)}
    assert entries["awaiting_consent"].status == "done"
    assert entries["identity"].status == "done"
    assert entries["domain"].status == "pending"


def test_format_left_units():
    assert format_left(timedelta(minutes=59)) == "59 min"
    assert format_left(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert format_left(timedelta(seconds=-5)) == "0 min"
