"""Validation of cmdlet names and parameters before they are sent to Exchange.

Values that Exchange would reject are rejected here, with a message that names the
parameter and the value, so that a bad call never reaches the tenant.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Mapping

from tenanttls.domain.exchange import (
    BOOLEAN_CONNECTOR_FIELDS,
    CONNECTOR_SOURCES,
    CONNECTOR_TYPES,
    LIST_CONNECTOR_FIELDS,
    ConnectorSettings,
)
from tenanttls.domain.names import validate_connector_name, validate_domain_name
from tenanttls.errors import InvalidInput

# NOTE: estimate. Exchange documents no length limit for free-text values such as Comment;
# 1024 characters is far above any value tenanttls writes and keeps requests small.
MAX_PARAMETER_VALUE_LENGTH = 1024
# Upper bound on entries of one multi-valued parameter, far above what a connector needs.
MAX_LIST_ENTRIES = 1000

_CMDLET_NAME = re.compile(r"^[A-Z][a-z]+-[A-Z][A-Za-z]+$")
_PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")

# Parameters of New-InboundConnector and Set-InboundConnector (Exchange Online cmdlet
# reference), except Identity, Confirm and WhatIf, which the client sets itself.
CONNECTOR_PARAMETERS = frozenset(
    {
        "Name",
        "SenderDomains",
        "AssociatedAcceptedDomains",
        "ClientHostNames",
        "CloudServicesMailEnabled",
        "Comment",
        "ConnectorSource",
        "ConnectorType",
        "EFSkipIPs",
        "EFSkipLastIP",
        "EFSkipMailGateway",
        "EFTestMode",
        "EFUsers",
        "Enabled",
        "RequireTls",
        "RestrictDomainsToCertificate",
        "RestrictDomainsToIPAddresses",
        "ScanAndDropRecipients",
        "SenderIPAddresses",
        "TlsSenderCertificateName",
        "TreatMessagesAsInternal",
        "TrustedOrganizations",
    }
)

_DOMAIN_LIST_PARAMETERS = ("SenderDomains", "AssociatedAcceptedDomains", "TrustedOrganizations")
_IP_LIST_PARAMETERS = ("SenderIPAddresses", "EFSkipIPs")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_cmdlet_name(cmdlet: str) -> str:
    """Return `cmdlet` after checking it has the Verb-Noun form, such as ``Get-InboundConnector``."""
    if not isinstance(cmdlet, str) or not _CMDLET_NAME.match(cmdlet):
        raise InvalidInput(f"invalid cmdlet name {_show(cmdlet)}: expected Verb-Noun, like 'Get-InboundConnector'")
    return cmdlet


def validate_value(name: str, value: Any) -> None:
    """Raise `InvalidInput` unless `value` is a value InvokeCommand can carry for parameter `name`.

    Strings must be non-empty, at most `MAX_PARAMETER_VALUE_LENGTH` characters and free of
    control characters. Lists must be non-empty and hold valid values. None stands for
    PowerShell's ``$null``, which clears a value.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return

    if isinstance(value, str):
        if not value.strip():
            raise InvalidInput(f"invalid value for {name}: {_show(value)} is empty; give a value or None to clear it")
        if len(value) > MAX_PARAMETER_VALUE_LENGTH:
            raise InvalidInput(
                f"invalid value for {name}: {len(value)} characters, the maximum is {MAX_PARAMETER_VALUE_LENGTH} "
                f"(value starts {_show(value[:40])})"
            )
        if any(ord(ch) < 32 and ch not in "\t" for ch in value):
            raise InvalidInput(f"invalid value for {name}: {_show(value)} contains control characters")
        return

    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidInput(f"invalid value for {name}: the list is empty; give entries or None to clear it")
        if len(value) > MAX_LIST_ENTRIES:
            raise InvalidInput(f"invalid value for {name}: {len(value)} entries, the maximum is {MAX_LIST_ENTRIES}")
        for item in value:
            validate_value(name, item)
        return

    if isinstance(value, Mapping):  # a hashtable such as @{Add=...; Remove=...}
        for key, item in value.items():
            if key != "@odata.type":
                validate_value(f"{name}.{key}", item)
        return

    raise InvalidInput(f"invalid value for {name}: {type(value).__name__} {_show(value)} cannot be sent to Exchange")


