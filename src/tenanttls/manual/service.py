"""The manual path's scripts: write a tenant's upgrade or rollback script.

`write_upgrade_script` and `write_rollback_script` read the tenant from the store,
hand the script text to a `save` callable (a file or standard output), and only
then record what they did, so a failed write changes nothing in the store. The one
exception: the upgrade script needs the tenant's unique name and certificate, which
`ensure_identity` allocates and issues before the text exists. Recording what
support did afterwards is `tenanttls.manual.done`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tenanttls.audit.exportset import ExportSet, read_export_set
from tenanttls.clock import Clock
from tenanttls.config import Settings
from tenanttls.domain.exchange import InboundConnector
from tenanttls.domain.names import validate_tenant_id
from tenanttls.errors import InvalidInput, NotFoundError, UpgradeStateError
from tenanttls.manual.script import (
    RollbackScriptInput,
    build_upgrade_input,
    render_rollback_script,
    render_upgrade_script,
)
from tenanttls.migration.planner import SNAPSHOT_BEFORE_RENAME, BACKUP_SUFFIX, Desired, is_ours, legacy_candidates
from tenanttls.migration.service import new_run_id
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.audit import AuditEvent, list_events, record_event
from tenanttls.store.db import Store
from tenanttls.store.snapshots import find_snapshot
from tenanttls.store.tenants import TenantRecord, get_tenant
from tenanttls.store.upgrades import UpgradeRecord, get_upgrade, update_upgrade

logger = logging.getLogger(__name__)

MANUAL_SCRIPT = "manual.script"
MANUAL_ROLLBACK_SCRIPT = "manual.rollback_script"
MANUAL_VERIFIED = "manual.verified"
MANUAL_DONE = "manual.done"
MANUAL_ROLLED_BACK = "manual.rolled_back"
MANUAL_ACTIONS = (MANUAL_SCRIPT, MANUAL_ROLLBACK_SCRIPT, MANUAL_VERIFIED, MANUAL_DONE, MANUAL_ROLLED_BACK)

SaveScript = Callable[[str], None]


@dataclass(frozen=True)
class WrittenScript:
    """A script that was saved, and what writing it changed, for the operator to read."""

    tenant_id: str
    text: str
    notices: tuple[str, ...] = ()


def _keep(text: str) -> None:
    """Save nothing: the caller uses `WrittenScript.text` itself."""


# Identity and certificate ------------------------------------------------------------------------


def identity_services(settings: Settings, store: Store, clock: Clock):  # type: ignore[no-untyped-def]
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
    identities, certificates = identity_services(settings, store, clock)
    try:
        name = identities.get(tenant_id).name
    except NotFoundError:
        name = identities.allocate(tenant_id).name
        record(store, AuditEvent(tenant_id=tenant_id, at=clock.now(), actor=actor, action="identity.allocate", after={"name": name}))
    certificates.ensure_certificate(tenant_id, name)
    return name


def stored_unique_name(settings: Settings, store: Store, clock: Clock, tenant_id: str) -> str:
    """Return the tenant's unique name from the store, or raise `UpgradeStateError` when none is allocated."""
    from tenanttls.certificates.identities import IdentityService

    try:
        return IdentityService(store.engine, settings.provider_zone, clock).get(tenant_id).name
    except NotFoundError as error:
        raise UpgradeStateError(
            f"tenant {tenant_id} has no unique name in the store, so it was never upgraded and there is nothing to roll back"
        ) from error


# The upgrade script ------------------------------------------------------------------------------


def write_upgrade_script(
    settings: Settings,
    store: Store,
    clock: Clock,
    tenant_id: str,
    *,
    actor: str,
    exports: Sequence[Path] = (),
    proof_text: str | None = None,
    save: SaveScript = _keep,
) -> WrittenScript:
    """Save the upgrade script for one tenant with `save`, then record that it was written.

    The original connector is taken from `exports` (a Get-InboundConnector export)
    when given, else from the store's snapshot of the current run, else the script
    finds it at run time. The tenant's run id is created when it has none. When
    `save` raises, nothing is recorded and the run id stays unset.
    """
    tenant, upgrade = tenant_and_upgrade(store, tenant_id)
    snapshot = _snapshot_from_exports(settings, exports, tenant) if exports else None
    run_id = upgrade.run_id or new_run_id()
    if snapshot is None:
        snapshot = stored_snapshot(store, tenant.tenant_id, run_id)

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
    text = render_upgrade_script(data)
    save(text)

    with store.write() as connection:
        if upgrade.run_id is None:
            update_upgrade(connection, tenant.tenant_id, owner=None, run_id=run_id)
        record_event(connection, AuditEvent(
            tenant_id=tenant.tenant_id, at=clock.now(), actor=actor, action=MANUAL_SCRIPT, correlation_id=run_id,
            after={"kind": "upgrade", "unique_name": unique_name, "legacy_name": data.legacy_name},
        ))
    return WrittenScript(tenant.tenant_id, text, _upgrade_notices(tenant.tenant_id, upgrade.state))


