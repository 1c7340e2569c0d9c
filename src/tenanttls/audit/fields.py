"""The fields of Get-InboundConnector and Get-AcceptedDomain exports, and their types.

`convert_value` turns a value as written (JSON or Format-List text) into a Python
value: bool, tuple of strings, datetime, or string. Values of the wrong type raise
`ExportError` naming the file, line and field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Callable

from tenanttls.audit.dates import DateFormatError, DateOrder, parse_culture_date, parse_json_date
from tenanttls.errors import ExportError

BOOL, LIST, DATE, TEXT, ANY = "bool", "list", "date", "text", "any"

# Properties that every Exchange configuration object carries, plus those that
# PowerShell adds to objects from a remote session.
_COMMON_FIELDS = {
    "Name": TEXT,
    "Identity": ANY,
    "Id": ANY,
    "AdminDisplayName": TEXT,
    "ExchangeVersion": ANY,
    "DistinguishedName": TEXT,
    "ObjectCategory": ANY,
    "ObjectClass": LIST,
    "WhenChanged": DATE,
    "WhenCreated": DATE,
    "WhenChangedUTC": DATE,
    "WhenCreatedUTC": DATE,
    "ExchangeObjectId": TEXT,
    "Guid": TEXT,
    "OrganizationId": ANY,
    "OrganizationalUnitRoot": ANY,
    "OriginatingServer": TEXT,
    "IsValid": BOOL,
    "ObjectState": ANY,
    "PSComputerName": TEXT,
    "PSShowComputerName": BOOL,
    "RunspaceId": TEXT,
    "PSSourceJobInstanceId": TEXT,
}

CONNECTOR_FIELDS = {
    **_COMMON_FIELDS,
    "Enabled": BOOL,
    "ConnectorType": TEXT,
    "ConnectorSource": TEXT,
    "Comment": TEXT,
    "SenderIPAddresses": LIST,
    "SenderDomains": LIST,
    "TrustedOrganizations": LIST,
    "AssociatedAcceptedDomains": LIST,
    "ClientHostNames": LIST,
    "RequireTls": BOOL,
    "RestrictDomainsToIPAddresses": BOOL,
    "RestrictDomainsToCertificate": BOOL,
    "CloudServicesMailEnabled": BOOL,
    "TreatMessagesAsInternal": BOOL,
    "TlsSenderCertificateName": TEXT,
    "DetectSenderIPBySkippingLastIP": BOOL,
    "DetectSenderIPBySkippingTheseIPs": LIST,
    "DetectSenderIPBySkippingTheseProviders": LIST,
    "DetectSenderIPRecipientList": LIST,
    "EFTestMode": BOOL,
    "EFSkipLastIP": BOOL,
    "EFSkipIPs": LIST,
    "EFSkipMailGateway": LIST,
    "EFUsers": LIST,
    "ScanAndDropRecipients": LIST,
}

ACCEPTED_DOMAIN_FIELDS = {
    **_COMMON_FIELDS,
    "DomainName": TEXT,
    "DomainType": TEXT,
    "MatchSubDomains": BOOL,
    "AddressBookEnabled": BOOL,
    "Default": BOOL,
    "EmailOnly": BOOL,
    "ExternallyManaged": BOOL,
    "AuthenticationType": ANY,
    "LiveIdInstanceType": ANY,
    "PendingRemoval": BOOL,
    "PendingCompletion": BOOL,
    "FederatedOrganizationLink": ANY,
    "MailFlowPartner": ANY,
    "OutboundOnly": BOOL,
    "PendingFederatedAccountNamespace": BOOL,
    "PendingFederatedDomain": BOOL,
    "IsCoexistenceDomain": BOOL,
    "PerimeterDuplicateDetected": BOOL,
    "IsDefaultFederatedDomain": BOOL,
    "EnableNego2Authentication": BOOL,
    "InitialDomain": BOOL,
    "CatchAllRecipientID": ANY,
    "SendingFromDomainDisabled": BOOL,
    "SendingToDomainDisabled": BOOL,
}

# Fields without which the findings cannot be computed; an export made with
# Select-Object or cut short lacks some of them.
REQUIRED_CONNECTOR_FIELDS = (
    "Name",
    "Enabled",
    "ConnectorType",
    "SenderDomains",
    "SenderIPAddresses",
    "RequireTls",
    "RestrictDomainsToIPAddresses",
    "RestrictDomainsToCertificate",
    "CloudServicesMailEnabled",
    "TlsSenderCertificateName",
)
REQUIRED_ACCEPTED_DOMAIN_FIELDS = ("DomainName", "DomainType")

# The last properties that Format-List writes for every Exchange configuration object,
# connectors and accepted domains alike; an object without them was cut off.
# NOTE: taken from published Format-List output of both cmdlets (EvotecIT/PSWinDocumentation.O365);
# an Exchange Online version that dropped these properties would fail every Format-List export.
FORMAT_LIST_LAST_FIELDS = ("IsValid", "ObjectState")

# What ConvertTo-Json writes for an object nested deeper than -Depth: its .NET type name.
_TYPE_NAME = re.compile(r"^(System|Microsoft)\.[A-Za-z0-9_.`\[\], ]+$")


class FieldContext:
    """Where a value comes from, for error messages: file, line, field, and the file's date order."""

    def __init__(self, path: str, line: int, name: str, date_order: DateOrder) -> None:
        self.path = path
        self.line = line
        self.name = name
        self.date_order = date_order

    def error(self, problem: str, fix: str) -> ExportError:
        """Return an `ExportError` that names the file, line and field."""
        return ExportError(
            f"{self.path}:{self.line}: field {self.name} {problem}; {fix}",
            path=self.path,
            line=self.line,
            field=self.name,
        )


