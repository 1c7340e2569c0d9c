"""The upgrade as a timeline: each step with its plain label, status and time.

A state names the work still to do, so a step is done once the tenant's state is
past it on the forward path. The time of a done step comes from the audit trail:
the event that moved the tenant from that state to a later one on the forward path.
A rollback, a request for the manual upgrade and a pause for the provider's team
show as their own entries, and the steps a rollback undid are marked so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from tenanttls.migration.states import FORWARD, UpgradeState
from tenanttls.portal.rendering import format_time

STEP_LABELS = {
    UpgradeState.AWAITING_CONSENT: "Permissions granted",
    UpgradeState.IDENTITY: "Unique certificate name issued",
    UpgradeState.DOMAIN: "Domain added and verified",
    UpgradeState.ACCEPTED: "Domain accepted by Exchange Online",
    UpgradeState.BACKUP: "Current connector renamed to -BACKUP",
    UpgradeState.CONNECTOR: "New connector created",
    UpgradeState.GRACE: "Grace period",
    UpgradeState.SWITCHED: "Our servers switched to your certificate",
    UpgradeState.VERIFIED: "Mail flow verified",
}

STATE_SUMMARIES = {
    "awaiting_consent": "Waiting for an administrator to grant the permissions.",
    "identity": "Issuing your unique certificate name.",
    "domain": "Adding and verifying the domain in your tenant.",
    "accepted": "Waiting for Exchange Online to list the new accepted domain.",
    "backup": "Saving and renaming your current connector.",
    "connector": "Creating the new connector.",
    "grace": "Grace period: both connectors are active while the change reaches all of Microsoft's servers.",
    "switched": "Our servers now present your certificate; checking mail flow.",
    "verified": "Mail flow verified; finishing.",
    "completed": "Upgrade completed. The backup connector is kept in case a rollback is needed.",
    "rolling_back": "Rolling back to your previous connector.",
    "rolled_back": "Rolled back: your previous connector is active again.",
    "needs_attention": "Paused: the provider's team is looking at a problem.",
    "manual": "Handed to support for a manual upgrade.",
}


@dataclass(frozen=True)
class TimelineEntry:
    """One entry of the timeline.

    `status` is ``done``, ``current``, ``pending``, ``warning`` (a step that stopped or
    needs Microsoft support) or ``undone`` (a step a rollback reverted).
    """

    key: str
    label: str
    status: str
    at: datetime | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "status": self.status,
            "at": self.at.isoformat() if self.at else None,
            "note": self.note,
        }


# Steps whose changes a rollback reverts. The unique name, its certificate and the accepted
# domain stay, and a later upgrade reuses them.
UNDONE_BY_ROLLBACK = frozenset(
    {UpgradeState.BACKUP, UpgradeState.CONNECTOR, UpgradeState.GRACE, UpgradeState.SWITCHED, UpgradeState.VERIFIED}
)
MANUAL_REQUESTED = "manual.requested"
ROLLBACK_REQUESTED = "rollback.requested"


def _event_state(event: Any, field: str) -> str | None:
    value = getattr(event, field)
    if isinstance(value, Mapping):
        state = value.get("state")
        return str(state) if state else None
    return None


def _forward_index(state: str | None) -> int | None:
    try:
        return FORWARD.index(UpgradeState(state))
    except ValueError:
        return None


def forward_times(events: Iterable[Any]) -> dict[str, datetime]:
    """Return, for each state, the last time an audit event moved the tenant from it to a later forward state.

    `events` are audit events (`tenanttls.store.audit.AuditEvent`). Moves to
    needs_attention, manual or rolling_back do not count: the step was not done.
    """
    times: dict[str, datetime] = {}
    for event in events:
        before, after = _event_state(event, "before"), _event_state(event, "after")
        start, end = _forward_index(before), _forward_index(after)
        if start is not None and end is not None and end > start:
            times[str(before)] = event.at
    return times


def _is_rollback_end(event: Any) -> bool:
    return _event_state(event, "before") == UpgradeState.ROLLING_BACK.value and _event_state(event, "after") == UpgradeState.ROLLED_BACK.value


def run_events(events: Iterable[Any], state: str) -> list[Any]:
    """Return the events of the run the page shows, in order.

    A finished rollback ends a run. While the tenant is rolled back, the page shows
    the run that the rollback ended; otherwise it shows the run after the last rollback.
    """
    events = list(events)
    ends = [index for index, event in enumerate(events) if _is_rollback_end(event)]
    if state == UpgradeState.ROLLED_BACK.value and ends:
        start = ends[-2] + 1 if len(ends) > 1 else 0
        return events[start : ends[-1] + 1]
    return events[ends[-1] + 1 :] if ends else events


def format_left(delta: timedelta) -> str:
    """Return a time span as "5 h 12 min" (minutes when under an hour)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def build_timeline(
    *,
    state: str,
    consented_at: datetime | None,
    grace_until: datetime | None,
    events: Iterable[Any],
    now: datetime,
    resume_state: str | None = None,
    connector_disabled: bool = False,
) -> list[TimelineEntry]:
    """Return the forward steps with status and time, plus the rollback or manual-request entry.

    `resume_state` is the step a tenant in needs_attention stopped at. `connector_disabled`
    is True when the new connector exists but Exchange keeps it disabled.
    """
    run = run_events(events, state)
    times = forward_times(run)
    consent_at = consented_at or times.get(UpgradeState.AWAITING_CONSENT.value)
    statuses = _statuses(state, resume_state, times, consent_at is not None)

    entries = []
    for step, status in statuses:
        at = consent_at if step is UpgradeState.AWAITING_CONSENT else times.get(step.value)
        note = _note(step, status, state, grace_until, now)
        if step is UpgradeState.CONNECTOR and connector_disabled and status in ("current", "warning", "done"):
            status, note = "warning", "Exchange created it disabled; Microsoft support must enable it"
        entries.append(TimelineEntry(step.value, STEP_LABELS[step], status, at if status in ("done", "undone") else None, note))

    extra = _extra_entry(state, run)
    if extra is not None:
        reached = [index for index, entry in enumerate(entries) if entry.status in ("done", "undone", "warning")]
        entries.insert(reached[-1] + 1 if reached else 0, extra)
    return entries


