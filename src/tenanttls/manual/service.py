"""The manual path's operations: write a tenant's script, and record what support did.

`write_upgrade_script` and `write_rollback_script` read the tenant from the store,
make sure it has its unique name and certificate, and return the script text.
`record_done` checks the tenant after support ran a script, from exports or over the
API, and moves the upgrade on. Each function changes nothing when it raises.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from tenanttls.audit.exportset import read_export_set
from tenanttls.clock import Clock
from tenanttls.config import Settings
from tenanttls.domain.exchange import AcceptedDomain, InboundConnector
from tenanttls.errors import InvalidInput, UpgradeStateError
from tenanttls.manual.script import (
    RollbackScriptInput,
    build_upgrade_input,
    render_rollback_script,
    render_upgrade_script,
)
from tenanttls.migration.planner import (
    SNAPSHOT_BEFORE_RENAME,
    BACKUP_SUFFIX,
    Desired,
    backup_name,
    desired_connector,
    is_accepted,
    is_ours,
    legacy_candidates,
    setting_differences,
    stamp_comment,
)
from tenanttls.migration.service import new_run_id
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.audit import AuditEvent, list_events, record_event
from tenanttls.store.db import Store
from tenanttls.store.snapshots import find_snapshot, save_snapshot
from tenanttls.store.tenants import get_tenant
from tenanttls.store.upgrades import get_upgrade, update_upgrade

logger = logging.getLogger(__name__)

MANUAL_SCRIPT = "manual.script"
MANUAL_VERIFIED = "manual.verified"
MANUAL_DONE = "manual.done"
MANUAL_ROLLED_BACK = "manual.rolled_back"


@dataclass(frozen=True)
class Observed:
    """A tenant's connectors and accepted domains, read from exports or over the API."""

    connectors: list[InboundConnector]
    accepted_domains: list[AcceptedDomain]
    source: str  # "exports" or "api"


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


# Scripts ---------------------------------------------------------------------------------------


def _identity_services(settings: Settings, store: Store, clock: Clock):  # type: ignore[no-untyped-def]
    """Return the identity and certificate services, built as the engine's wiring builds them."""
    from tenanttls.certificates.identities import IdentityService
    from tenanttls.certificates.keystore import KeyStore
    from tenanttls.certificates.service import CertificateService
    from tenanttls.dns.publisher import build_publisher
    from tenanttls.migration.wiring import build_issuer

    identities = IdentityService(store.engine, settings.provider_zone, clock)
    issuer = build_issuer(settings, build_publisher(settings), store, clock)
    certificates = CertificateService(
        store.engine,
        issuer,
        KeyStore.from_reference(settings.key_encryption_key),
        clock,
        renewal_fraction=settings.renewal_fraction,
        orders_per_hour=settings.orders_per_hour,
    )
    return identities, certificates


def ensure_identity(settings: Settings, store: Store, clock: Clock, tenant_id: str, actor: str) -> str:
    """Return the tenant's unique name, allocating it and issuing its certificate when missing."""
    from tenanttls.errors import NotFoundError

    identities, certificates = _identity_services(settings, store, clock)
    try:
        name = identities.get(tenant_id).name
    except NotFoundError:
        name = identities.allocate(tenant_id).name
        _event(store, tenant_id, clock.now(), actor, "identity.allocate", after={"name": name})
    certificates.ensure_certificate(tenant_id, name)
    return name