def _upgrade_notices(tenant_id: str, state: str) -> tuple[str, ...]:
    if state == UpgradeState.COMPLETED.value:
        return (
            f"note: tenant {tenant_id} is already upgraded (state completed). The script changes nothing that is "
            "in place, so running it only confirms the connector and the accepted domain; 'manual done' is not needed.",
        )
    return ()


# The rollback script -----------------------------------------------------------------------------


def write_rollback_script(
    settings: Settings, store: Store, clock: Clock, tenant_id: str, *, actor: str, save: SaveScript = _keep
) -> WrittenScript:
    """Save the rollback script with `save`, then switch the relay back and hand the tenant to support.

    The relay goes back to the shared certificate as in the engine's rollback: the
    -BACKUP connector matches that name, so mail keeps flowing while support runs the
    script. The tenant moves to state manual, so the worker and the drift checks leave
    it alone until `record_done` records the rollback. Raises `UpgradeStateError` when
    no snapshot of the original connector is stored or the tenant is already rolled back
    or rolling back; when `save` raises, nothing is changed.
    """
    tenant, upgrade = tenant_and_upgrade(store, tenant_id)
    _check_rollback_state(upgrade)
    snapshot = stored_snapshot(store, tenant.tenant_id, upgrade.run_id)
    if snapshot is None:
        raise UpgradeStateError(
            f"tenant {tenant.tenant_id} has no saved original connector, so no rollback script can be written; "
            f"record the upgrade first with 'tenanttls manual done {tenant.tenant_id} --export FILE'"
        )
    unique_name = stored_unique_name(settings, store, clock, tenant.tenant_id)
    text = render_rollback_script(RollbackScriptInput(
        tenant_id=tenant.tenant_id,
        tenant_domain=tenant.initial_domain,
        connector_name=settings.connector_name,
        unique_name=unique_name,
        snapshot=snapshot,
        run_id=upgrade.run_id or "-",
    ))
    save(text)

    notices = _hand_rollback_to_support(settings, store, clock, tenant.tenant_id, upgrade, snapshot, actor)
    return WrittenScript(tenant.tenant_id, text, notices)


def _check_rollback_state(upgrade: UpgradeRecord) -> None:
    if upgrade.state == UpgradeState.ROLLED_BACK.value:
        raise UpgradeStateError(f"tenant {upgrade.tenant_id} is already rolled back; no rollback script is needed")
    if upgrade.state == UpgradeState.ROLLING_BACK.value:
        raise UpgradeStateError(
            f"tenanttls is rolling tenant {upgrade.tenant_id} back over the API; wait until "
            f"'tenanttls status {upgrade.tenant_id}' shows rolled_back instead of writing a rollback script"
        )