def validate_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy of generic cmdlet `parameters` after checking names and values."""
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise InvalidInput(f"invalid cmdlet parameters {_show(parameters)}: expected a mapping of names to values")

    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not _PARAMETER_NAME.match(name):
            raise InvalidInput(f"invalid parameter name {_show(name)}: expected letters and digits, like 'Identity'")
        validate_value(name, value)
        checked[name] = list(value) if isinstance(value, tuple) else value
    return checked


def _validate_sender_domain(name: str, value: str) -> str:
    if value == "*":
        return value
    return validate_domain_name(value, allow_wildcard=True, what=f"{name} entry")


def _validate_ip(name: str, value: str) -> None:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidInput(f"invalid {name} entry {_show(value)}: expected an IP address or a CIDR range") from None
    if name == "SenderIPAddresses" and (network.version != 4 or network.prefixlen < 24):
        raise InvalidInput(
            f"invalid SenderIPAddresses entry {_show(value)}: Exchange accepts IPv4 addresses and ranges "
            "from /24 to /32 only"
        )


def _validate_connector_value(name: str, value: Any) -> Any:
    """Check one connector parameter against its type and return it in the form to send."""
    if value is None:
        return None
    if name in BOOLEAN_CONNECTOR_FIELDS:
        if not isinstance(value, bool):
            raise InvalidInput(f"invalid value for {name}: {_show(value)}; expected True or False")
        return value
    if name == "Name":
        return validate_connector_name(value)
    if name == "TlsSenderCertificateName":
        return validate_domain_name(value, allow_wildcard=True, what="TlsSenderCertificateName")
    if name == "ConnectorType":
        return _validate_choice(name, value, CONNECTOR_TYPES)
    if name == "ConnectorSource":
        return _validate_choice(name, value, CONNECTOR_SOURCES)

    if name in LIST_CONNECTOR_FIELDS:
        entries = [value] if isinstance(value, str) else value
        if isinstance(entries, Mapping):  # @{Add=...; Remove=...}
            validate_value(name, entries)
            return dict(entries)
        validate_value(name, entries)
        if name in _DOMAIN_LIST_PARAMETERS:
            return [_validate_sender_domain(name, entry) for entry in entries]
        if name in _IP_LIST_PARAMETERS:
            for entry in entries:
                _validate_ip(name, entry)
        return list(entries)

    validate_value(name, value)
    return value


def _validate_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    for choice in choices:
        if isinstance(value, str) and value.lower() == choice.lower():
            return choice
    raise InvalidInput(f"invalid value for {name}: {_show(value)}; expected one of {', '.join(choices)}")


def validate_connector_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Return Set-InboundConnector `parameters` checked and in the form to send.

    Names must be parameters of the cmdlet (Identity is passed separately). A rename is
    ``{"Name": new_name}``.
    """
    if not isinstance(parameters, Mapping) or not parameters:
        raise InvalidInput(f"invalid connector parameters {_show(parameters)}: give at least one parameter to change")

    unknown = sorted(str(name) for name in parameters if name not in CONNECTOR_PARAMETERS)
    if unknown:
        raise InvalidInput(
            f"unknown Set-InboundConnector parameter(s) {', '.join(unknown)}; "
            f"known parameters: {', '.join(sorted(CONNECTOR_PARAMETERS))}"
        )
    return {name: _validate_connector_value(name, value) for name, value in parameters.items()}


def validate_connector_settings(settings: ConnectorSettings) -> dict[str, Any]:
    """Return the New-InboundConnector parameters of `settings`, checked."""
    if not isinstance(settings, ConnectorSettings):
        raise InvalidInput(f"invalid connector settings {_show(settings)}: expected a ConnectorSettings")
    return validate_connector_parameters(settings.parameters())
