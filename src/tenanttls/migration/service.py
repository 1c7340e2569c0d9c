"""Operations behind the CLI and the portal: import, request upgrade or rollback, status, history.

Each function validates everything first and changes nothing when it raises.
Requests only change the store; a worker carries them out (`run_now` runs one
tenant's steps in the calling process, as ``tenanttls rollback`` does).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from tenanttls.errors import NotFoundError, UpgradeStateError
from tenanttls.migration.context import EngineContext
from tenanttls.migration.imports import read_tenant_file
from tenanttls.migration.runner import StepReport, run_step
from tenanttls.migration.safety import Overrides
from tenanttls.migration.states import TERMINAL, UpgradeState, progress
from tenanttls.store import relay_assignments
from tenanttls.store.audit import AuditEvent, list_events, record_event
from tenanttls.store.db import Store
from tenanttls.store.schema import identities
from tenanttls.store.tenants import TenantRecord, get_tenant, list_tenants, save_tenant
from tenanttls.store.upgrades import (
    UpgradeRecord,
    claim_tenant,
    create_upgrade,
    get_upgrade,
    list_upgrades,
    release_lease,
    update_upgrade,
)

logger = logging.getLogger(__name__)


def new_run_id() -> str:
    """Return a new upgrade run id (stamped into the connector's Comment and the audit trail)."""
    return uuid.uuid4().hex[:16]


# Tenants ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportSummary:
    """How many tenants an import added, updated and left unchanged."""

    added: int
    updated: int
    unchanged: int

    def to_json(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged}


def import_tenants(store: Store, path: Path, *, legacy_certificate_name: str, now: datetime, actor: str) -> ImportSummary:
    """Add or update the tenants listed in `path`; all or nothing."""
    rows = read_tenant_file(path)
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    with store.write() as connection:
        for row in rows:
            outcome = add_tenant(connection, row.tenant, legacy_certificate_name=legacy_certificate_name, now=now, actor=actor)
            counts[outcome] += 1
    logger.info("tenants imported: file=%s added=%d updated=%d unchanged=%d", path, counts["added"], counts["updated"], counts["unchanged"])
    return ImportSummary(**counts)


def add_tenant(connection: Connection, tenant: TenantRecord, *, legacy_certificate_name: str, now: datetime, actor: str) -> str:
    """Store one tenant with its upgrade row and a legacy relay assignment; return "added", "updated" or "unchanged"."""
    try:
        previous = get_tenant(connection, tenant.tenant_id)
    except NotFoundError:
        previous = None
    outcome = save_tenant(connection, tenant, now)
    create_upgrade(connection, tenant.tenant_id, now)
    relay_assignments.ensure_legacy_assignment(connection, tenant.tenant_id, legacy_certificate_name, now)
    if outcome != "unchanged":
        record_event(
            connection,
            AuditEvent(tenant_id=tenant.tenant_id, at=now, actor=actor, action=f"tenant.{outcome}",
                       before=_tenant_fields(previous) if previous else None, after=_tenant_fields(tenant)),
        )
    return outcome


def _tenant_fields(tenant: TenantRecord) -> dict[str, str]:
    return {"initial_domain": tenant.initial_domain, "display_name": tenant.display_name}


# Upgrade and rollback requests -----------------------------------------------------------------


@dataclass(frozen=True)
class RequestResult:
    """The outcome of an upgrade or rollback request for one tenant."""

    tenant_id: str
    outcome: str  # "requested", "resumed", "restarted", "unchanged", "skipped", "deferred"
    state: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "outcome": self.outcome, "state": self.state, "message": self.message}


def request_upgrades(
    store: Store,
    tenant_ids: list[str] | None,
    *,
    wave: int | None = None,
    overrides: Overrides = Overrides(),
    now: datetime,
    actor: str,
) -> list[RequestResult]:
    """Request the upgrade of `tenant_ids` (when None, all but rolled-back ones; at most `wave` new ones).

    Tenants beyond the wave get a "deferred" result and stay unchanged.
    Unknown ids raise `NotFoundError` before anything changes. A completed tenant is
    left alone; a tenant in needs_attention resumes where it stopped, with `overrides`
    added; a rolled-back tenant starts a new run.
    """
    results: list[RequestResult] = []
    with store.write() as connection:
        if tenant_ids is None:
            targets = [upgrade for upgrade in list_upgrades(connection) if _is_candidate(upgrade)]
            targets.sort(key=lambda upgrade: upgrade.tenant_id)
        else:
            targets = [_known_upgrade(connection, tenant_id) for tenant_id in _unique(tenant_ids)]

        started = 0
        for upgrade in targets:
            starts = not upgrade.requested or upgrade.state == UpgradeState.ROLLED_BACK.value
            if wave is not None and starts and started >= wave:
                results.append(RequestResult(upgrade.tenant_id, "deferred", upgrade.state, "left for a later wave"))
                continue
            result = _request_one(connection, upgrade, overrides, now, actor)
            started += result.outcome in ("requested", "restarted")
            results.append(result)
    return results