def _hand_rollback_to_support(
    settings: Settings,
    store: Store,
    clock: Clock,
    tenant_id: str,
    upgrade: UpgradeRecord,
    snapshot: InboundConnector,
    actor: str,
) -> tuple[str, ...]:
    """Switch the relay to the shared certificate and move the tenant to manual, in one transaction."""
    now = clock.now()
    legacy_name = settings.legacy_certificate_name
    notices = []
    with store.write() as connection:
        before = relay_assignments.find_assignment(connection, tenant_id)
        if before is None or before.mode != relay_assignments.LEGACY:
            relay_assignments.assign_legacy(connection, tenant_id, legacy_name, now)
            record_event(connection, AuditEvent(
                tenant_id=tenant_id, at=now, actor=actor, action="relay.switch", correlation_id=upgrade.run_id,
                before={"mode": before.mode if before else None, "certificate_name": before.certificate_name if before else None},
                after={"mode": relay_assignments.LEGACY, "certificate_name": legacy_name},
                detail="switched back before the manual rollback script runs",
            ))
            was = before.certificate_name if before else "no certificate"
            notices.append(
                f"relay switched back: mail of tenant {tenant_id} is now presented with the shared certificate "
                f"{legacy_name} (was {was}), because the rollback script makes the -BACKUP connector, which matches "
                "that name, the tenant's connector again"
            )
        else:
            notices.append(f"relay unchanged: it already presents the shared certificate {legacy_name} for tenant {tenant_id}")

        update_upgrade(
            connection, tenant_id, owner=None, expected_state=upgrade.state, state=UpgradeState.MANUAL.value,
            state_entered_at=now, requested=False, next_attempt_at=None, grace_until=None,
        )
        record_event(connection, AuditEvent(
            tenant_id=tenant_id, at=now, actor=actor, action=MANUAL_ROLLBACK_SCRIPT, correlation_id=upgrade.run_id,
            before={"state": upgrade.state},
            after={"state": UpgradeState.MANUAL.value, "kind": "rollback", "legacy_name": snapshot.name},
        ))

    if upgrade.state != UpgradeState.MANUAL.value:
        notices.append(f"tenant {tenant_id} moved from state {upgrade.state} to manual, so the worker and drift checks leave it alone")
    notices.append(
        f"after support ran the script, record the result with 'tenanttls manual done {tenant_id} --rolled-back "
        "--export CONNECTORS.json --export ACCEPTED-DOMAINS.json'"
    )
    logger.info("manual rollback script written: tenant=%s state_before=%s", tenant_id, upgrade.state)
    return tuple(notices)


# Shared by the scripts and the recording ---------------------------------------------------------


def tenant_and_upgrade(store: Store, tenant_id: str) -> tuple[TenantRecord, UpgradeRecord]:
    """Return the tenant and its upgrade row; raise `InvalidInput` for an id that is not a GUID."""
    tenant_id = validate_tenant_id(tenant_id)
    with store.engine.connect() as connection:
        tenant = get_tenant(connection, tenant_id)
        upgrade = get_upgrade(connection, tenant.tenant_id)
    return tenant, upgrade


def stored_snapshot(store: Store, tenant_id: str, run_id: str | None) -> InboundConnector | None:
    """Return the original connector saved for the run, or None."""
    if run_id is None:
        return None
    with store.engine.connect() as connection:
        saved = find_snapshot(connection, tenant_id, run_id=run_id, reason=SNAPSHOT_BEFORE_RENAME)
    return InboundConnector.from_exchange(saved.connector) if saved is not None else None


def read_tenant_exports(paths: Sequence[Path], tenant: TenantRecord) -> ExportSet:
    """Read export files and check that they are of `tenant`."""
    return read_export_set(
        list(paths),
        tenant=tenant.initial_domain,
        expected_from=f"tenant {tenant.tenant_id} in the store",
        other_tenant_fix=f"pass the files the script wrote in a session of {tenant.initial_domain}, or check the tenant id",
    )


def _snapshot_from_exports(settings: Settings, paths: Sequence[Path], tenant: TenantRecord) -> InboundConnector | None:
    """Return the original connector from Get-InboundConnector exports, by the engine's rules.

    A connector named ``…-BACKUP`` is the original after the rename, so its settings
    under the name without the suffix are the snapshot.
    """
    connectors = read_tenant_exports(paths, tenant).connectors
    desired = Desired(settings.connector_name, settings.legacy_certificate_name.lower(), settings.provider_zone, None, "")
    candidates = legacy_candidates(connectors, desired)
    if len(candidates) > 1:
        names = ", ".join(repr(c.name) for c in candidates)
        raise InvalidInput(f"several connectors look like the original one ({names}); export only the one to keep")
    if candidates:
        return candidates[0]

    for connector in connectors:
        if connector.name.upper().endswith(BACKUP_SUFFIX) and not is_ours(connector):
            raw = dict(connector.raw, Name=connector.name[: -len(BACKUP_SUFFIX)])
            return InboundConnector.from_exchange(raw)
    return None


def record(store: Store, event: AuditEvent) -> None:
    """Record one audit event in its own transaction."""
    with store.write() as connection:
        record_event(connection, event)


def manual_events(store: Store, tenant_id: str) -> list[AuditEvent]:
    """Return the tenant's manual-path events, oldest first."""
    with store.engine.connect() as connection:
        return list_events(connection, tenant_id, actions=MANUAL_ACTIONS)
