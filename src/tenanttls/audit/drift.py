"""Drift: where a completed tenant no longer matches what the upgrade set up, and its repair.

`compare_tenant` is pure: it compares what Exchange, Graph and the store show now
(`LiveTenant`) with what the engine set up, field by field after normalising
Exchange's forms, and returns `DriftItem`s. `check_tenant` reads the live state
through the engine's clients, records drift as an audit event and, when asked,
repairs it through the engine's planner, safety gate and applier.
`check_completed_tenants` is the workers' scheduled pass: the workers sharing a
store claim due tenants through `tenanttls.store.drift_checks`, so each completed
tenant is checked about once per drift interval by one of them.

Audit events: ``drift.detected`` when a check finds drift; ``drift.repaired`` when a
repair left nothing; ``drift.partially_repaired`` when something remains after a
repair or the repair failed part-way; ``drift.cleared`` when a later check finds no
drift while drift was open.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from tenanttls.domain.exchange import AcceptedDomain, ConnectorSettings, InboundConnector
from tenanttls.domain.graph import Domain
from tenanttls.errors import NotFound, NotFoundError, TenantTlsError, UpgradeStateError
from tenanttls.migration.context import CountingApi, EngineContext
from tenanttls.migration.planner import (
    SNAPSHOT_BEFORE_RENAME,
    Desired,
    desired_connector,
    is_accepted,
    is_ours,
    plan_connectors,
    plan_domain,
    stamp_comment,
)
from tenanttls.migration.recorder import Recorder
from tenanttls.migration.safety import Overrides, raise_for
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.audit import AuditEvent, list_events, record_event
from tenanttls.store.drift_checks import DriftClaim, claim_drift_checks, release_drift_claims
from tenanttls.store.snapshots import find_snapshot
from tenanttls.store.upgrades import get_upgrade, list_upgrades

logger = logging.getLogger(__name__)

DRIFT_DETECTED = "drift.detected"
DRIFT_CLEARED = "drift.cleared"
DRIFT_REPAIRED = "drift.repaired"
DRIFT_PARTIALLY_REPAIRED = "drift.partially_repaired"
DRIFT_ACTIONS = (DRIFT_DETECTED, DRIFT_CLEARED, DRIFT_REPAIRED, DRIFT_PARTIALLY_REPAIRED)


@dataclass(frozen=True)
class DriftItem:
    """One field that differs from what the upgrade set up."""

    subject: str  # "connector", "accepted domain", "graph domain" or "relay"
    name: str  # the object: connector name, domain name, tenant id
    field: str
    expected: Any
    actual: Any

    def describe(self) -> str:
        """Return the item in words, such as ``connector X: RequireTls is $false, expected $true``."""
        where = f"{self.subject} {self.name}"
        if self.field == "present":
            return f"{where}: missing, expected present"
        if self.field == "isVerified":
            return f"{where}: not verified (isVerified is false), expected verified"
        if self.field == "assignment":
            return f"{where}: no relay assignment, expected mode {self.expected!r}"
        return f"{where}: {self.field} is {_show(self.actual)}, expected {_show(self.expected)}"

    def to_json(self) -> dict[str, Any]:
        """Return the item as JSON types."""
        return {
            "subject": self.subject,
            "name": self.name,
            "field": self.field,
            "expected": _jsonable(self.expected),
            "actual": _jsonable(self.actual),
        }


def _show(value: Any) -> str:
    # Booleans as Exchange PowerShell writes them in Set-InboundConnector.
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if value is None:
        return "empty"
    return repr(value) if isinstance(value, str) else str(value)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class LiveTenant:
    """The live state of one tenant: Exchange and Graph objects and the store's relay assignment."""

    connectors: list[InboundConnector]
    accepted_domains: list[AcceptedDomain]
    graph_domain: Domain | None
    relay: relay_assignments.RelayAssignment | None


@dataclass(frozen=True)
class Expected:
    """The upgrade's end state: the new connector's settings and the unique name the relay presents."""

    connector: ConnectorSettings
    unique_name: str


