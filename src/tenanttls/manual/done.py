"""Recording what support did on the manual path: `tenanttls manual done`.

`record_done` reads the tenant from the export files the script wrote, or over the
API for a tenant that granted access. It checks the tenant against what the script
sets up and moves the upgrade on. After the upgrade script the tenant goes to manual
with a grace period, and with ``switch`` after the grace period to completed. After
the rollback script it goes to rolled_back. Every state change records an audit
event with the state before and after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from tenanttls.clock import Clock
from tenanttls.config import Settings
from tenanttls.domain.exchange import AcceptedDomain, InboundConnector
from tenanttls.errors import ConsentRequired, InvalidInput, PermissionDenied, UpgradeStateError
from tenanttls.manual.service import (
    MANUAL_DONE,
    MANUAL_ROLLED_BACK,
    MANUAL_VERIFIED,
    identity_services,
    ensure_identity,
    read_tenant_exports,
    record,
    stored_snapshot,
    tenant_and_upgrade,
)
from tenanttls.migration.planner import (
    SNAPSHOT_BEFORE_RENAME,
    BACKUP_SUFFIX,
    Desired,
    backup_name,
    desired_connector,
    is_accepted,
    is_ours,
    setting_differences,
    stamp_comment,
)
from tenanttls.migration.service import new_run_id
from tenanttls.migration.states import BEFORE_CHANGES, TERMINAL, UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.audit import AuditEvent, record_event
from tenanttls.store.db import Store
from tenanttls.store.snapshots import save_snapshot
from tenanttls.store.tenants import TenantRecord
from tenanttls.store.upgrades import UpgradeRecord, update_upgrade

logger = logging.getLogger(__name__)

EXPORT_CONNECTORS = "Get-InboundConnector | ConvertTo-Json -Depth 5 | Out-File connectors.json -Encoding utf8"
EXPORT_ACCEPTED_DOMAINS = "Get-AcceptedDomain | ConvertTo-Json -Depth 5 | Out-File accepted-domains.json -Encoding utf8"


@dataclass(frozen=True)
class Observed:
    """A tenant's connectors and accepted domains, read from exports or over the API."""

    connectors: list[InboundConnector]
    accepted_domains: list[AcceptedDomain]
    source: str  # "exports" or "api"


ObserveApi = Callable[[str], Observed]