def write_upgrade_script(
    settings: Settings,
    store: Store,
    clock: Clock,
    tenant_id: str,
    *,
    actor: str,
    exports: Sequence[Path] = (),
    proof_text: str | None = None,
) -> str:
    """Return the upgrade script for one tenant and record that it was written.

    The original connector is taken from `exports` (a Get-InboundConnector export)
    when given, else from the store's snapshot of the current run, else the script
    finds it at run time. The tenant's run id is created when it has none.
    """
    tenant, upgrade = _tenant_and_upgrade(store, tenant_id)
    snapshot = _snapshot_from_exports(settings, exports, tenant.initial_domain) if exports else None
    run_id = upgrade.run_id or new_run_id()
    if snapshot is None:
        snapshot = _stored_snapshot(store, tenant.tenant_id, run_id)

    unique_name = ensure_identity(settings, store, clock, tenant.tenant_id, actor)
    data = build_upgrade_input(
        settings,
        tenant_id=tenant.tenant_id,
        tenant_domain=tenant.initial_domain,
        unique_name=unique_name,
        run_id=run_id,
        now=clock.now(),
        snapshot=snapshot,
        proof_text=proof_text,
    )
    script = render_upgrade_script(data)

    with store.write() as connection:
        if upgrade.run_id is None:
            update_upgrade(connection, tenant.tenant_id, owner=None, run_id=run_id)
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=clock.now(), actor=actor, action=MANUAL_SCRIPT, correlation_id=run_id,
            after={"kind": "upgrade", "unique_name": unique_name, "legacy_name": data.legacy_name},
        ))
    return script


def write_rollback_script(settings: Settings, store: Store, clock: Clock, tenant_id: str, *, actor: str) -> str:
    """Return the rollback script from the stored snapshot, after switching the relay back.

    The relay goes back to the shared certificate first, as in the engine's rollback:
    the -BACKUP connector matches that name, so mail keeps flowing while support runs
    the script. Raises `UpgradeStateError` when no snapshot of the original connector is stored.
    """
    tenant, upgrade = _tenant_and_upgrade(store, tenant_id)
    snapshot = _stored_snapshot(store, tenant.tenant_id, upgrade.run_id)
    if snapshot is None:
        raise UpgradeStateError(
            f"tenant {tenant.tenant_id} has no saved original connector, so no rollback script can be written; "
            f"record the upgrade first with 'tenanttls manual done {tenant.tenant_id} --export FILE'"
        )
    unique_name = ensure_identity(settings, store, clock, tenant.tenant_id, actor)
    script = render_rollback_script(RollbackScriptInput(
        tenant_id=tenant.tenant_id,
        tenant_domain=tenant.initial_domain,
        connector_name=settings.connector_name,
        unique_name=unique_name,
        snapshot=snapshot,
        run_id=upgrade.run_id or "-",
    ))

    now = clock.now()
    with store.write() as connection:
        before = relay_assignments.find_assignment(connection, tenant.tenant_id)
        if before is None or before.mode != relay_assignments.LEGACY:
            relay_assignments.assign_legacy(connection, tenant.tenant_id, settings.legacy_certificate_name, now)
            record_event(connection, AuditEvent(
                tenant_id=tenant.tenant_id, at=now, actor=actor, action="relay.switch",
                before={"mode": before.mode if before else None, "certificate_name": before.certificate_name if before else None},
                after={"mode": relay_assignments.LEGACY, "certificate_name": settings.legacy_certificate_name},
                detail="switched back before the manual rollback script runs",
            ))
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_SCRIPT, correlation_id=upgrade.run_id,
            after={"kind": "rollback", "legacy_name": snapshot.name},
        ))
    return script


def _tenant_and_upgrade(store: Store, tenant_id: str):  # type: ignore[no-untyped-def]
    with store.engine.connect() as connection:
        tenant = get_tenant(connection, tenant_id.strip().lower())
        upgrade = get_upgrade(connection, tenant.tenant_id)
    return tenant, upgrade


def _stored_snapshot(store: Store, tenant_id: str, run_id: str | None) -> InboundConnector | None:
    if run_id is None:
        return None
    with store.engine.connect() as connection:
        saved = find_snapshot(connection, tenant_id, run_id=run_id, reason=SNAPSHOT_BEFORE_RENAME)
    return InboundConnector.from_exchange(saved.connector) if saved is not None else None


