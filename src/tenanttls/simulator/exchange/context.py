"""The context and result of a cmdlet call, and the directory fields every Exchange object carries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tenanttls.simulator.state import SimulatorState


@dataclass
class CmdletContext:
    """A cmdlet call: the state, the tenant, the simulator's current time and the tenant's delays."""

    state: SimulatorState
    tenant_id: str
    initial_domain: str
    now: datetime
    delays: dict[str, float]

    @property
    def forest(self) -> str:
        """The directory forest name Exchange shows in distinguished names, stable per tenant."""
        number = int(hashlib.sha256(self.tenant_id.encode()).hexdigest()[:4], 16)
        return f"NAMPR{number % 20 + 1:02d}A{number % 9 + 1:03d}"

    @property
    def server(self) -> str:
        """The mailbox server name Exchange names in ManagementObjectNotFoundException, stable per tenant."""
        number = int(hashlib.sha256(self.tenant_id.encode()).hexdigest()[4:10], 16)
        return f"BN{number % 9 + 1}PR{number % 20 + 1:02d}MB{number % 9000 + 1000}.namprd{number % 20 + 1:02d}.prod.outlook.com"


@dataclass
class CmdletResult:
    """The objects a cmdlet outputs (Exchange field dicts) and its warnings."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def directory_fields(context: CmdletContext, *, name: str, container: str, object_class: str, category: str) -> dict[str, Any]:
    """Return the Active Directory fields of a configuration object called `name` in `container`."""
    forest = context.forest
    base = f"CN=Configuration,CN={context.initial_domain},CN=ConfigurationUnits,DC={forest},DC=PROD,DC=OUTLOOK,DC=COM"
    return {
        "DistinguishedName": f"CN={name},{container},{base}",
        "ObjectCategory": f"{forest}.PROD.OUTLOOK.COM/Configuration/Schema/{category}",
        "ObjectClass": ["top", object_class],
        "OrganizationId": (
            f"{forest}.PROD.OUTLOOK.COM/Microsoft Exchange Hosted Organizations/{context.initial_domain} - "
            f"{forest}.PROD.OUTLOOK.COM/ConfigurationUnits/{context.initial_domain}/Configuration"
        ),
        "OriginatingServer": context.server.split(".")[0].upper() + f".{forest}.PROD.OUTLOOK.COM",
        "IsValid": True,
        "ObjectState": "Unchanged",
    }
