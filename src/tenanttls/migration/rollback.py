"""Rollback: put the tenant back as it was before the upgrade, from any state.

Order matters for mail flow: the relay goes back to the shared certificate first,
while both connectors still exist, so no message is presented with a name that no
connector accepts. Then our connector is removed, the backup gets its original
name back, and the restored connector is compared with the snapshot field by field.
The accepted domain stays: it is harmless and a later upgrade reuses it.
"""

from __future__ import annotations

import logging

from tenanttls.domain.exchange import InboundConnector
from tenanttls.errors import NotFound
from tenanttls.migration.changes import RemoveConnector, RenameConnector, SetConnector
from tenanttls.migration.outcomes import Advance, Outcome, StepNotDone, Stop, StopKind
from tenanttls.migration.planner import SNAPSHOT_BEFORE_RENAME, backup_name, is_ours, setting_differences
from tenanttls.migration.states import UpgradeState
from tenanttls.migration.steps import StepInput
from tenanttls.store import relay_assignments
from tenanttls.store.snapshots import find_snapshot

logger = logging.getLogger(__name__)

# Set-InboundConnector parameters that restore the settings compared by `setting_differences`.
_RESTORABLE = (
    "Enabled",
    "ConnectorType",
    "SenderDomains",
    "SenderIPAddresses",
    "TlsSenderCertificateName",
    "RequireTls",
    "RestrictDomainsToCertificate",
    "RestrictDomainsToIPAddresses",
    "CloudServicesMailEnabled",
    "TreatMessagesAsInternal",
    "TrustedOrganizations",
    "AssociatedAcceptedDomains",
)


def rolling_back(work: StepInput) -> Outcome:
    """Restore the original connector and the legacy relay assignment; leave for rolled_back."""
    _switch_relay_back(work)

    connectors = work.api.exchange.get_inbound_connectors(work.tenant_id)
    with work.context.store.engine.connect() as connection:
        saved = find_snapshot(connection, work.tenant_id, run_id=work.upgrade.run_id, reason=SNAPSHOT_BEFORE_RENAME)
    snapshot = InboundConnector.from_exchange(saved.connector) if saved is not None else None

    live = {connector.name.lower(): connector for connector in connectors}
    applier = work.applier(live)
    for connector in connectors:
        if is_ours(connector):
            applier.apply(RemoveConnector(connector.name, "rollback removes the connector tenanttls created"))

    if snapshot is None:
        return Advance(UpgradeState.ROLLED_BACK, "no connector was renamed in this run; nothing else to restore")

    stop = _restore_name(work, applier, live, snapshot)
    if stop is not None:
        return stop
    return _restore_settings(work, applier, snapshot)


def _switch_relay_back(work: StepInput) -> None:
    legacy_name = work.context.settings.legacy_certificate_name
    with work.context.store.write() as connection:
        before = relay_assignments.find_assignment(connection, work.tenant_id)
        if before is not None and before.mode == relay_assignments.LEGACY:
            return
        relay_assignments.assign_legacy(connection, work.tenant_id, legacy_name, work.now)
        work.recorder.event_in(
            connection,
            "relay.switch",
            {"mode": before.mode if before else None, "certificate_name": before.certificate_name if before else None},
            {"mode": relay_assignments.LEGACY, "certificate_name": legacy_name},
        )


def _restore_name(work: StepInput, applier, live: dict[str, InboundConnector], snapshot: InboundConnector) -> Outcome | None:
    original = live.get(snapshot.name.lower())
    backup = live.get(backup_name(snapshot.name).lower())
    if original is not None and is_ours(original):
        original = None  # removed above

    if original is None and backup is not None:
        applier.apply(RenameConnector(backup.name, snapshot.name))
        return None
    if original is not None and backup is None:
        return None  # the rename back already happened
    if original is not None and backup is not None:
        return Stop(
            StopKind.ROLLBACK_BLOCKED,
            f"both {snapshot.name!r} and {backup.name!r} exist in tenant {work.tenant_id}, and tenanttls "
            f"created neither; compare them with 'tenanttls history {work.tenant_id}', remove the wrong one, "
            f"then run 'tenanttls rollback {work.tenant_id}' again"
        )
    return Stop(
        StopKind.ROLLBACK_BLOCKED,
        f"neither {snapshot.name!r} nor {backup_name(snapshot.name)!r} exists in tenant {work.tenant_id}; "
        f"recreate the connector from the snapshot shown by 'tenanttls history {work.tenant_id}'"
    )


def _restore_settings(work: StepInput, applier, snapshot: InboundConnector) -> Outcome:
    try:
        restored = work.api.exchange.get_inbound_connector(work.tenant_id, snapshot.name)
    except NotFound as error:
        raise StepNotDone(f"connector {snapshot.name!r} is not visible in tenant {work.tenant_id} after the rename back") from error

    differences = setting_differences(restored, snapshot)
    if not differences:
        return Advance(UpgradeState.ROLLED_BACK, f"connector {snapshot.name!r} restored and matches the snapshot")

    parameters = {key: _parameter(value) for key, (_, value) in differences.items() if key in _RESTORABLE}
    applier.apply(SetConnector(connector_name=snapshot.name, differences=differences, parameters=parameters))
    again = setting_differences(work.api.exchange.get_inbound_connector(work.tenant_id, snapshot.name), snapshot)
    if again:
        raise StepNotDone(
            f"connector {snapshot.name!r} in tenant {work.tenant_id} still differs from its snapshot: {again}"
        )
    return Advance(UpgradeState.ROLLED_BACK, f"connector {snapshot.name!r} restored from the snapshot")


def _parameter(value):
    return list(value) if isinstance(value, tuple) else value
