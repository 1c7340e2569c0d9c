"""Typed records for Exchange Online objects, with Exchange's wire forms normalised.

Exchange returns values in several forms for one meaning: `SenderDomains` as
``smtp:*;1``, `ConnectorType` as ``OnPremises`` or ``onPremises``, `ConnectorSource`
``AdminUI`` where the cmdlet documentation says ``Default``. The records here hold
the normalised values, plus `raw`, the object exactly as Exchange returned it, so a
snapshot can restore every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from tenanttls.errors import InvalidInput

CONNECTOR_TYPES = ("OnPremises", "Partner")
CONNECTOR_SOURCES = ("Default", "HybridWizard", "Migrated")

# Parameters that New-InboundConnector and Set-InboundConnector accept with a boolean value.
BOOLEAN_CONNECTOR_FIELDS = (
    "Enabled",
    "RequireTls",
    "RestrictDomainsToCertificate",
    "RestrictDomainsToIPAddresses",
    "CloudServicesMailEnabled",
    "TreatMessagesAsInternal",
    "EFTestMode",
    "EFSkipLastIP",
)

# Parameters that take a list (Exchange's MultiValuedProperty).
LIST_CONNECTOR_FIELDS = (
    "SenderDomains",
    "SenderIPAddresses",
    "TrustedOrganizations",
    "AssociatedAcceptedDomains",
    "ClientHostNames",
    "EFSkipIPs",
    "EFSkipMailGateway",
    "EFUsers",
    "ScanAndDropRecipients",
)

STRING_CONNECTOR_FIELDS = ("Name", "Comment", "TlsSenderCertificateName", "ConnectorType", "ConnectorSource")


def normalise_sender_domain(value: str) -> str:
    """Return a sender domain without Exchange's address-space wrapping.

    ``smtp:*;1`` becomes ``*`` and ``SMTP:Contoso.com;1`` becomes ``contoso.com``.
    """
    text = value.strip()
    if text.lower().startswith("smtp:"):
        text = text[5:]
    if ";" in text:
        text = text.rsplit(";", 1)[0]
    return text.lower()


def normalise_connector_type(value: str | None) -> str | None:
    """Return ``OnPremises`` or ``Partner`` for any casing Exchange uses; other values unchanged."""
    if value is None:
        return None
    for known in CONNECTOR_TYPES:
        if value.lower() == known.lower():
            return known
    return value


def normalise_connector_source(value: str | None) -> str | None:
    """Return the documented `ConnectorSource`; ``AdminUI`` (seen in live output) means ``Default``."""
    if value is None:
        return None
    if value.lower() == "adminui":
        return "Default"
    for known in CONNECTOR_SOURCES:
        if value.lower() == known.lower():
            return known
    return value


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(item) for item in value)


def _as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "$true", "yes")


def _as_datetime(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class InboundConnector:
    """An inbound connector as Get-InboundConnector returns it, normalised."""

    name: str
    enabled: bool
    connector_type: str | None
    connector_source: str | None
    sender_domains: tuple[str, ...]
    sender_ip_addresses: tuple[str, ...]
    tls_sender_certificate_name: str | None
    require_tls: bool
    restrict_domains_to_certificate: bool
    restrict_domains_to_ip_addresses: bool
    cloud_services_mail_enabled: bool
    treat_messages_as_internal: bool
    trusted_organizations: tuple[str, ...] = ()
    associated_accepted_domains: tuple[str, ...] = ()
    comment: str = ""
    guid: str | None = None
    when_created: datetime | None = None
    when_changed: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_exchange(cls, raw: Mapping[str, Any]) -> "InboundConnector":
        """Build a record from one object of an InvokeCommand `value` array.

        Raises KeyError only when `Name` is missing; callers that parse responses
        convert that into `UnexpectedResponse`.
        """
        certificate_name = raw.get("TlsSenderCertificateName") or None
        return cls(
            name=raw["Name"],
            enabled=_as_bool(raw.get("Enabled"), default=True),
            connector_type=normalise_connector_type(raw.get("ConnectorType")),
            connector_source=normalise_connector_source(raw.get("ConnectorSource")),
            sender_domains=tuple(normalise_sender_domain(d) for d in _as_list(raw.get("SenderDomains"))),
            sender_ip_addresses=_as_list(raw.get("SenderIPAddresses")),
            tls_sender_certificate_name=certificate_name.lower() if certificate_name else None,
            require_tls=_as_bool(raw.get("RequireTls")),
            restrict_domains_to_certificate=_as_bool(raw.get("RestrictDomainsToCertificate")),
            restrict_domains_to_ip_addresses=_as_bool(raw.get("RestrictDomainsToIPAddresses")),
            cloud_services_mail_enabled=_as_bool(raw.get("CloudServicesMailEnabled")),
            treat_messages_as_internal=_as_bool(raw.get("TreatMessagesAsInternal")),
            trusted_organizations=_as_list(raw.get("TrustedOrganizations")),
            associated_accepted_domains=tuple(d.lower() for d in _as_list(raw.get("AssociatedAcceptedDomains"))),
            comment=raw.get("Comment") or "",
            guid=raw.get("Guid") or raw.get("ExchangeObjectId"),
            when_created=_as_datetime(raw.get("WhenCreatedUTC") or raw.get("WhenCreated")),
            when_changed=_as_datetime(raw.get("WhenChangedUTC") or raw.get("WhenChanged")),
            raw=dict(raw),
        )


@dataclass(frozen=True)
class ConnectorSettings:
    """The parameters of New-InboundConnector (and of Set-InboundConnector, minus Name).

    `parameters()` renders the InvokeCommand `Parameters` object.
    """

    name: str
    sender_domains: tuple[str, ...] = ("*",)
    connector_type: str = "OnPremises"
    require_tls: bool = True
    restrict_domains_to_certificate: bool = True
    tls_sender_certificate_name: str | None = None
    cloud_services_mail_enabled: bool = True
    treat_messages_as_internal: bool = False
    restrict_domains_to_ip_addresses: bool = False
    sender_ip_addresses: tuple[str, ...] = ()
    enabled: bool = True
    comment: str = ""

    def __post_init__(self) -> None:
        # A str is a sequence too, so sender_domains="contoso.com" would become the entries 'c', 'o', ...
        for name in ("sender_domains", "sender_ip_addresses"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise InvalidInput(
                    f"invalid {name} {value!r}: expected a tuple of strings, not one str; write ({value!r},)"
                )
            if not isinstance(value, (tuple, list)):
                raise InvalidInput(f"invalid {name} {value!r}: expected a tuple of strings, got {type(value).__name__}")
            for entry in value:
                if not isinstance(entry, str):
                    raise InvalidInput(f"invalid {name} entry {entry!r}: expected a str, got {type(entry).__name__}")
            object.__setattr__(self, name, tuple(value))

    def parameters(self) -> dict[str, Any]:
        """Return the InvokeCommand `Parameters` for New-InboundConnector."""
        parameters: dict[str, Any] = {
            "Name": self.name,
            "SenderDomains": list(self.sender_domains),
            "ConnectorType": self.connector_type,
            "RequireTls": self.require_tls,
            "RestrictDomainsToCertificate": self.restrict_domains_to_certificate,
            "RestrictDomainsToIPAddresses": self.restrict_domains_to_ip_addresses,
            "CloudServicesMailEnabled": self.cloud_services_mail_enabled,
            "TreatMessagesAsInternal": self.treat_messages_as_internal,
            "Enabled": self.enabled,
        }
        if self.tls_sender_certificate_name:
            parameters["TlsSenderCertificateName"] = self.tls_sender_certificate_name
        if self.sender_ip_addresses:
            parameters["SenderIPAddresses"] = list(self.sender_ip_addresses)
        if self.comment:
            parameters["Comment"] = self.comment
        return parameters

    def differences(self, connector: InboundConnector) -> dict[str, tuple[Any, Any]]:
        """Return ``{field: (current, desired)}`` for every field where `connector` differs.

        `Comment` is not compared: it carries a run id that changes on every run.
        Names and certificate names compare case-insensitively, as Exchange does.
        """
        desired = {
            "Name": self.name.lower(),
            "SenderDomains": tuple(sorted(d.lower() for d in self.sender_domains)),
            "ConnectorType": self.connector_type,
            "RequireTls": self.require_tls,
            "RestrictDomainsToCertificate": self.restrict_domains_to_certificate,
            "TlsSenderCertificateName": (self.tls_sender_certificate_name or "").lower() or None,
            "CloudServicesMailEnabled": self.cloud_services_mail_enabled,
            "TreatMessagesAsInternal": self.treat_messages_as_internal,
            "Enabled": self.enabled,
        }
        current = {
            "Name": connector.name.lower(),
            "SenderDomains": tuple(sorted(connector.sender_domains)),
            "ConnectorType": connector.connector_type,
            "RequireTls": connector.require_tls,
            "RestrictDomainsToCertificate": connector.restrict_domains_to_certificate,
            "TlsSenderCertificateName": connector.tls_sender_certificate_name,
            "CloudServicesMailEnabled": connector.cloud_services_mail_enabled,
            "TreatMessagesAsInternal": connector.treat_messages_as_internal,
            "Enabled": connector.enabled,
        }
        return {key: (current[key], desired[key]) for key in desired if current[key] != desired[key]}


@dataclass(frozen=True)
class AcceptedDomain:
    """An accepted domain as Get-AcceptedDomain returns it."""

    domain_name: str
    name: str
    domain_type: str
    default: bool
    initial: bool
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_exchange(cls, raw: Mapping[str, Any]) -> "AcceptedDomain":
        """Build a record from one object of an InvokeCommand `value` array (KeyError if no DomainName)."""
        return cls(
            domain_name=str(raw["DomainName"]).lower(),
            name=str(raw.get("Name") or raw["DomainName"]),
            domain_type=str(raw.get("DomainType") or "Authoritative"),
            default=_as_bool(raw.get("Default")),
            initial=_as_bool(raw.get("InitialDomain")),
            raw=dict(raw),
        )
