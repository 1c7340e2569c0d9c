"""Write the export fixtures of this folder: run ``python tests/audit/exports/generate.py``.

The field names, order and value forms follow real Get-InboundConnector and
Get-AcceptedDomain output, with placeholder names: the tenants are contoso and
fabrikam, the provider is "Northwind" (connector NorthwindInboundConnector, shared
certificate *.northwind.example, unique names under northwindtls.example).
Windows PowerShell 5.1 JSON (4-space indent, "/Date(ms)/" dates) and PowerShell 7
JSON (2-space indent, ISO dates) are both written, and Format-List text in the
en-US and de-DE cultures, in UTF-8 and UTF-16 LE with a byte order mark.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).parent
FOREST = "EURPR01A001"
UNIQUE = "k7q2m4x9d3f8h1j6n5p0r2t4vw.northwindtls.example"
LEGACY = "*.northwind.example"
SCANNER_IPS = ["198.51.100.10", "198.51.100.11", "203.0.113.20", "203.0.113.21"]
RELAY_IPS = ["192.0.2.25", "192.0.2.26", "192.0.2.27"]


def organization_id(tenant: str) -> str:
    host = f"{FOREST}.PROD.OUTLOOK.COM"
    return f"{host}/Microsoft Exchange Hosted Organizations/{tenant} - {host}/ConfigurationUnits/{tenant}/Configuration"


def connector(tenant: str, name: str, guid: str, created: datetime, changed: datetime, **fields) -> dict:
    """Return a connector with every field Get-InboundConnector shows, in its order."""
    record = {
        "Enabled": True,
        "ConnectorType": "OnPremises",
        "ConnectorSource": "AdminUI",
        "Comment": "",
        "SenderIPAddresses": [],
        "SenderDomains": ["smtp:*;1"],
        "TrustedOrganizations": [],
        "AssociatedAcceptedDomains": [],
        "ClientHostNames": [],
        "RequireTls": True,
        "RestrictDomainsToIPAddresses": False,
        "RestrictDomainsToCertificate": True,
        "CloudServicesMailEnabled": True,
        "TreatMessagesAsInternal": False,
        "TlsSenderCertificateName": "",
        "DetectSenderIPBySkippingLastIP": False,
        "DetectSenderIPBySkippingTheseIPs": [],
        "DetectSenderIPBySkippingTheseProviders": [],
        "DetectSenderIPRecipientList": [],
        "EFTestMode": False,
        "ScanAndDropRecipients": [],
        "EFSkipLastIP": False,
        "EFSkipIPs": [],
        "EFSkipMailGateway": [],
        "EFUsers": [],
        "AdminDisplayName": "",
        "ExchangeVersion": "0.1 (8.0.535.0)",
        "Name": name,
        "DistinguishedName": (
            f"CN={name},CN=Transport Settings,CN=Configuration,CN={tenant},CN=ConfigurationUnits,"
            f"DC={FOREST},DC=PROD,DC=OUTLOOK,DC=COM"
        ),
        "Identity": name,
        "ObjectCategory": f"{FOREST}.PROD.OUTLOOK.COM/Configuration/Schema/ms-Exch-SMTP-Inbound-Connector",
        "ObjectClass": ["top", "msExchSMTPInboundConnector"],
        "WhenChanged": changed,
        "WhenCreated": created,
        "WhenChangedUTC": changed,
        "WhenCreatedUTC": created,
        "ExchangeObjectId": guid,
        "OrganizationId": organization_id(tenant),
        "Id": name,
        "Guid": guid,
        "OriginatingServer": f"{FOREST}.PROD.OUTLOOK.COM",
        "IsValid": True,
        "ObjectState": "Unchanged",
    }
    record.update(fields)
    return record


def accepted_domain(tenant: str, domain: str, guid: str, created: datetime, **fields) -> dict:
    """Return an accepted domain with every field Get-AcceptedDomain shows, in its order."""
    record = {
        "DomainName": domain,
        "CatchAllRecipientID": None,
        "DomainType": "Authoritative",
        "MatchSubDomains": False,
        "AddressBookEnabled": True,
        "Default": False,
        "EmailOnly": False,
        "ExternallyManaged": False,
        "AuthenticationType": "Managed",
        "LiveIdInstanceType": "Business",
        "PendingRemoval": False,
        "PendingCompletion": False,
        "FederatedOrganizationLink": None,
        "MailFlowPartner": None,
        "OutboundOnly": False,
        "PendingFederatedAccountNamespace": False,
        "PendingFederatedDomain": False,
        "IsCoexistenceDomain": False,
        "PerimeterDuplicateDetected": False,
        "IsDefaultFederatedDomain": False,
        "EnableNego2Authentication": False,
        "InitialDomain": False,
        "SendingFromDomainDisabled": False,
        "AdminDisplayName": "",
        "ExchangeVersion": "0.20 (15.0.0.0)",
        "Name": domain,
        "DistinguishedName": (
            f"CN={domain},CN=Accepted Domains,CN=Transport Settings,CN=Configuration,CN={tenant},"
            f"CN=ConfigurationUnits,DC={FOREST},DC=PROD,DC=OUTLOOK,DC=COM"
        ),
        "Identity": domain,
        "ObjectCategory": f"{FOREST}.PROD.OUTLOOK.COM/Configuration/Schema/ms-Exch-Accepted-Domain",
        "ObjectClass": ["top", "msExchAcceptedDomain"],
        "WhenChanged": created,
        "WhenCreated": created,
        "WhenChangedUTC": created,
        "WhenCreatedUTC": created,
        "ExchangeObjectId": guid,
        "OrganizationId": organization_id(tenant),
        "Id": domain,
        "Guid": guid,
        "OriginatingServer": f"{FOREST}.PROD.OUTLOOK.COM",
        "IsValid": True,
        "ObjectState": "Unchanged",
    }
    record.update(fields)
    return record


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


# --- writers ------------------------------------------------------------------------------------


def _ps51_value(value):
    if isinstance(value, datetime):
        return f"/Date({int(value.timestamp() * 1000)})/"
    return value


def write_ps51_json(path: Path, records: list[dict], encoding: str = "utf-8") -> None:
    """Write JSON as Windows PowerShell 5.1 does: 4-space indent, '"key":  value', escaped slashes."""
    converted = [{k: _ps51_value(v) for k, v in r.items()} for r in records]
    text = json.dumps(converted if len(converted) > 1 else converted[0], indent=4, ensure_ascii=False)
    text = text.replace('": ', '":  ').replace("/", "\\/")
    _write(path, text + "\n", encoding)


def write_ps7_json(path: Path, records: list[dict], encoding: str = "utf-8") -> None:
    """Write JSON as PowerShell 7 does: 2-space indent and ISO 8601 dates with 7 fraction digits."""

    def iso(value):
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        return value

    converted = [{k: iso(v) for k, v in r.items()} for r in records]
    _write(path, json.dumps(converted, indent=2, ensure_ascii=False) + "\n", encoding)


def _list_value(value, culture: str) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return "{" + ", ".join(value) + "}"
    if isinstance(value, datetime):
        if culture == "de-DE":
            return value.strftime("%d.%m.%Y %H:%M:%S")
        hour = value.hour % 12 or 12
        return f"{value.month}/{value.day}/{value.year} {hour}:{value:%M:%S} {'PM' if value.hour >= 12 else 'AM'}"
    return "" if value is None else str(value)


def write_format_list(path: Path, records: list[dict], culture: str, encoding: str, width: int = 120) -> None:
    """Write Format-List output: padded keys, values wrapped at `width` onto indented lines."""
    key_width = max(len(k) for r in records for k in r)
    blocks = []
    for record in records:
        lines = []
        for key, value in record.items():
            text = _list_value(value, culture)
            room = width - key_width - 3
            chunks = [text[i : i + room] for i in range(0, len(text), room)] or [""]
            lines.append(f"{key.ljust(key_width)} : {chunks[0]}".rstrip())
            lines.extend(" " * (key_width + 3) + chunk for chunk in chunks[1:])
        blocks.append("\n".join(lines))
    _write(path, "\n\n" + "\n\n".join(blocks) + "\n\n\n", encoding)


def _write(path: Path, text: str, encoding: str) -> None:
    text = text.replace("\n", "\r\n")
    if encoding == "utf-16":
        path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    elif encoding == "utf-8-sig":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    else:
        path.write_bytes(text.encode("utf-8"))


# --- the fixtures -------------------------------------------------------------------------------

C = "contoso.onmicrosoft.com"
F = "fabrikam.onmicrosoft.com"


def contoso_domains(with_unique: bool) -> list[dict]:
    domains = [
        accepted_domain(C, C, "5f0b7a3e-1c2d-4e5f-8a9b-0c1d2e3f4a01", at(2021, 3, 4, 9, 12, 30), InitialDomain=True),
        accepted_domain(C, "contoso.com", "5f0b7a3e-1c2d-4e5f-8a9b-0c1d2e3f4a02", at(2021, 3, 4, 10, 2, 11), Default=True),
        accepted_domain(C, "contoso.mail.onmicrosoft.com", "5f0b7a3e-1c2d-4e5f-8a9b-0c1d2e3f4a03", at(2021, 3, 4, 9, 12, 31)),
    ]
    if with_unique:
        domains.append(accepted_domain(C, UNIQUE, "5f0b7a3e-1c2d-4e5f-8a9b-0c1d2e3f4a04", at(2026, 2, 14, 8, 40, 5)))
    return domains


def legacy_provider(**fields) -> dict:
    return connector(
        C, "NorthwindInboundConnector", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c01",
        at(2023, 11, 14, 22, 13, 20), at(2024, 6, 2, 7, 5, 44),
        TlsSenderCertificateName=LEGACY, **fields,
    )


def scanner(guid: str = "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c02", **fields) -> dict:
    values = dict(
        SenderIPAddresses=SCANNER_IPS, RequireTls=False, RestrictDomainsToIPAddresses=True,
        RestrictDomainsToCertificate=False,
    )
    values.update(fields)
    return connector(C, "Contoso Scanner", guid, at(2022, 1, 10, 13, 0, 0), at(2022, 1, 10, 13, 5, 0), **values)


def main() -> None:
    # A tenant before the upgrade: the shared wildcard name, and an IP-based scanner connector.
    write_ps51_json(HERE / "contoso-legacy-connectors.json", [legacy_provider(), scanner()])
    write_ps51_json(HERE / "contoso-accepted-domains.json", contoso_domains(False))

    # The same tenant after the upgrade, PowerShell 7 JSON and German Format-List in UTF-16.
    upgraded = connector(
        C, "NorthwindInboundConnector", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c03",
        at(2026, 2, 15, 8, 0, 0), at(2026, 2, 15, 8, 0, 0),
        TlsSenderCertificateName=UNIQUE, ConnectorSource="Default",
        Comment="tenanttls 0.1.0 run 01HZX3Q8W6 2026-02-15T08:00:00Z",
    )
    backup = legacy_provider(Name="NorthwindInboundConnector-BACKUP", Identity="NorthwindInboundConnector-BACKUP")
    write_ps7_json(HERE / "contoso-upgraded-connectors.json", [upgraded, backup])
    write_format_list(HERE / "contoso-upgraded-accepted-domains.txt", contoso_domains(True), "de-DE", "utf-16")

    # An IP-based provider connector in en-US Format-List, UTF-8 with a byte order mark.
    ip_provider = connector(
        C, "NorthwindInboundConnector", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c04",
        at(2020, 5, 3, 16, 30, 0), at(2023, 11, 2, 21, 1, 9),
        SenderIPAddresses=RELAY_IPS, RestrictDomainsToIPAddresses=True, RestrictDomainsToCertificate=False,
        RequireTls=False,
    )
    write_format_list(HERE / "contoso-ip-connectors.txt", [ip_provider, scanner()], "en-US", "utf-8-sig")

    # A new connector that Exchange created disabled (never changed since), and a second
    # enabled connector on the same certificate name.
    disabled = dict(upgraded, Enabled=False, WhenChanged=at(2026, 2, 15, 8, 0, 0), WhenChangedUTC=at(2026, 2, 15, 8, 0, 0))
    other = connector(
        C, "Contoso Archive Relay", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c05",
        at(2025, 7, 1, 12, 0, 0), at(2025, 7, 1, 12, 30, 0), TlsSenderCertificateName="relay.contoso.com",
    )
    twin = connector(
        C, "Contoso Archive Relay 2", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c06",
        at(2025, 7, 2, 12, 0, 0), at(2025, 7, 2, 12, 30, 0), TlsSenderCertificateName="relay.contoso.com",
    )
    write_ps7_json(HERE / "contoso-disabled-connectors.json", [disabled, backup, other, twin])

    # Conflicts: a leftover -BACKUP beside the legacy connector, two connectors of one name,
    # a Partner connector, a wildcard over an accepted domain, lower-case 'onPremises'.
    leftover = dict(backup, Guid="9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c0a", ExchangeObjectId="9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c0a")
    conflicts = [
        legacy_provider(ConnectorType="onPremises"),
        leftover,
        scanner(),
        scanner(guid="9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c07", Name="contoso scanner"),
        connector(
            C, "Contoso Partner", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c08",
            at(2024, 1, 1, 0, 0, 0), at(2024, 1, 1, 0, 0, 0), ConnectorType="Partner",
            TlsSenderCertificateName="mail.fabrikam.com", ConnectorSource="HybridWizard",
        ),
        connector(
            C, "Contoso Branch", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c09",
            at(2024, 2, 1, 0, 0, 0), at(2024, 3, 1, 0, 0, 0), TlsSenderCertificateName="*.contoso.com",
            SenderDomains=["smtp:contoso.com;1"],
        ),
    ]
    write_ps51_json(HERE / "contoso-conflicting-connectors.json", conflicts)

    # Another tenant's accepted domains, to mix with contoso's connectors.
    fabrikam = [accepted_domain(F, F, "7e6d5c4b-3a29-4817-9605-f4e3d2c1b001", at(2022, 8, 9, 10, 11, 12), InitialDomain=True)]
    write_ps51_json(HERE / "fabrikam-accepted-domains.json", fabrikam)


if __name__ == "__main__":
    main()
