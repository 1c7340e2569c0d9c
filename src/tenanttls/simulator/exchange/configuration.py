"""The read-only cmdlets: Get-AcceptedDomain, Get-OutboundConnector and Get-TransportRule.

Accepted domains come from the tenant's verified Graph domains: Exchange Online has no
New-AcceptedDomain, and a domain appears here once it is verified and the accepted-domain
delay has passed. Outbound connectors and transport rules come from the seed as given.
"""

from __future__ import annotations

import copy
from typing import Any

from tenanttls.simulator import tenants
from tenanttls.simulator.exchange import parameters as p
from tenanttls.simulator.exchange.context import CmdletContext, CmdletResult, directory_fields
from tenanttls.simulator.exchange.errors import not_found

ACCEPTED_DOMAIN_PARAMETERS = (p.Parameter("Identity", p.STRING), p.Parameter("ResultSize", p.RESULT_SIZE))
OUTBOUND_CONNECTOR_PARAMETERS = (
    p.Parameter("Identity", p.STRING),
    p.Parameter("IncludeTestModeConnectors", p.BOOLEAN),
    p.Parameter("IsTransportRuleScoped", p.BOOLEAN),
)
TRANSPORT_RULE_PARAMETERS = (
    p.Parameter("Identity", p.STRING),
    p.Parameter("State", p.ENUM, type_name="Microsoft.Exchange.Data.RuleState", choices=("Enabled", "Disabled")),
    p.Parameter("ResultSize", p.RESULT_SIZE),
)


def render_accepted_domain(context: CmdletContext, entry: dict[str, Any], default_name: str) -> dict[str, Any]:
    """Return the Get-AcceptedDomain object of one domain entry."""
    name = entry["id"]
    exchange = entry.get("exchange", {})
    accepted = entry["acceptedDateTime"]
    guid = exchange.get("Guid") or tenants.stable_guid(context.tenant_id, "accepted", name)
    fields: dict[str, Any] = {
        "Name": name,
        "DomainName": name,
        "DomainType": exchange.get("DomainType", "Authoritative"),
        "Default": name == default_name,
        "MatchSubDomains": bool(exchange.get("MatchSubDomains", False)),
        "AddressBookEnabled": True,
        "EmailOnly": False,
        "ExternallyManaged": False,
        "AuthenticationType": entry.get("authenticationType", "Managed"),
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
        "InitialDomain": bool(entry["isInitial"]),
        "CatchAllRecipientID": None,
        "SendingFromDomainDisabled": False,
        "AdminDisplayName": None,
        "ExchangeVersion": "0.20 (15.0.0.0)",
        "Identity": name,
        "Id": name,
        "Guid": guid,
        "ExchangeObjectId": guid,
        "WhenCreatedUTC": accepted,
        "WhenChangedUTC": accepted,
        "WhenCreated": accepted.replace("Z", "+00:00"),
        "WhenChanged": accepted.replace("Z", "+00:00"),
    }
    fields.update(
        directory_fields(
            context,
            name=name,
            container="CN=Accepted Domains,CN=Transport Settings",
            object_class="msExchAcceptedDomain",
            category="ms-Exch-Accepted-Domain",
        )
    )
    return fields


def _limit(objects: list[dict[str, Any]], result_size: int | None) -> list[dict[str, Any]]:
    return objects if result_size is None else objects[:result_size]


def get_accepted_domain(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """List the accepted domains in effect now, or the one whose Name, DomainName or Guid is Identity."""
    document = context.state.tenant(context.tenant_id)
    listed = tenants.accepted_domains_at(document, context.now)
    default_name = tenants.default_domain(document)
    objects = [render_accepted_domain(context, entry, default_name) for entry in listed]

    identity = bound.get("Identity")
    if identity is not None:
        wanted = identity.strip().lower().rstrip(".")
        objects = [item for item in objects if wanted in (item["Name"].lower(), item["Guid"].lower())]
        if not objects:
            raise not_found(identity, context.server)
    return CmdletResult(objects=_limit(objects, bound.get("ResultSize", 1000)))


def _find(objects: list[dict[str, Any]], identity: str) -> list[dict[str, Any]]:
    wanted = identity.strip().lower()
    return [item for item in objects if wanted in (str(item.get("Name", "")).lower(), str(item.get("Guid", "")).lower())]


def get_outbound_connector(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """List the seeded outbound connectors, or the one named by Identity.

    IncludeTestModeConnectors and IsTransportRuleScoped are accepted and do not filter.
    """
    objects = copy.deepcopy(context.state.tenant(context.tenant_id)["outbound_connectors"])
    identity = bound.get("Identity")
    if identity is not None:
        objects = _find(objects, identity)
        if not objects:
            raise not_found(identity, context.server)
    return CmdletResult(objects=objects)


def get_transport_rule(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """List the seeded transport rules, filtered by Identity or State when given."""
    objects = copy.deepcopy(context.state.tenant(context.tenant_id)["transport_rules"])
    identity = bound.get("Identity")
    if identity is not None:
        objects = _find(objects, identity)
        if not objects:
            raise not_found(identity, context.server)

    state = bound.get("State")
    if state is not None:
        objects = [item for item in objects if str(item.get("State", "Enabled")).lower() == state.lower()]
    return CmdletResult(objects=_limit(objects, bound.get("ResultSize", 1000)))


def complete_outbound_connector(context: CmdletContext, given: dict[str, Any]) -> dict[str, Any]:
    """Return a seeded outbound connector with its identity fields filled in."""
    fields = copy.deepcopy(given)
    guid = fields.get("Guid") or tenants.stable_guid(context.tenant_id, "outbound", fields["Name"].lower())
    fields.setdefault("Enabled", True)
    fields.setdefault("ConnectorType", "Partner")
    fields.update({"Identity": fields["Name"], "Id": fields["Name"], "Guid": guid, "ExchangeObjectId": guid})
    return fields


def complete_transport_rule(context: CmdletContext, given: dict[str, Any], priority: int) -> dict[str, Any]:
    """Return a seeded transport rule with its identity, Priority, State and Mode filled in."""
    fields = copy.deepcopy(given)
    guid = fields.get("Guid") or tenants.stable_guid(context.tenant_id, "rule", fields["Name"].lower())
    fields.setdefault("Priority", priority)
    fields.setdefault("State", "Enabled")
    fields.setdefault("Mode", "Enforce")
    fields.update({"Identity": fields["Name"], "Guid": guid, "ExchangeObjectId": guid})
    return fields