def compare_tenant(live: LiveTenant, expected: Expected) -> list[DriftItem]:
    """Return every difference between `live` and `expected`; an empty list means no drift."""
    items: list[DriftItem] = []
    items += _connector_drift(live.connectors, expected.connector)
    items += _domain_drift(live, expected.unique_name)
    items += _relay_drift(live.relay, expected.unique_name)
    return items


def _connector_drift(connectors: list[InboundConnector], desired: ConnectorSettings) -> list[DriftItem]:
    name = desired.name
    connector = next((c for c in connectors if c.name.lower() == name.lower()), None)
    if connector is None:
        return [DriftItem("connector", name, "present", True, False)]

    items = []
    if not is_ours(connector):
        items.append(DriftItem("connector", name, "Comment", "tenanttls ownership marker", connector.comment))
    differences = desired.differences(connector)
    differences.pop("Name", None)  # Exchange compares names case-insensitively
    for field_name, (actual, wanted) in differences.items():
        items.append(DriftItem("connector", name, field_name, wanted, actual))
    return items


def _domain_drift(live: LiveTenant, unique_name: str) -> list[DriftItem]:
    items = []
    if not is_accepted(unique_name, live.accepted_domains):
        items.append(DriftItem("accepted domain", unique_name, "present", True, False))
    if live.graph_domain is None:
        items.append(DriftItem("graph domain", unique_name, "present", True, False))
    elif not live.graph_domain.is_verified:
        items.append(DriftItem("graph domain", unique_name, "isVerified", True, False))
    return items


def _relay_drift(relay: relay_assignments.RelayAssignment | None, unique_name: str) -> list[DriftItem]:
    if relay is None:
        return [DriftItem("relay", unique_name, "assignment", relay_assignments.UNIQUE, None)]
    items = []
    if relay.mode != relay_assignments.UNIQUE:
        items.append(DriftItem("relay", unique_name, "mode", relay_assignments.UNIQUE, relay.mode))
    if relay.certificate_name.lower() != unique_name.lower():
        items.append(DriftItem("relay", unique_name, "certificate_name", unique_name.lower(), relay.certificate_name))
    return items


