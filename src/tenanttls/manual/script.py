"""The PowerShell scripts of the manual path: the upgrade, and its rollback.

A script is the fixed text of `powershell.py` below a values block. The values block
is the only part that depends on the tenant; `quoting` writes each value as a
literal that PowerShell does not expand. The new connector's parameters come from
the engine's planner (`desired_connector`), so the script creates exactly the
connector the engine would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenanttls import __version__
from tenanttls.config import Settings
from tenanttls.domain.exchange import ConnectorSettings, InboundConnector
from tenanttls.domain.names import validate_connector_name, validate_domain_name, validate_tenant_id
from tenanttls.errors import InvalidInput
from tenanttls.manual import powershell
from tenanttls.manual.quoting import render_assignment
from tenanttls.migration.planner import (
    OWNERSHIP_MARKER,
    Desired,
    backup_name,
    desired_connector,
    settings_of,
    stamp_comment,
)

# Minutes the script polls Get-AcceptedDomain before it stops and asks to be run again.
ACCEPTED_WAIT_MINUTES = 120

# The TXT value Graph lists in verificationDnsRecords: "MS=ms" and eight digits.
# NOTE: Microsoft's pages show only the "MS=" prefix; the eight digits come from third-party reports.
_PROOF_TEXT = re.compile(r"MS=ms[0-9]{8}")


@dataclass(frozen=True)
class UpgradeScriptInput:
    """Everything the upgrade script needs to know about one tenant.

    `snapshot` is the original connector as tenanttls last saw it (store or export);
    when it is known the script checks the live connector against it and takes
    CloudServicesMailEnabled from it, otherwise the script copies that value from the
    live connector, as the engine does.
    """

    tenant_id: str
    tenant_domain: str
    connector_name: str
    legacy_certificate_name: str
    unique_name: str
    new_connector: ConnectorSettings
    run_id: str
    legacy_name: str
    snapshot: InboundConnector | None = None
    proof_text: str | None = None
    accepted_wait_minutes: int = ACCEPTED_WAIT_MINUTES


@dataclass(frozen=True)
class RollbackScriptInput:
    """Everything the rollback script needs: the tenant, our names, and the saved original connector."""

    tenant_id: str
    tenant_domain: str
    connector_name: str
    unique_name: str
    snapshot: InboundConnector
    run_id: str


def build_upgrade_input(
    settings: Settings,
    *,
    tenant_id: str,
    tenant_domain: str,
    unique_name: str,
    run_id: str,
    now: datetime,
    snapshot: InboundConnector | None = None,
    proof_text: str | None = None,
) -> UpgradeScriptInput:
    """Return the upgrade script's input, with the new connector computed by the engine's planner."""
    desired = Desired(
        connector_name=validate_connector_name(settings.connector_name),
        legacy_certificate_name=settings.legacy_certificate_name,
        zone=settings.provider_zone,
        unique_name=validate_domain_name(unique_name, what="unique name"),
        comment=stamp_comment(__version__, run_id, now),
    )
    cloud_services = snapshot.cloud_services_mail_enabled if snapshot is not None else True
    return UpgradeScriptInput(
        tenant_id=validate_tenant_id(tenant_id),
        tenant_domain=validate_domain_name(tenant_domain, what="tenant domain"),
        connector_name=desired.connector_name,
        legacy_certificate_name=settings.legacy_certificate_name.lower(),
        unique_name=desired.unique_name or unique_name,
        new_connector=desired_connector(desired, cloud_services),
        run_id=run_id,
        legacy_name=snapshot.name if snapshot is not None else desired.connector_name,
        snapshot=snapshot,
        proof_text=validate_proof_text(proof_text) if proof_text is not None else None,
    )


def validate_proof_text(value: str) -> str:
    """Return the TXT value without surrounding spaces, or raise `InvalidInput` unless it is ``MS=ms`` and 8 digits."""
    text = value.strip()
    if not _PROOF_TEXT.fullmatch(text):
        raise InvalidInput(
            f"invalid --proof {value[:40]!r}: expected the TXT value that Microsoft lists for the unique name, "
            "'MS=ms' and 8 digits such as MS=ms12345678"
        )
    return text


def render_upgrade_script(data: UpgradeScriptInput) -> str:
    """Return the upgrade script for one tenant."""
    values: dict[str, Any] = {
        "ScriptKind": "upgrade",
        "ToolVersion": __version__,
        "RunId": data.run_id,
        "TenantId": data.tenant_id,
        "TenantDomain": data.tenant_domain,
        "ConnectorName": data.connector_name,
        "LegacyName": data.legacy_name,
        "BackupName": backup_name(data.legacy_name),
        "LegacyCertificateName": data.legacy_certificate_name,
        "UniqueName": data.unique_name,
        "ProofText": data.proof_text or "",
        "OwnershipMarker": OWNERSHIP_MARKER,
        "AcceptedWaitMinutes": data.accepted_wait_minutes,
        "CopyCloudServicesMailEnabled": data.snapshot is None,
        "ExpectedLegacy": _settings_values(data.snapshot) if data.snapshot is not None else None,
        "NewConnector": data.new_connector.parameters(),
    }
    return _assemble(powershell.UPGRADE_HEADER, values, powershell.UPGRADE_FUNCTIONS, powershell.UPGRADE_MAIN)


def render_rollback_script(data: RollbackScriptInput) -> str:
    """Return the rollback script for one tenant, from the saved original connector."""
    snapshot = data.snapshot
    values: dict[str, Any] = {
        "ScriptKind": "rollback",
        "ToolVersion": __version__,
        "RunId": data.run_id,
        "TenantId": validate_tenant_id(data.tenant_id),
        "TenantDomain": validate_domain_name(data.tenant_domain, what="tenant domain"),
        "ConnectorName": validate_connector_name(data.connector_name),
        "LegacyName": snapshot.name,
        "BackupName": backup_name(snapshot.name),
        "UniqueName": validate_domain_name(data.unique_name, what="unique name"),
        "OwnershipMarker": OWNERSHIP_MARKER,
        "SnapshotSettings": _settings_values(snapshot),
        "SnapshotConnector": snapshot_parameters(snapshot),
    }
    return _assemble(powershell.ROLLBACK_HEADER, values, powershell.ROLLBACK_FUNCTIONS, powershell.ROLLBACK_MAIN)


def _settings_values(connector: InboundConnector) -> dict[str, Any]:
    """Return the engine's normalised mail-flow settings of `connector` as script values."""
    values: dict[str, Any] = {}
    for key, value in settings_of(connector).items():
        if isinstance(value, tuple):
            values[key] = list(value)
        elif value is None:
            values[key] = ""
        else:
            values[key] = value
    return values


def snapshot_parameters(snapshot: InboundConnector) -> dict[str, Any]:
    """Return New-InboundConnector parameters that create the saved connector again.

    Empty lists and an empty certificate name are left out, because New-InboundConnector
    rejects an empty value and their absence means the same.
    """
    parameters: dict[str, Any] = {"Name": snapshot.name}
    for key, value in _settings_values(snapshot).items():
        if value in ("", []):
            continue
        parameters[key] = value
    if snapshot.comment:
        parameters["Comment"] = snapshot.comment
    return parameters


def _assemble(header: str, values: dict[str, Any], functions: str, main: str) -> str:
    block = [powershell.VALUES_START]
    block += [render_assignment(name, value) for name, value in values.items()]
    block.append(powershell.VALUES_END)
    return "\n".join([header.rstrip("\n"), "", *block, powershell.COMMON_FUNCTIONS.rstrip("\n"), functions.rstrip("\n"), main])
