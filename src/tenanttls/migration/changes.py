"""Typed changes of a `TenantPlan`, each printable as field-level before → after.

A change is plain data: the planner creates it, `describe` renders it, and the
applier in `tenanttls.migration.apply` carries it out. `step` is the upgrade state
whose step applies the change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenanttls.domain.exchange import ConnectorSettings
from tenanttls.migration.states import UpgradeState


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, (tuple, list)):
        return ",".join(str(item) for item in value) or "(empty)"
    return str(value)


@dataclass(frozen=True)
class Change:
    """Base of all changes."""

    step = UpgradeState.IDENTITY
    # True when applying the change writes to Microsoft 365 (it counts as an API call).
    writes_microsoft = False

    def describe(self) -> list[str]:
        """Return the lines that show this change to an operator."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """Return the change as a JSON object with its `type`, `step` and fields."""
        values = {name: _jsonable(value) for name, value in self.__dict__.items()}
        return {"type": type(self).__name__, "step": self.step.value, **values, "description": self.describe()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ConnectorSettings):
        return value.parameters()
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class AllocateIdentity(Change):
    """Allocate the tenant's unique name under the provider's zone."""

    zone: str
    step = UpgradeState.IDENTITY

    def describe(self) -> list[str]:
        return [f"allocate a unique name: (none) → <random label>.{self.zone}"]


@dataclass(frozen=True)
class IssueCertificate(Change):
    """Issue the TLS client certificate for the unique name."""

    name: str
    step = UpgradeState.IDENTITY

    def describe(self) -> list[str]:
        return [f"issue a certificate for {self.name}: (none) → active certificate"]


@dataclass(frozen=True)
class AddDomain(Change):
    """POST /domains: add the unique name to the tenant in Graph."""

    name: str
    step = UpgradeState.DOMAIN
    writes_microsoft = True

    def describe(self) -> list[str]:
        return [f"add domain {self.name} in Graph: absent → added (isVerified $false)"]


@dataclass(frozen=True)
class PublishVerificationRecord(Change):
    """Publish the MS= TXT record that proves the provider owns the name."""

    name: str
    step = UpgradeState.DOMAIN

    def describe(self) -> list[str]:
        return [f"publish TXT {self.name}: (none) → MS= value from verificationDnsRecords"]


@dataclass(frozen=True)
class VerifyDomain(Change):
    """POST /domains/{name}/verify."""

    name: str
    step = UpgradeState.DOMAIN
    writes_microsoft = True

    def describe(self) -> list[str]:
        return [f"verify domain {self.name}: isVerified $false → $true"]


@dataclass(frozen=True)
class AwaitAcceptedDomain(Change):
    """Poll Get-AcceptedDomain until it lists the name; Exchange adds it on its own."""

    name: str
    step = UpgradeState.ACCEPTED

    def describe(self) -> list[str]:
        return [f"wait for accepted domain {self.name}: not listed → listed by Get-AcceptedDomain"]


@dataclass(frozen=True)
class SaveSnapshot(Change):
    """Save the connector exactly as Exchange returned it, before it is changed."""

    connector_name: str
    reason: str
    step = UpgradeState.BACKUP

    def describe(self) -> list[str]:
        return [f"save connector {self.connector_name!r} to the store ({self.reason})"]


@dataclass(frozen=True)
class RemoveConnector(Change):
    """Remove-InboundConnector."""

    connector_name: str
    reason: str
    step = UpgradeState.BACKUP
    writes_microsoft = True

    def describe(self) -> list[str]:
        return [f"remove connector {self.connector_name!r}: present → absent ({self.reason})"]


@dataclass(frozen=True)
class RenameConnector(Change):
    """Set-InboundConnector -Identity <from> -Name <to>."""

    from_name: str
    to_name: str
    step = UpgradeState.BACKUP
    writes_microsoft = True

    def describe(self) -> list[str]:
        return [f"rename connector: Name {self.from_name!r} → {self.to_name!r}"]


@dataclass(frozen=True)
class CreateConnector(Change):
    """New-InboundConnector with the desired settings."""

    settings: ConnectorSettings
    step = UpgradeState.CONNECTOR
    writes_microsoft = True

    def describe(self) -> list[str]:
        lines = [f"create connector {self.settings.name!r}:"]
        for key, value in self.settings.parameters().items():
            if key != "Name":
                lines.append(f"  {key}: (none) → {_show(value)}")
        return lines


@dataclass(frozen=True)
class SetConnector(Change):
    """Set-InboundConnector on our connector for the fields that differ."""

    connector_name: str
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    step = UpgradeState.CONNECTOR
    writes_microsoft = True

    def describe(self) -> list[str]:
        lines = [f"update connector {self.connector_name!r}:"]
        for key, (before, after) in self.differences.items():
            lines.append(f"  {key}: {_show(before)} → {_show(after)}")
        return lines


@dataclass(frozen=True)
class AwaitGrace(Change):
    """Wait until the grace period after the connector's creation has passed."""

    until: datetime | None
    step = UpgradeState.GRACE

    def describe(self) -> list[str]:
        when = self.until.isoformat(timespec="seconds") if self.until else "the grace period after creation"
        return [f"wait until {when} before switching"]


@dataclass(frozen=True)
class SwitchRelay(Change):
    """Change the relay assignment to the unique certificate (with the state change, atomically)."""

    from_name: str
    to_name: str
    step = UpgradeState.SWITCHED

    def describe(self) -> list[str]:
        return [f"switch the relay's client certificate: {self.from_name} → {self.to_name}"]


@dataclass(frozen=True)
class ProbeMailFlow(Change):
    """Send a probe (null sender included) and check it is accepted and attributed to the tenant."""

    name: str
    step = UpgradeState.VERIFIED

    def describe(self) -> list[str]:
        return [f"probe mail flow presenting {self.name}: unverified → accepted and attributed"]
