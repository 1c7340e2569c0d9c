"""Fixtures of the manual-path tests: fixed script inputs, plain and hostile."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tenanttls.config import Settings
from tenanttls.domain.exchange import InboundConnector
from tenanttls.manual.script import RollbackScriptInput, build_upgrade_input

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TENANT_DOMAIN = "contoso.onmicrosoft.com"
UNIQUE = "k7q2m4x9d3f8h1j6n5p0r2t4vw.northwindtls.example"
NOW = datetime(2026, 2, 15, 8, 0, tzinfo=timezone.utc)

# Values a tenant could put in a connector name or comment, each trying to leave its string.
HOSTILE = [
    "x'; Remove-Item -Recurse C:\\ ; '",
    "$(Stop-Computer)",
    "${env:PATH} $TenantId",
    "`$x`n`'",
    "line one\nStop-Computer",
    "carriage\rreturn\r\n",
    "\u2019; Stop-Computer; \u2018",
    "\u201a\u201b'\u2019",
    "#> Stop-Computer <#",
    '"double" \u201cquotes\u201d \u201e',
    "separators \u2028 \u2029 \x85",
    "nul \x00 bell \x07",
    "Nörthwind 😀 Ünïcode",
    "-Identity Other -Confirm:$false",
    "@{ Name = 'x' }; @('a')",
]


def northwind_settings(connector_name: str = "NorthwindInboundConnector") -> Settings:
    """Settings of the placeholder provider "Northwind"."""
    return Settings(
        connector_name=connector_name,
        legacy_certificate_name="*.northwind.example",
        provider_zone="northwindtls.example",
    )


def legacy_connector(name: str = "NorthwindInboundConnector", comment: str = "", **fields) -> InboundConnector:
    """The provider's connector before the upgrade, as Exchange returns it."""
    raw = {
        "Name": name,
        "Enabled": True,
        "ConnectorType": "OnPremises",
        "ConnectorSource": "AdminUI",
        "SenderDomains": ["smtp:*;1"],
        "SenderIPAddresses": [],
        "TlsSenderCertificateName": "*.northwind.example",
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "RestrictDomainsToIPAddresses": False,
        "CloudServicesMailEnabled": False,
        "TreatMessagesAsInternal": False,
        "Comment": comment,
    }
    raw.update(fields)
    return InboundConnector.from_exchange(raw)


@pytest.fixture
def upgrade_input():
    """Upgrade input for contoso, with the original connector known."""
    return build_upgrade_input(
        northwind_settings(),
        tenant_id=TENANT_ID,
        tenant_domain=TENANT_DOMAIN,
        unique_name=UNIQUE,
        run_id="01HZX3Q8W6",
        now=NOW,
        snapshot=legacy_connector(),
        proof_text="MS=ms12345678",
    )


@pytest.fixture
def rollback_input():
    """Rollback input for contoso from the saved original connector."""
    return RollbackScriptInput(
        tenant_id=TENANT_ID,
        tenant_domain=TENANT_DOMAIN,
        connector_name="NorthwindInboundConnector",
        unique_name=UNIQUE,
        snapshot=legacy_connector(comment="Set up by Northwind support"),
        run_id="01HZX3Q8W7",
    )