@dataclass(frozen=True)
class DriftReport:
    """The drift of one tenant at one check, and what a repair did."""

    tenant_id: str
    checked_at: datetime
    items: tuple[DriftItem, ...]
    repaired: tuple[str, ...] = ()
    remaining: tuple[DriftItem, ...] = field(default=())

    @property
    def drifted(self) -> bool:
        """True when the check found any difference."""
        return bool(self.items)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON types."""
        return {
            "tenant_id": self.tenant_id,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "drifted": self.drifted,
            "items": [item.to_json() for item in self.items],
            "repaired": list(self.repaired),
            "remaining": [item.to_json() for item in self.remaining],
        }


def completed_tenants(context: EngineContext) -> list[str]:
    """Return the ids of tenants whose upgrade is completed, the ones drift applies to."""
    with context.store.engine.connect() as connection:
        upgrades = list_upgrades(connection)
    return sorted(u.tenant_id for u in upgrades if u.state == UpgradeState.COMPLETED.value)


DriftCallback = Callable[[str, list[DriftItem]], None]
RepairCallback = Callable[[str, str], None]


def check_tenant(
    context: EngineContext,
    tenant_id: str,
    *,
    repair: bool = False,
    actor: str | None = None,
    on_drift: DriftCallback | None = None,
    on_repair: RepairCallback | None = None,
) -> DriftReport:
    """Compare one completed tenant with what the upgrade set up; record and optionally repair drift.

    Steps: read the live state (a failed read raises, it is never taken as drift);
    compare; record ``drift.detected`` (or ``drift.cleared`` after earlier drift);
    with `repair`, apply the engine's plan behind its safety gate, then read and
    compare again. `on_drift(tenant_id, items)` is called when drift is found, and
    `on_repair(tenant_id, line)` after each change is applied, so a caller can show
    progress before a later step fails. A repair that fails part-way records
    ``drift.partially_repaired`` with what was applied, then raises the error.
    Raises `UpgradeStateError` for a tenant that is not completed.
    """
    upgrade = _completed_upgrade(context, tenant_id)
    tenant_id = upgrade.tenant_id
    api = CountingApi(context)
    expected, snapshot = _expected(context, tenant_id, upgrade.run_id)
    live = read_live(context, api, tenant_id, expected.unique_name)
    items = compare_tenant(live, expected)
    now = context.clock.now()
    _record(context, tenant_id, items, now, actor)
    if items and on_drift is not None:
        on_drift(tenant_id, items)

    if not repair or not items:
        return DriftReport(tenant_id, now, tuple(items))

    repaired: list[str] = []

    def applied(line: str) -> None:
        repaired.append(line)
        if on_repair is not None:
            on_repair(tenant_id, line)

    try:
        repair_tenant(context, api, tenant_id, upgrade.run_id, live, expected, snapshot, actor, on_repair=applied)
        remaining = compare_tenant(read_live(context, api, tenant_id, expected.unique_name), expected)
    except TenantTlsError as error:
        _record_repair(context, tenant_id, items, repaired, None, actor, error=error)
        raise
    _record_repair(context, tenant_id, items, repaired, remaining, actor)
    return DriftReport(tenant_id, now, tuple(items), tuple(repaired), tuple(remaining))


@dataclass(frozen=True)
class DriftPass:
    """Counts of one scheduled drift check over the completed tenants."""

    checked: int
    drifted: int
    failed: int


# How often each worker looks for completed tenants whose drift check is due. A look is
# one small query, and a tenant waits at most this long after it becomes due.
DRIFT_POLL_SECONDS = 60.0

# Tenants a worker claims at once. Small, so that workers looking at the same time
# share the due tenants, and a worker that crashes delays few checks by an interval.
DRIFT_CLAIM_BATCH = 10


def check_completed_tenants(
    context: EngineContext,
    *,
    interval: timedelta,
    stop: threading.Event | None = None,
    actor: str = "worker:drift",
    batch: int = DRIFT_CLAIM_BATCH,
) -> DriftPass:
    """Check the completed tenants that no worker checked within `interval`, without repairing drift.

    Steps: claim up to `batch` due tenants in the store, stamping them so that the
    other workers sharing the store skip them. Check each one and record what is
    found. Repeat until no tenant is due. A tenant checked in this pass is not due
    again in it, so a pass ends even when it lasts longer than `interval`. A tenant whose
    check fails (Microsoft unreachable, consent revoked, state changed since the
    claim) is logged with its error and skipped, and it is due again after `interval`.
    When `stop` is set, the pass restores the claims it has not checked and returns.
    """
    if interval <= timedelta(0):
        raise ValueError(f"invalid drift interval {interval}: use a positive interval, or do not schedule the drift check")

    cutoff = context.clock.now() - interval
    counts: Counter[str] = Counter()
    while stop is None or not stop.is_set():
        claims = claim_drift_checks(context.store, cutoff, context.clock.now(), batch)
        if not claims:
            break
        _check_claims(context, claims, counts, stop, actor)

    # Workers run a pass every DRIFT_POLL_SECONDS and most find nothing due, so only a pass with checks logs at INFO.
    level = logging.INFO if sum(counts.values()) else logging.DEBUG
    logger.log(
        level, "drift pass finished: checked=%d drifted=%d failed=%d",
        counts["checked"], counts["drifted"], counts["failed"],
    )
    return DriftPass(counts["checked"], counts["drifted"], counts["failed"])


def _check_claims(
    context: EngineContext, claims: list[DriftClaim], counts: Counter[str], stop: threading.Event | None, actor: str
) -> None:
    """Check each claimed tenant and count the outcome. When `stop` is set, restore the claims not yet checked."""
    for index, claim in enumerate(claims):
        if stop is not None and stop.is_set():
            release_drift_claims(context.store, claims[index:])
            return

        try:
            report = check_tenant(context, claim.tenant_id, actor=actor)
        except TenantTlsError as error:
            counts["failed"] += 1
            logger.warning("drift check failed: tenant=%s error=%s", claim.tenant_id, error)
            continue

        counts["checked"] += 1
        if report.items:
            counts["drifted"] += 1


def _completed_upgrade(context: EngineContext, tenant_id: str):  # type: ignore[no-untyped-def]
    with context.store.engine.connect() as connection:
        upgrade = get_upgrade(connection, tenant_id.strip().lower())
    if upgrade.state != UpgradeState.COMPLETED.value:
        raise UpgradeStateError(
            f"tenant {upgrade.tenant_id} is in state {upgrade.state}; drift is checked only for completed "
            f"upgrades (see 'tenanttls status {upgrade.tenant_id}')"
        )
    return upgrade


def _expected(context: EngineContext, tenant_id: str, run_id: str | None) -> tuple[Expected, InboundConnector | None]:
    """Return what the upgrade set up, and the original connector's snapshot when stored."""
    try:
        unique_name = context.identities.get(tenant_id).name
    except NotFoundError as error:
        raise NotFoundError(f"tenant {tenant_id} has no unique name in the store, so there is nothing to compare") from error

    with context.store.engine.connect() as connection:
        saved = find_snapshot(connection, tenant_id, run_id=run_id, reason=SNAPSHOT_BEFORE_RENAME)
    snapshot = InboundConnector.from_exchange(saved.connector) if saved is not None else None
    desired = _desired(context, unique_name, run_id)
    cloud_services = snapshot.cloud_services_mail_enabled if snapshot is not None else True
    return Expected(desired_connector(desired, cloud_services), unique_name.lower()), snapshot