def _snapshot_from_exports(settings: Settings, paths: Sequence[Path], tenant_domain: str) -> InboundConnector | None:
    """Return the original connector from Get-InboundConnector exports, by the engine's rules.

    A connector named ``…-BACKUP`` is the original after the rename, so its settings
    under the name without the suffix are the snapshot.
    """
    observed = _observe_exports(paths, tenant_domain)
    desired = Desired(settings.connector_name, settings.legacy_certificate_name.lower(), settings.provider_zone, None, "")
    candidates = legacy_candidates(observed.connectors, desired)
    if len(candidates) > 1:
        names = ", ".join(repr(c.name) for c in candidates)
        raise InvalidInput(f"several connectors look like the original one ({names}); export only the one to keep")
    if candidates:
        return candidates[0]

    for connector in observed.connectors:
        if connector.name.upper().endswith(BACKUP_SUFFIX) and not is_ours(connector):
            raw = dict(connector.raw, Name=connector.name[: -len(BACKUP_SUFFIX)])
            return InboundConnector.from_exchange(raw)
    return None


def _observe_exports(paths: Sequence[Path], tenant_domain: str) -> Observed:
    exports = read_export_set(list(paths), tenant=tenant_domain)
    return Observed(exports.connectors, exports.accepted_domains, "exports")


# Recording the result ------------------------------------------------------------------------


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
    observe_api: Any = None,
) -> DoneResult:
    """Check a tenant after support ran a script and move its upgrade on.

    The tenant is read from `exports` when given, otherwise through `observe_api`
    (a callable returning `Observed`, for tenants that granted access). After an
    upgrade that checks out, the original connector is saved as the run's snapshot
    and a grace period starts. With `switch`, after the grace period, the relay moves
    to the unique certificate and the upgrade completes. After a rollback that checks
    out, the upgrade is rolled back.
    """
    tenant, upgrade = _tenant_and_upgrade(store, tenant_id)
    if exports:
        observed = _observe_exports(exports, tenant.initial_domain)
    elif observe_api is not None:
        observed = observe_api(tenant.tenant_id)
    else:
        raise InvalidInput(
            f"tenanttls has no API access to tenant {tenant.tenant_id}; pass the files the script wrote with --export"
        )

    if rolled_back:
        return _record_rollback(store, clock, tenant, upgrade, observed, settings, actor)
    return _record_upgrade(store, clock, tenant, upgrade, observed, settings, actor, switch)


