"""The cmdlets the simulated Exchange admin API runs, with their parameters and whether they change state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tenanttls.simulator.exchange import configuration, connectors
from tenanttls.simulator.exchange.context import CmdletContext, CmdletResult
from tenanttls.simulator.exchange.parameters import Parameter


@dataclass(frozen=True)
class Cmdlet:
    """A cmdlet: canonical name, parameters, handler, and whether it writes (needs a write role)."""

    name: str
    parameters: tuple[Parameter, ...]
    handler: Callable[[CmdletContext, dict[str, Any]], CmdletResult]
    writes: bool


CMDLETS = {
    cmdlet.name.lower(): cmdlet
    for cmdlet in (
        Cmdlet("Get-InboundConnector", connectors.GET_PARAMETERS, connectors.get_inbound_connector, writes=False),
        Cmdlet("New-InboundConnector", connectors.NEW_PARAMETERS, connectors.new_inbound_connector, writes=True),
        Cmdlet("Set-InboundConnector", connectors.SET_PARAMETERS, connectors.set_inbound_connector, writes=True),
        Cmdlet("Remove-InboundConnector", connectors.REMOVE_PARAMETERS, connectors.remove_inbound_connector, writes=True),
        Cmdlet(
            "Get-AcceptedDomain",
            configuration.ACCEPTED_DOMAIN_PARAMETERS,
            configuration.get_accepted_domain,
            writes=False,
        ),
        Cmdlet(
            "Get-OutboundConnector",
            configuration.OUTBOUND_CONNECTOR_PARAMETERS,
            configuration.get_outbound_connector,
            writes=False,
        ),
        Cmdlet(
            "Get-TransportRule",
            configuration.TRANSPORT_RULE_PARAMETERS,
            configuration.get_transport_rule,
            writes=False,
        ),
    )
}


def find_cmdlet(name: Any) -> Cmdlet | None:
    """Return the cmdlet called `name` (PowerShell names ignore case), or None."""
    if not isinstance(name, str):
        return None
    return CMDLETS.get(name.strip().lower())