def _unique(tenant_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(tenant_id.strip().lower() for tenant_id in tenant_ids))


def _known_upgrade(connection: Connection, tenant_id: str) -> UpgradeRecord:
    get_tenant(connection, tenant_id)
    return get_upgrade(connection, tenant_id)


def _is_candidate(upgrade: UpgradeRecord) -> bool:
    """True for tenants that ``upgrade --all`` starts or resumes.

    A rolled-back tenant is left out: an operator rolled it back on purpose, so only
    naming it starts a new run.
    """
    state = UpgradeState(upgrade.state)
    excluded = (UpgradeState.COMPLETED, UpgradeState.MANUAL, UpgradeState.ROLLED_BACK)
    return state not in excluded and not (upgrade.requested and state not in TERMINAL)


def _request_one(connection: Connection, upgrade: UpgradeRecord, overrides: Overrides, now: datetime, actor: str) -> RequestResult:
    state = UpgradeState(upgrade.state)
    tenant_id = upgrade.tenant_id
    merged = Overrides.from_json(upgrade.overrides).merged(overrides).to_json()

    if state is UpgradeState.COMPLETED:
        return RequestResult(tenant_id, "unchanged", state.value, "already completed; nothing to do")
    if state is UpgradeState.MANUAL:
        return RequestResult(tenant_id, "skipped", state.value, "support upgrades this tenant manually; tenanttls leaves it alone")
    if state is UpgradeState.ROLLING_BACK:
        raise UpgradeStateError(
            f"tenant {tenant_id} is being rolled back; wait until 'tenanttls status {tenant_id}' shows rolled_back, then request the upgrade again"
        )

    if state is UpgradeState.NEEDS_ATTENTION:
        resume = upgrade.resume_state or UpgradeState.AWAITING_CONSENT.value
        values = dict(state=resume, state_entered_at=now, resume_state=None, last_error=None, stop_kind=None)
        outcome, message = "resumed", f"resumes in state {resume}"
    elif state is UpgradeState.ROLLED_BACK:
        values = dict(state=UpgradeState.AWAITING_CONSENT.value, state_entered_at=now, run_id=new_run_id(), grace_until=None)
        outcome, message = "restarted", "starts a new upgrade run"
    elif upgrade.requested:
        notes = []
        if merged != upgrade.overrides:
            update_upgrade(connection, tenant_id, owner=None, overrides=merged)
            _audit(connection, tenant_id, now, actor, "upgrade.overrides", upgrade.overrides, merged)
            notes.append("overrides updated")
        if upgrade.next_attempt_at is not None and upgrade.next_attempt_at > now:
            # The operator asks again, typically right after the admin consented: check now.
            update_upgrade(connection, tenant_id, owner=None, next_attempt_at=now)
            _audit(connection, tenant_id, now, actor, "upgrade.due_now", {"next_attempt_at": _iso(upgrade.next_attempt_at)}, {"next_attempt_at": _iso(now)})
            notes.append("the worker checks it again now instead of at the scheduled time")
        return RequestResult(tenant_id, "unchanged", state.value, "; ".join([f"already in progress (state {state.value})", *notes]))
    else:
        values = dict(run_id=upgrade.run_id or new_run_id())
        outcome, message = "requested", "upgrade requested"

    updated = update_upgrade(
        connection, tenant_id, owner=None, requested=True, attempts=0, next_attempt_at=now, overrides=merged, **values
    )
    _audit(connection, tenant_id, now, actor, f"upgrade.{outcome}", {"state": state.value}, {"state": updated.state, "overrides": merged})
    return RequestResult(tenant_id, outcome, updated.state, message)


def request_rollback(store: Store, tenant_id: str, *, now: datetime, actor: str) -> RequestResult:
    """Put the tenant in rolling_back, so the next step restores the original connector and relay."""
    with store.write() as connection:
        upgrade = _known_upgrade(connection, tenant_id)
        state = UpgradeState(upgrade.state)
        if state is UpgradeState.ROLLED_BACK:
            return RequestResult(upgrade.tenant_id, "unchanged", state.value, "already rolled back; nothing to do")
        if state is UpgradeState.ROLLING_BACK:
            return RequestResult(upgrade.tenant_id, "unchanged", state.value, "rollback already in progress")
        if not upgrade.requested and upgrade.run_id is None:
            raise UpgradeStateError(
                f"tenant {upgrade.tenant_id} was never upgraded (state {state.value}); there is nothing to roll back"
            )
        if state is UpgradeState.MANUAL:
            raise UpgradeStateError(
                f"tenant {upgrade.tenant_id} is upgraded manually by support; roll it back by hand in Exchange"
            )

        update_upgrade(
            connection, upgrade.tenant_id, owner=None, state=UpgradeState.ROLLING_BACK.value, state_entered_at=now,
            requested=True, attempts=0, next_attempt_at=now, last_error=None, stop_kind=None, resume_state=None,
        )
        _audit(connection, upgrade.tenant_id, now, actor, "rollback.requested", {"state": state.value}, {"state": UpgradeState.ROLLING_BACK.value})
    return RequestResult(upgrade.tenant_id, "requested", UpgradeState.ROLLING_BACK.value, f"rollback requested from state {state.value}")