def _statuses(state: str, resume_state: str | None, times: Mapping[str, datetime], consented: bool) -> list[tuple[UpgradeState, str]]:
    """Return each forward step with its status for a tenant in `state`."""
    position = _forward_index(state)
    stopped = _forward_index(resume_state) if state == UpgradeState.NEEDS_ATTENTION.value else None
    if stopped is not None:
        return [(step, _by_position(index, stopped, "warning")) for index, step in enumerate(FORWARD[:-1])]

    result = []
    for index, step in enumerate(FORWARD[:-1]):
        if step is UpgradeState.AWAITING_CONSENT and consented:
            status = "done"
        elif position is not None:
            status = _by_position(index, position, "current")
        else:
            status = "done" if step.value in times else "pending"
        if status == "done" and step in UNDONE_BY_ROLLBACK and state in (UpgradeState.ROLLING_BACK.value, UpgradeState.ROLLED_BACK.value):
            status = "undone"
        result.append((step, status))

    # Right after the consent the state is still awaiting_consent, so no step is current yet.
    if state == UpgradeState.AWAITING_CONSENT.value and consented:
        result = [(step, "pending" if status == "current" else status) for step, status in result]
    return result


def _by_position(index: int, position: int, at_position: str) -> str:
    """Return ``done`` before `position`, `at_position` at it and ``pending`` after it."""
    if index < position:
        return "done"
    if index == position:
        return at_position
    return "pending"


def _extra_entry(state: str, run: list[Any]) -> TimelineEntry | None:
    """Return the entry for a rollback or a manual request, or None in other states."""
    if state == UpgradeState.ROLLED_BACK.value:
        ended = [event.at for event in run if _is_rollback_end(event)]
        return TimelineEntry("rolled_back", "Rolled back", "done", ended[-1] if ended else None, "your previous connector is active again")
    if state == UpgradeState.ROLLING_BACK.value:
        requested = [event.at for event in run if event.action == ROLLBACK_REQUESTED]
        note = f"requested {format_time(requested[-1])}" if requested else ""
        return TimelineEntry("rolling_back", "Rolling back", "current", None, note)
    if state == UpgradeState.MANUAL.value:
        requested = [event.at for event in run if event.action == MANUAL_REQUESTED]
        return TimelineEntry(
            "manual", "Manual upgrade requested", "done", requested[-1] if requested else None,
            "support makes the remaining changes with you",
        )
    return None


def _note(step: UpgradeState, status: str, state: str, grace_until: datetime | None, now: datetime) -> str:
    if status == "undone":
        return "undone by the rollback" if state == UpgradeState.ROLLED_BACK.value else "being undone by the rollback"
    if status == "warning":
        return "paused here: the provider's team is looking at it"
    if step is not UpgradeState.GRACE or grace_until is None:
        return ""
    if status == "current":
        return f"{format_left(grace_until - now)} left (ends {format_time(grace_until)})"
    if status == "done":
        return f"ended {format_time(grace_until)}"
    return ""