def convert_value(kind: str, value: Any, context: FieldContext, *, from_json: bool) -> Any:
    """Return `value` as the Python type for `kind`, or raise `ExportError` naming the field."""
    if isinstance(value, str) and _TYPE_NAME.match(value.strip()) and kind in (LIST, DATE, BOOL):
        raise context.error(
            f"contains the type name {value.strip()[:60]!r} instead of its value",
            "export again with 'ConvertTo-Json -Depth 5'",
        )
    converter: Callable[[Any, FieldContext, bool], Any] = _CONVERTERS[kind]
    return converter(value, context, from_json)


def _to_bool(value: Any, context: FieldContext, from_json: bool) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise context.error(f"is {value!r}, expected True or False", "check that the file was not edited")


def _to_list(value: Any, context: FieldContext, from_json: bool) -> tuple[str, ...]:
    value = _unwrap(value)
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(_list_item(item, context) for item in value)
    if isinstance(value, str):
        return _parse_braced_list(value, context)
    return (_list_item(value, context),)


def _unwrap(value: Any) -> Any:
    # Windows PowerShell 5.1 writes some collections and dates as {"value": ..., "Count": n}.
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _list_item(item: Any, context: FieldContext) -> str:
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return str(item)
    if isinstance(item, dict):
        # A deserialized address space or domain object carries its text in one of these.
        for key in ("Address", "Domain", "AddressString", "Name"):
            if isinstance(item.get(key), str):
                return item[key].strip()
    raise context.error(f"has an item {str(item)[:60]!r} that is not text", "export again with 'ConvertTo-Json -Depth 5'")


def _parse_braced_list(text: str, context: FieldContext) -> tuple[str, ...]:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return (stripped,)

    inner = stripped[1:-1].strip()
    if inner.endswith("..."):
        raise context.error(
            "is cut short with '...' because Format-List shows only $FormatEnumerationLimit items",
            "run '$FormatEnumerationLimit = -1' in the session and export again",
        )
    if not inner:
        return ()
    return tuple(item.strip() for item in inner.split(",") if item.strip())


def _to_date(value: Any, context: FieldContext, from_json: bool) -> datetime | None:
    value = _unwrap(value)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise context.error(f"is {value!r}, expected a date", "export again with 'ConvertTo-Json -Depth 5'")
    try:
        if from_json:
            return parse_json_date(value)
        return parse_culture_date(value, context.date_order)
    except DateFormatError as error:
        raise context.error(f"is not a date ({error})", "check that the file was not edited") from error


def _to_text(value: Any, context: FieldContext, from_json: bool) -> str:
    value = _unwrap(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise context.error(
            f"is the number {value}, which is how ConvertTo-Json writes an enumeration",
            "export again with 'ConvertTo-Json -Depth 5 -EnumsAsStrings' (PowerShell 7) or with Format-List",
        )
    raise context.error(f"is {str(value)[:60]!r}, expected text", "export again with 'ConvertTo-Json -Depth 5'")


def _to_any(value: Any, context: FieldContext, from_json: bool) -> Any:
    return value


_CONVERTERS: dict[str, Callable[[Any, FieldContext, bool], Any]] = {
    BOOL: _to_bool,
    LIST: _to_list,
    DATE: _to_date,
    TEXT: _to_text,
    ANY: _to_any,
}