def _audit(connection: Connection, tenant_id: str, now: datetime, actor: str, action: str, before: Any, after: Any) -> None:
    record_event(connection, AuditEvent(tenant_id=tenant_id, at=now, actor=actor, action=action, before=before, after=after))


def run_now(context: EngineContext, tenant_id: str, owner: str, *, max_steps: int = 20) -> list[StepReport]:
    """Run the tenant's steps in this process while they are due at once; return their reports.

    Raises `UpgradeStateError` when a worker holds the tenant's lease; that worker
    then carries the request out.
    """
    upgrade = claim_tenant(context.store, tenant_id, owner, context.clock.now(), context.options.lease)
    if upgrade is None:
        with context.store.engine.connect() as connection:
            current = get_upgrade(connection, tenant_id)
        raise UpgradeStateError(
            f"worker {current.lease_owner} has the lease on tenant {tenant_id} until "
            f"{current.lease_expires_at.isoformat(timespec='seconds') if current.lease_expires_at else '?'}; "
            "it carries out the request"
        )

    reports: list[StepReport] = []
    try:
        for _ in range(max_steps):
            report = run_step(context, tenant_id, owner)
            reports.append(report)
            if not report.due_now:
                break
    finally:
        with context.store.write() as connection:
            release_lease(connection, tenant_id, owner)
    return reports


# Status and history ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantStatus:
    """One line of ``tenanttls status``."""

    tenant: TenantRecord
    upgrade: UpgradeRecord
    unique_name: str | None
    relay_mode: str | None

    def to_json(self) -> dict[str, Any]:
        upgrade = self.upgrade
        return {
            "tenant_id": self.tenant.tenant_id,
            "initial_domain": self.tenant.initial_domain,
            "display_name": self.tenant.display_name,
            "state": upgrade.state,
            "progress": progress(UpgradeState(upgrade.state)),
            "requested": upgrade.requested,
            "attempts": upgrade.attempts,
            "next_attempt_at": _iso(upgrade.next_attempt_at),
            "grace_until": _iso(upgrade.grace_until),
            "last_error": upgrade.last_error,
            "stop_kind": upgrade.stop_kind,
            "wait_reason": upgrade.wait_reason,
            "resume_state": upgrade.resume_state,
            "unique_name": self.unique_name,
            "relay_mode": self.relay_mode,
            "api_calls": upgrade.api_calls,
            "run_id": upgrade.run_id,
            "overrides": upgrade.overrides,
            "lease_owner": upgrade.lease_owner,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def fleet_status(store: Store, tenant_ids: list[str] | None = None) -> list[TenantStatus]:
    """Return the status of `tenant_ids` (all when None); unknown ids raise `NotFoundError`."""
    with store.engine.connect() as connection:
        if tenant_ids is not None:
            tenants = [get_tenant(connection, tenant_id.strip().lower()) for tenant_id in _unique(tenant_ids)]
        else:
            tenants = list_tenants(connection)
        upgrades = {upgrade.tenant_id: upgrade for upgrade in list_upgrades(connection, [t.tenant_id for t in tenants])}
        names = dict(connection.execute(identities.select().with_only_columns(identities.c.tenant_id, identities.c.name)).all())
        modes = {}
        for tenant in tenants:
            assignment = relay_assignments.find_assignment(connection, tenant.tenant_id)
            modes[tenant.tenant_id] = assignment.mode if assignment else None

    statuses = []
    for tenant in tenants:
        upgrade = upgrades.get(tenant.tenant_id)
        if upgrade is None:
            raise NotFoundError(f"tenant {tenant.tenant_id} has no upgrade record; import it again with 'tenanttls tenants import FILE'")
        statuses.append(TenantStatus(tenant, upgrade, names.get(tenant.tenant_id), modes[tenant.tenant_id]))
    return statuses


def history(store: Store, tenant_id: str) -> list[AuditEvent]:
    """Return the tenant's audit trail, oldest first; an unknown tenant raises `NotFoundError`."""
    with store.engine.connect() as connection:
        tenant = get_tenant(connection, tenant_id.strip().lower())
        return list_events(connection, tenant.tenant_id)