def _desired(context: EngineContext, unique_name: str, run_id: str | None, overrides: Overrides = Overrides()) -> Desired:
    settings = context.settings
    return Desired(
        connector_name=settings.connector_name,
        legacy_certificate_name=settings.legacy_certificate_name,
        zone=settings.provider_zone,
        unique_name=unique_name,
        comment=stamp_comment(context.version, run_id or "-", context.clock.now()),
        overrides=overrides,
    )


def read_live(context: EngineContext, api: CountingApi, tenant_id: str, unique_name: str) -> LiveTenant:
    """Read connectors, accepted domains, the Graph domain and the relay assignment of one tenant."""
    connectors = api.exchange.get_inbound_connectors(tenant_id)
    accepted = api.exchange.get_accepted_domains(tenant_id)
    try:
        graph_domain = api.graph.get_domain(tenant_id, unique_name)
    except NotFound:
        graph_domain = None
    with context.store.engine.connect() as connection:
        relay = relay_assignments.find_assignment(connection, tenant_id)
    return LiveTenant(connectors, accepted, graph_domain, relay)


def repair_tenant(
    context: EngineContext,
    api: CountingApi,
    tenant_id: str,
    run_id: str | None,
    live: LiveTenant,
    expected: Expected,
    snapshot: InboundConnector | None,
    actor: str | None,
    *,
    on_repair: Callable[[str], None] | None = None,
) -> list[str]:
    """Re-apply the upgrade's end state through the engine's plan and safety gate; return what was done.

    The relay is switched back to the unique certificate last, once the connector and
    the accepted domain are in place again, so no mail is presented with a name that
    no connector accepts. `on_repair` is called with each line as soon as its change
    is applied. Raises `PlanSafetyError` when the gate rejects the plan.
    """
    from tenanttls.migration.apply import Applier

    recorder = Recorder(context, tenant_id, "drift", uuid.uuid4().hex[:16])
    done: list[str] = []

    domain_changes = plan_domain(expected.unique_name, live.graph_domain)
    plan = plan_connectors(tenant_id, live.connectors, _desired(context, expected.unique_name, run_id), snapshot)
    raise_for(tenant_id, list(plan.violations))

    live_by_name = {connector.name.lower(): connector for connector in live.connectors}
    applier = Applier(context, api, recorder, tenant_id, run_id, live_by_name)
    for change in [*domain_changes, *plan.changes]:
        applier.apply(change)
        _report(change.describe(), done, on_repair)

    _report(_repair_relay(context, tenant_id, expected.unique_name, recorder), done, on_repair)
    logger.info("drift repaired: tenant=%s changes=%d", tenant_id, len(done))
    return done