@dataclass(frozen=True)
class DoneResult:
    """The outcome of `record_done`: the problems found and the actions taken."""

    tenant_id: str
    state: str
    problems: tuple[str, ...]
    message: str
    actions: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the tenant matched what the script sets up."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """Return the result as JSON types."""
        return {
            "tenant_id": self.tenant_id,
            "state": self.state,
            "ok": self.ok,
            "problems": list(self.problems),
            "message": self.message,
            "actions": list(self.actions),
        }


def record_done(
    settings: Settings,
    store: Store,
    clock: Clock,
    tenant_id: str,
    *,
    actor: str,
    exports: Sequence[Path] = (),
    rolled_back: bool = False,
    switch: bool = False,
    observe_api: ObserveApi | None = None,
) -> DoneResult:
    """Check a tenant after support ran a script and move its upgrade on.

    The tenant is read from `exports` when given, otherwise through `observe_api`
    for a tenant with a recorded admin consent. After an upgrade that checks out,
    the original connector is saved as the run's snapshot and a grace period starts.
    With `switch`, after the grace period, the relay moves to the unique certificate
    and the upgrade completes. After a rollback that checks out, the upgrade is rolled
    back. A tenant already in the requested end state is left unchanged.
    """
    check_options(switch=switch, rolled_back=rolled_back)
    tenant, upgrade = tenant_and_upgrade(store, tenant_id)
    unchanged = _already_done(upgrade, rolled_back)
    if unchanged is not None:
        return unchanged
    if not rolled_back:
        _check_upgrade_state(upgrade)

    observed = _observe(tenant, upgrade, exports, observe_api, need_accepted_domains=not rolled_back)
    if rolled_back:
        return _record_rollback(store, clock, tenant, upgrade, observed, actor)
    return _record_upgrade(store, clock, tenant, upgrade, observed, settings, actor, switch)


def check_options(*, switch: bool, rolled_back: bool) -> None:
    """Raise `InvalidInput` when both `switch` and `rolled_back` are set."""
    if switch and rolled_back:
        raise InvalidInput(
            "--switch and --rolled-back exclude each other: --switch completes an upgrade, "
            "--rolled-back records the rollback script; pass one of them"
        )


def _already_done(upgrade: UpgradeRecord, rolled_back: bool) -> DoneResult | None:
    if rolled_back and upgrade.state == UpgradeState.ROLLED_BACK.value:
        return DoneResult(upgrade.tenant_id, upgrade.state, (), "already rolled back; nothing changed")
    if not rolled_back and upgrade.state == UpgradeState.COMPLETED.value:
        return DoneResult(upgrade.tenant_id, upgrade.state, (), "already completed; nothing changed")
    return None


def _check_upgrade_state(upgrade: UpgradeRecord) -> None:
    state = UpgradeState(upgrade.state)
    engine_running = upgrade.requested and state not in TERMINAL and state not in BEFORE_CHANGES
    if state is UpgradeState.ROLLING_BACK or engine_running:
        raise UpgradeStateError(
            f"tenanttls is upgrading or rolling back tenant {upgrade.tenant_id} over the API (state {state.value}); "
            f"let it finish, or roll it back with 'tenanttls rollback {upgrade.tenant_id}' before recording a manual upgrade"
        )


# Reading the tenant -----------------------------------------------------------------------------


def _observe(
    tenant: TenantRecord,
    upgrade: UpgradeRecord,
    exports: Sequence[Path],
    observe_api: ObserveApi | None,
    *,
    need_accepted_domains: bool,
) -> Observed:
    if exports:
        return _observe_exports(tenant, exports, need_accepted_domains)

    files = "--export CONNECTORS.json --export ACCEPTED-DOMAINS.json"
    if observe_api is None or upgrade.consented_at is None:
        raise InvalidInput(
            f"tenanttls has no API access to tenant {tenant.tenant_id} (no admin consent is recorded); "
            f"pass the files the script wrote: {files}"
        )
    try:
        return observe_api(tenant.tenant_id)
    except (ConsentRequired, PermissionDenied) as error:
        # The client's message advises consent, but on the manual path the exports are the way on.
        reason = "the app has no admin consent there" if isinstance(error, ConsentRequired) else "the app lacks a permission there"
        reference = f", correlation id {error.correlation_id}" if error.correlation_id else ""
        raise InvalidInput(
            f"tenanttls cannot read tenant {tenant.tenant_id} over the API ({reason}{reference}); "
            f"pass the files the script wrote: {files}"
        ) from error


def _observe_exports(tenant: TenantRecord, paths: Sequence[Path], need_accepted_domains: bool) -> Observed:
    exports = read_tenant_exports(paths, tenant)
    if not exports.has_connectors:
        raise InvalidInput(
            f"the exports of tenant {tenant.tenant_id} contain no Get-InboundConnector output, so the connectors "
            f"cannot be checked; add the tenanttls-connectors-….json file that the script wrote, or run "
            f"'{EXPORT_CONNECTORS}' in the tenant"
        )
    if need_accepted_domains and not exports.has_accepted_domains:
        raise InvalidInput(
            f"the exports of tenant {tenant.tenant_id} contain no Get-AcceptedDomain output, so the unique name "
            f"cannot be checked as an accepted domain; add the tenanttls-accepted-domains-….json file that the "
            f"script wrote, or run '{EXPORT_ACCEPTED_DOMAINS}' in the tenant"
        )
    return Observed(exports.connectors, exports.accepted_domains, "exports")


# After the upgrade script -----------------------------------------------------------------------


def _record_upgrade(store, clock, tenant, upgrade, observed, settings, actor, switch) -> DoneResult:  # type: ignore[no-untyped-def]
    unique_name = ensure_identity(settings, store, clock, tenant.tenant_id, actor)
    run_id = upgrade.run_id or new_run_id()
    backup = next((c for c in observed.connectors if c.name.upper().endswith(BACKUP_SUFFIX) and not is_ours(c)), None)
    snapshot = stored_snapshot(store, tenant.tenant_id, run_id)
    if snapshot is None and backup is not None:
        snapshot = InboundConnector.from_exchange(dict(backup.raw, Name=backup.name[: -len(BACKUP_SUFFIX)]))

    now = clock.now()
    problems = upgrade_problems(settings, observed, unique_name, snapshot, run_id, now)
    if problems:
        record(store, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_VERIFIED, correlation_id=run_id,
            before=list(problems), detail="checks failed",
        ))
        return DoneResult(tenant.tenant_id, upgrade.state, tuple(problems), "the tenant does not match what the script sets up")

    if switch:
        return _switch(store, clock, tenant, upgrade, settings, actor, unique_name)
    return _start_grace(store, now, tenant, upgrade, observed, settings, actor, unique_name, run_id, snapshot)


def _start_grace(store, now, tenant, upgrade, observed, settings, actor, unique_name, run_id, snapshot) -> DoneResult:  # type: ignore[no-untyped-def]
    """Save the snapshot and move the tenant to manual; a grace period already running is kept."""
    running = upgrade.state == UpgradeState.MANUAL.value and upgrade.grace_until is not None
    grace_until = upgrade.grace_until if running else now + settings.grace
    with store.write() as connection:
        if snapshot is not None:
            save_snapshot(
                connection, tenant_id=tenant.tenant_id, connector_name=snapshot.name, run_id=run_id,
                connector=dict(snapshot.raw), reason=SNAPSHOT_BEFORE_RENAME, now=now,
            )
        update_upgrade(
            connection, tenant.tenant_id, owner=None, expected_state=upgrade.state, run_id=run_id,
            state=UpgradeState.MANUAL.value, state_entered_at=upgrade.state_entered_at if running else now,
            grace_until=grace_until, last_error=None, requested=False, next_attempt_at=None,
        )
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_VERIFIED, correlation_id=run_id,
            before={"state": upgrade.state},
            after={"state": UpgradeState.MANUAL.value, "source": observed.source, "unique_name": unique_name,
                   "grace_until": grace_until.isoformat()},
            detail="grace period already running; unchanged" if running else "grace period started",
        ))

    until = grace_until.isoformat(timespec="minutes")
    message = (
        f"connector and accepted domain check out ({observed.source}); after {until} run "
        f"'tenanttls manual done {tenant.tenant_id} --switch' with fresh exports to switch the relay"
    )
    action = f"grace period already running until {until}" if running else f"grace period started, until {until}"
    return DoneResult(tenant.tenant_id, UpgradeState.MANUAL.value, (), message, (action,))


def upgrade_problems(
    settings: Settings,
    observed: Observed,
    unique_name: str,
    snapshot: InboundConnector | None,
    run_id: str,
    now: datetime,
) -> list[str]:
    """Return what differs from the end state of the upgrade script; empty when it matches."""
    desired = Desired(settings.connector_name, settings.legacy_certificate_name, settings.provider_zone, unique_name, stamp_comment("-", run_id, now))
    cloud_services = snapshot.cloud_services_mail_enabled if snapshot is not None else True
    wanted_settings = desired_connector(desired, cloud_services)

    problems = []
    ours = next((c for c in observed.connectors if c.name.lower() == settings.connector_name.lower()), None)
    if ours is None:
        problems.append(f"connector {settings.connector_name!r} is missing")
    else:
        if not is_ours(ours):
            problems.append(f"connector {ours.name!r} lacks the tenanttls marker in its Comment")
        differences = wanted_settings.differences(ours)
        differences.pop("Name", None)
        problems += [f"connector {ours.name!r}: {key} is {now_value!r}, expected {wanted!r}" for key, (now_value, wanted) in differences.items()]
    if not is_accepted(unique_name, observed.accepted_domains):
        problems.append(f"{unique_name} is not an accepted domain")
    if snapshot is not None and not any(c.name.lower() == backup_name(snapshot.name).lower() for c in observed.connectors):
        problems.append(f"backup connector {backup_name(snapshot.name)!r} is missing")
    return problems


def _switch(store, clock, tenant, upgrade, settings, actor, unique_name) -> DoneResult:  # type: ignore[no-untyped-def]
    now = clock.now()
    if upgrade.state != UpgradeState.MANUAL.value or upgrade.grace_until is None:
        raise UpgradeStateError(
            f"tenant {tenant.tenant_id} has no grace period yet (state {upgrade.state}); "
            f"run 'tenanttls manual done {tenant.tenant_id}' without --switch first"
        )
    if now < upgrade.grace_until:
        raise UpgradeStateError(
            f"the grace period of tenant {tenant.tenant_id} lasts until {upgrade.grace_until.isoformat(timespec='minutes')}; "
            "switch the relay after that"
        )

    _, certificates = identity_services(settings, store, clock)
    certificate = certificates.ensure_certificate(tenant.tenant_id, unique_name)
    certificate_id = getattr(certificate, "id", None)
    with store.write() as connection:
        before = relay_assignments.find_assignment(connection, tenant.tenant_id)
        relay_assignments.assign_unique(connection, tenant.tenant_id, unique_name, certificate_id, now)
        update_upgrade(
            connection, tenant.tenant_id, owner=None, expected_state=upgrade.state,
            state=UpgradeState.COMPLETED.value, state_entered_at=now, requested=True,
        )
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action="relay.switch", correlation_id=upgrade.run_id,
            before={"mode": before.mode if before else None}, after={"mode": relay_assignments.UNIQUE, "certificate_name": unique_name},
        ))
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_DONE, correlation_id=upgrade.run_id,
            before={"state": upgrade.state}, after={"state": UpgradeState.COMPLETED.value},
        ))
    return DoneResult(tenant.tenant_id, UpgradeState.COMPLETED.value, (), f"relay presents {unique_name}; upgrade completed", ("relay switched",))


# After the rollback script ----------------------------------------------------------------------


def _record_rollback(store, clock, tenant, upgrade, observed, actor) -> DoneResult:  # type: ignore[no-untyped-def]
    snapshot = stored_snapshot(store, tenant.tenant_id, upgrade.run_id)
    problems = [f"connector {c.name!r} created by tenanttls still exists" for c in observed.connectors if is_ours(c)]
    if snapshot is not None:
        restored = next((c for c in observed.connectors if c.name.lower() == snapshot.name.lower()), None)
        if restored is None:
            problems.append(f"the original connector {snapshot.name!r} is missing")
        else:
            problems += [f"{snapshot.name!r}: {key} is {a!r}, expected {b!r}" for key, (a, b) in setting_differences(restored, snapshot).items()]

    now = clock.now()
    if problems:
        record(store, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_ROLLED_BACK, correlation_id=upgrade.run_id,
            before=problems, detail="checks failed",
        ))
        return DoneResult(tenant.tenant_id, upgrade.state, tuple(problems), "the tenant does not match its original connector")

    with store.write() as connection:
        update_upgrade(
            connection, tenant.tenant_id, owner=None, expected_state=upgrade.state, state=UpgradeState.ROLLED_BACK.value,
            state_entered_at=now, requested=False, next_attempt_at=None, grace_until=None,
        )
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_ROLLED_BACK, correlation_id=upgrade.run_id,
            before={"state": upgrade.state}, after={"state": UpgradeState.ROLLED_BACK.value, "source": observed.source},
        ))
    return DoneResult(tenant.tenant_id, UpgradeState.ROLLED_BACK.value, (), "original connector restored; upgrade rolled back")
