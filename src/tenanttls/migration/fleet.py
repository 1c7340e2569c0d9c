"""A generated fleet of simulated tenants for the demo and the benchmark.

Every tenant has the legacy `CrosswareInboundConnector` on ``*.crossware.co.nz``.
With `awkward` set, three tenants get cases that real fleets have. One has another
vendor's connector, which tenanttls must leave alone. One has an admin who never
consents. One has a `CrosswareInboundConnector-BACKUP` with other settings, left over
from an earlier attempt, which the safety gate rejects until an operator passes
``--force-backup-overwrite``.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

# Fictitious company names, as used in Microsoft's documentation examples.
_COMPANIES = (
    "Contoso", "Fabrikam", "Northwind Traders", "Tailspin Toys", "Wingtip Toys", "Adventure Works",
    "Litware", "Proseware", "Woodgrove Bank", "Alpine Ski House", "Coho Winery", "Fourth Coffee",
    "Margie's Travel", "Lucerne Publishing", "Trey Research", "Blue Yonder Airlines", "Humongous Insurance",
    "Wide World Importers", "City Power & Light", "Graphic Design Institute", "Relecloud", "VanArsdel",
    "Datum Corporation", "Consolidated Messenger", "Southridge Video", "Best For You Organics", "Bellows College",
    "Nod Publishers", "Munson's Pickles", "First Up Consultants", "Woodgrove Pharmacy", "Fincher Architects",
)

FOREIGN = "foreign-connector"
NO_CONSENT = "never-consents"
EXISTING_BACKUP = "existing-backup"


@dataclass(frozen=True)
class FleetTenant:
    """One generated tenant: its seed document and the awkward case it stands for (or None)."""

    tenant_id: str
    initial_domain: str
    display_name: str
    case: str | None
    seed: dict[str, Any] = field(repr=False)

    @property
    def consents(self) -> bool:
        return self.case != NO_CONSENT


def legacy_connector(rng: random.Random, connector_name: str, legacy_certificate: str) -> dict[str, Any]:
    """Return a legacy connector as Exchange lists it, with the variations seen in the field."""
    return {
        "Name": connector_name,
        "ConnectorType": rng.choice(["OnPremises", "OnPremises", "onPremises"]),
        "ConnectorSource": "AdminUI",
        "SenderDomains": ["smtp:*;1"],
        "TlsSenderCertificateName": legacy_certificate,
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "RestrictDomainsToIPAddresses": False,
        "CloudServicesMailEnabled": rng.random() < 0.8,
        "TreatMessagesAsInternal": False,
        "Enabled": True,
        "Comment": "Crossware email signatures",
    }


def _slug(name: str, number: int) -> str:
    base = re.sub(r"[^a-z0-9]", "", name.lower())[:20]
    return f"{base}{number}"


def generate_fleet(
    count: int,
    *,
    seed: int = 1,
    awkward: bool = True,
    connector_name: str = "CrosswareInboundConnector",
    legacy_certificate: str = "*.crossware.co.nz",
    accepted_domain_seconds: float = 0.0,
) -> list[FleetTenant]:
    """Return `count` tenants; the last three are the awkward cases when `awkward` and `count` >= 4.

    `accepted_domain_seconds` is the longest simulated delay before Exchange lists a
    new accepted domain; each tenant gets a random share of it.
    """
    rng = random.Random(seed)
    cases: list[str | None] = [None] * count
    if awkward and count >= 4:
        cases[-3:] = [FOREIGN, NO_CONSENT, EXISTING_BACKUP]

    fleet = []
    for index in range(count):
        company = _COMPANIES[index % len(_COMPANIES)]
        number = index + 1
        display_name = company if index < len(_COMPANIES) else f"{company} {number}"
        tenant_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        slug = _slug(company, number)
        initial_domain = f"{slug}.onmicrosoft.com"

        connectors = [legacy_connector(rng, connector_name, legacy_certificate)]
        case = cases[index]
        if case == FOREIGN:
            connectors.append(_foreign_connector(slug))
        elif case == EXISTING_BACKUP:
            backup = legacy_connector(rng, connector_name + "-BACKUP", legacy_certificate)
            backup.update({"RequireTls": False, "Comment": "copy from a test in 2024"})
            connectors.append(backup)

        document = {
            "tenant_id": tenant_id,
            "initial_domain": initial_domain,
            "display_name": display_name,
            "accepted_domains": [f"{slug}.example"],
            "inbound_connectors": connectors,
            "consent": {"granted": False},
            "app_roles": ["Exchange Administrator"],
            "delays": {"accepted_domain_seconds": round(rng.uniform(0, accepted_domain_seconds), 2)},
        }
        fleet.append(FleetTenant(tenant_id, initial_domain, display_name, case, document))
    return fleet


def _foreign_connector(slug: str) -> dict[str, Any]:
    return {
        "Name": "Archive Gateway Inbound",
        "ConnectorType": "OnPremises",
        "ConnectorSource": "AdminUI",
        "SenderDomains": ["smtp:*;1"],
        "TlsSenderCertificateName": f"{slug}.archive-gateway.example",
        "RequireTls": True,
        "RestrictDomainsToCertificate": True,
        "CloudServicesMailEnabled": True,
        "Enabled": True,
        "Comment": "archiving service",
    }