def _report(lines: list[str], done: list[str], on_repair: Callable[[str], None] | None) -> None:
    for line in lines:
        done.append(line)
        if on_repair is not None:
            on_repair(line)


def _repair_relay(context: EngineContext, tenant_id: str, unique_name: str, recorder: Recorder) -> list[str]:
    with context.store.engine.connect() as connection:
        before = relay_assignments.find_assignment(connection, tenant_id)
    if before is not None and before.mode == relay_assignments.UNIQUE and before.certificate_name.lower() == unique_name:
        return []

    certificate = context.certificates.ensure_certificate(tenant_id, unique_name)
    certificate_id = getattr(certificate, "id", None)
    with context.store.write() as connection:
        relay_assignments.assign_unique(connection, tenant_id, unique_name, certificate_id, context.clock.now())
        recorder.event_in(
            connection,
            "relay.switch",
            {"mode": before.mode if before else None, "certificate_name": before.certificate_name if before else None},
            {"mode": relay_assignments.UNIQUE, "certificate_name": unique_name, "certificate_id": certificate_id},
        )
    return [f"relay presents {unique_name} again"]


def _record(context: EngineContext, tenant_id: str, items: list[DriftItem], now: datetime, actor: str | None) -> None:
    """Record drift as an audit event; record its end once when a later check finds none."""
    with context.store.write() as connection:
        if items:
            record_event(
                connection,
                AuditEvent(
                    tenant_id=tenant_id,
                    at=now,
                    actor=actor or context.actor,
                    action=DRIFT_DETECTED,
                    step="drift",
                    before=[item.to_json() for item in items],
                    detail="; ".join(item.describe() for item in items),
                ),
            )
            logger.warning("drift: tenant=%s fields=%d", tenant_id, len(items))
            return

        events = list_events(connection, tenant_id, actions=DRIFT_ACTIONS)
        if events and is_open(events[-1]):
            record_event(
                connection,
                AuditEvent(tenant_id=tenant_id, at=now, actor=actor or context.actor, action=DRIFT_CLEARED, step="drift"),
            )


def _record_repair(
    context: EngineContext,
    tenant_id: str,
    items: list[DriftItem],
    repaired: list[str],
    remaining: list[DriftItem] | None,
    actor: str | None,
    *,
    error: TenantTlsError | None = None,
) -> None:
    """Record ``drift.repaired`` when nothing remains, else ``drift.partially_repaired``.

    `remaining` is None when the repair failed before the tenant could be read again;
    `error` is then the failure, kept in the event's detail.
    """
    complete = error is None and remaining == []
    detail = "; ".join(repaired) or "nothing applied"
    if error is not None:
        detail = f"{detail}; failed: {error}"
    with context.store.write() as connection:
        record_event(
            connection,
            AuditEvent(
                tenant_id=tenant_id,
                at=context.clock.now(),
                actor=actor or context.actor,
                action=DRIFT_REPAIRED if complete else DRIFT_PARTIALLY_REPAIRED,
                step="drift",
                before=[item.to_json() for item in items],
                after=[item.to_json() for item in remaining] if remaining is not None else None,
                detail=detail,
            ),
        )
    if not complete:
        logger.warning(
            "drift partially repaired: tenant=%s applied=%d remaining=%s error=%s",
            tenant_id, len(repaired), len(remaining) if remaining is not None else "unknown", error,
        )


def is_open(event: AuditEvent) -> bool:
    """True when the drift event leaves drift open: detected, or repaired with something left.

    A ``drift.repaired`` event with items in ``after`` comes from versions that recorded
    a partial repair under that name.
    """
    if event.action in (DRIFT_DETECTED, DRIFT_PARTIALLY_REPAIRED):
        return True
    return event.action == DRIFT_REPAIRED and bool(event.after)


def latest_drift(context: EngineContext, tenant_id: str) -> AuditEvent | None:
    """Return the tenant's latest drift event (any of `DRIFT_ACTIONS`), for status panels."""
    with context.store.engine.connect() as connection:
        events = list_events(connection, tenant_id, actions=DRIFT_ACTIONS)
    return events[-1] if events else None
