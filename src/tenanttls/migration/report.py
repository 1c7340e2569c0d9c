"""Per-tenant and fleet reports from the store: final state, API calls, time spent in each state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenanttls.migration.states import TERMINAL, UpgradeState
from tenanttls.store.audit import AuditEvent, list_events_for
from tenanttls.store.db import Store
from tenanttls.store.tenants import list_tenants
from tenanttls.store.upgrades import list_upgrades

_START_ACTIONS = ("upgrade.requested", "upgrade.resumed", "upgrade.restarted", "rollback.requested")


@dataclass
class TenantReport:
    """The outcome of one tenant's upgrade: state, API calls and time spent in each state."""

    tenant_id: str
    display_name: str
    state: str
    api_calls: int
    seconds_in_state: dict[str, float]
    last_error: str | None = None
    stop_kind: str | None = None
    wait_reason: str | None = None
    note: str = ""
    simulator_calls: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "display_name": self.display_name,
            "state": self.state,
            "api_calls": self.api_calls,
            "simulator_requests": self.simulator_calls,
            "seconds_in_state": {state: round(seconds, 3) for state, seconds in self.seconds_in_state.items()},
            "last_error": self.last_error,
            "stop_kind": self.stop_kind,
            "wait_reason": self.wait_reason,
            "note": self.note,
        }


@dataclass
class FleetReport:
    """The fleet's outcome: counts per state and totals."""

    tenants: list[TenantReport]
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tenant in self.tenants:
            counts[tenant.state] = counts.get(tenant.state, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        completed = [tenant for tenant in self.tenants if tenant.state == UpgradeState.COMPLETED.value]
        calls = [tenant.api_calls for tenant in completed]
        return {
            "tenants": [tenant.to_json() for tenant in self.tenants],
            "fleet": {
                "tenants": len(self.tenants),
                "states": self.counts(),
                "wall_seconds": round(self.wall_seconds, 2),
                "completed_per_minute": round(len(completed) / self.wall_seconds * 60, 1) if self.wall_seconds else None,
                "api_calls_total": sum(tenant.api_calls for tenant in self.tenants),
                "api_calls_per_completed_tenant": round(sum(calls) / len(calls), 1) if calls else None,
                **self.extra,
            },
        }


def seconds_in_states(events: list[AuditEvent], now: datetime) -> dict[str, float]:
    """Return the seconds spent in each state, from the tenant's state-change audit events.

    The clock starts at the first upgrade (or rollback) request, and a later request
    (such as a resume) ends the state it leaves. The current state counts until `now`
    unless it is terminal; needs_attention counts, because it waits for an operator.
    """
    durations: dict[str, float] = {}
    current: str | None = None
    entered: datetime | None = None
    for event in events:
        if event.action in _START_ACTIONS and current is None:
            current = (event.after or {}).get("state")
            entered = event.at
        elif (event.action == "state" or event.action in _START_ACTIONS) and event.after and "state" in event.after:
            if current is not None and entered is not None:
                durations[current] = durations.get(current, 0.0) + (event.at - entered).total_seconds()
            current = event.after.get("state")
            entered = event.at
    if current is None or entered is None:
        return durations

    # A tenant in needs_attention waits for an operator, so that time counts too.
    state = UpgradeState(current)
    if state not in TERMINAL or state is UpgradeState.NEEDS_ATTENTION:
        durations[current] = durations.get(current, 0.0) + (now - entered).total_seconds()
    return durations


def fleet_report(store: Store, now: datetime, wall_seconds: float) -> FleetReport:
    """Build the report of every tenant in the store."""
    with store.engine.connect() as connection:
        tenants = list_tenants(connection)
        upgrades = {upgrade.tenant_id: upgrade for upgrade in list_upgrades(connection)}
        events = list_events_for(connection, [tenant.tenant_id for tenant in tenants], actions=(*_START_ACTIONS, "state"))

    reports = []
    for tenant in tenants:
        upgrade = upgrades[tenant.tenant_id]
        reports.append(
            TenantReport(
                tenant_id=tenant.tenant_id,
                display_name=tenant.display_name,
                state=upgrade.state,
                api_calls=upgrade.api_calls,
                seconds_in_state=seconds_in_states(events[tenant.tenant_id], now),
                last_error=upgrade.last_error,
                stop_kind=upgrade.stop_kind,
                wait_reason=upgrade.wait_reason,
            )
        )
    return FleetReport(reports, wall_seconds)