def _record_upgrade(store, clock, tenant, upgrade, observed, settings, actor, switch) -> DoneResult:  # type: ignore[no-untyped-def]
    unique_name = ensure_identity(settings, store, clock, tenant.tenant_id, actor)
    run_id = upgrade.run_id or new_run_id()
    backup = next((c for c in observed.connectors if c.name.upper().endswith(BACKUP_SUFFIX) and not is_ours(c)), None)
    snapshot = _stored_snapshot(store, tenant.tenant_id, run_id)
    if snapshot is None and backup is not None:
        snapshot = InboundConnector.from_exchange(dict(backup.raw, Name=backup.name[: -len(BACKUP_SUFFIX)]))

    problems = upgrade_problems(settings, observed, unique_name, snapshot, run_id, clock.now())
    now = clock.now()
    if problems:
        _event(store, tenant.tenant_id, now, actor, MANUAL_VERIFIED, before=list(problems), detail="checks failed")
        return DoneResult(tenant.tenant_id, upgrade.state, tuple(problems), "the tenant does not match what the script sets up")

    if switch:
        return _switch(store, clock, tenant, upgrade, settings, actor, unique_name)

    grace_until = now + settings.grace
    with store.write() as connection:
        if snapshot is not None:
            save_snapshot(
                connection, tenant_id=tenant.tenant_id, connector_name=snapshot.name, run_id=run_id,
                connector=dict(snapshot.raw), reason=SNAPSHOT_BEFORE_RENAME, now=now,
            )
        update_upgrade(
            connection, tenant.tenant_id, owner=None, run_id=run_id, state=UpgradeState.MANUAL.value,
            state_entered_at=now, grace_until=grace_until, last_error=None,
        )
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_VERIFIED, correlation_id=run_id,
            after={"source": observed.source, "unique_name": unique_name, "grace_until": grace_until.isoformat()},
        ))
    message = (
        f"connector and accepted domain check out ({observed.source}); after {grace_until.isoformat(timespec='minutes')} "
        f"run 'tenanttls manual done {tenant.tenant_id} --switch' with fresh exports to switch the relay"
    )
    return DoneResult(tenant.tenant_id, UpgradeState.MANUAL.value, (), message, ("grace period started",))


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
    if upgrade.grace_until is None:
        raise UpgradeStateError(
            f"tenant {tenant.tenant_id} has no grace period yet; run 'tenanttls manual done {tenant.tenant_id}' without --switch first"
        )
    if now < upgrade.grace_until:
        raise UpgradeStateError(
            f"the grace period of tenant {tenant.tenant_id} lasts until {upgrade.grace_until.isoformat(timespec='minutes')}; "
            "switch the relay after that"
        )

    _, certificates = _identity_services(settings, store, clock)
    certificate = certificates.ensure_certificate(tenant.tenant_id, unique_name)
    certificate_id = getattr(certificate, "id", None)
    with store.write() as connection:
        before = relay_assignments.find_assignment(connection, tenant.tenant_id)
        relay_assignments.assign_unique(connection, tenant.tenant_id, unique_name, certificate_id, now)
        update_upgrade(connection, tenant.tenant_id, owner=None, state=UpgradeState.COMPLETED.value, state_entered_at=now, requested=True)
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=now, actor=actor, action="relay.switch", correlation_id=upgrade.run_id,
            before={"mode": before.mode if before else None}, after={"mode": relay_assignments.UNIQUE, "certificate_name": unique_name},
        ))
        record_event(connection, AuditEvent(tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_DONE, correlation_id=upgrade.run_id))
    return DoneResult(tenant.tenant_id, UpgradeState.COMPLETED.value, (), f"relay presents {unique_name}; upgrade completed", ("relay switched",))


def _record_rollback(store, clock, tenant, upgrade, observed, settings, actor) -> DoneResult:  # type: ignore[no-untyped-def]
    snapshot = _stored_snapshot(store, tenant.tenant_id, upgrade.run_id)
    problems = []
    if any(is_ours(c) for c in observed.connectors):
        problems.append("a connector created by tenanttls still exists")
    if snapshot is not None:
        restored = next((c for c in observed.connectors if c.name.lower() == snapshot.name.lower()), None)
        if restored is None:
            problems.append(f"the original connector {snapshot.name!r} is missing")
        else:
            problems += [f"{snapshot.name!r}: {key} is {a!r}, expected {b!r}" for key, (a, b) in setting_differences(restored, snapshot).items()]

    now = clock.now()
    if problems:
        _event(store, tenant.tenant_id, now, actor, MANUAL_ROLLED_BACK, before=problems, detail="checks failed")
        return DoneResult(tenant.tenant_id, upgrade.state, tuple(problems), "the tenant does not match its original connector")

    with store.write() as connection:
        update_upgrade(connection, tenant.tenant_id, owner=None, state=UpgradeState.ROLLED_BACK.value, state_entered_at=now, requested=False)
        record_event(connection, AuditEvent(tenant_id=tenant.tenant_id, at=now, actor=actor, action=MANUAL_ROLLED_BACK, after={"source": observed.source}))
    return DoneResult(tenant.tenant_id, UpgradeState.ROLLED_BACK.value, (), "original connector restored; upgrade rolled back")


def _event(store: Store, tenant_id: str, now: datetime, actor: str, action: str, **values: Any) -> None:
    with store.write() as connection:
        record_event(connection, AuditEvent(tenant_id=tenant_id, at=now, actor=actor, action=action, **values))


def manual_events(store: Store, tenant_id: str) -> list[AuditEvent]:
    """Return the tenant's manual-path events, oldest first."""
    with store.engine.connect() as connection:
        return list_events(connection, tenant_id, actions=(MANUAL_SCRIPT, MANUAL_VERIFIED, MANUAL_DONE, MANUAL_ROLLED_BACK))
