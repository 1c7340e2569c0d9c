"""The upgrade as a timeline: each step with its plain label, status and time.

A state names the work still to do, so a step is done once the tenant's state is
past it on the forward path. The time of a done step comes from the audit trail:
the event that moved the tenant out of that state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from tenanttls.migration.states import FORWARD, UpgradeState

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
    """One step of the timeline: `status` is ``done``, ``current`` or ``pending``."""

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


def _event_state(event: Any, field: str) -> str | None:
    value = getattr(event, field)
    if isinstance(value, Mapping):
        state = value.get("state")
        return str(state) if state else None
    return None


def left_times(events: Iterable[Any]) -> dict[str, datetime]:
    """Return, for each state, the last time an audit event moved the tenant out of it.

    `events` are audit events (`tenanttls.store.audit.AuditEvent`). An event counts
    when its ``before`` names one state and its ``after`` another.
    """
    times: dict[str, datetime] = {}
    for event in events:
        before, after = _event_state(event, "before"), _event_state(event, "after")
        if before and after and before != after:
            times[before] = event.at
    return times


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
) -> list[TimelineEntry]:
    """Return the forward steps with status and time, for a tenant in `state`."""
    try:
        current = UpgradeState(state)
    except ValueError:
        current = None
    position = FORWARD.index(current) if current in FORWARD else None
    times = left_times(events)

    entries = []
    for index, step in enumerate(FORWARD[:-1]):
        if position is None:
            status = "done" if step.value in times else "pending"
        elif index < position:
            status = "done"
        elif index == position:
            status = "current"
        else:
            status = "pending"

        at = times.get(step.value)
        if step is UpgradeState.AWAITING_CONSENT and consented_at is not None:
            at = consented_at
        entries.append(TimelineEntry(step.value, STEP_LABELS[step], status, at if status == "done" else None, _note(step, status, grace_until, now)))
    return entries


def _note(step: UpgradeState, status: str, grace_until: datetime | None, now: datetime) -> str:
    if step is not UpgradeState.GRACE or grace_until is None:
        return ""
    if status == "current":
        return f"{format_left(grace_until - now)} left (ends {grace_until:%Y-%m-%d %H:%M} UTC)"
    if status == "done":
        return f"ended {grace_until:%Y-%m-%d %H:%M} UTC"
    return ""
