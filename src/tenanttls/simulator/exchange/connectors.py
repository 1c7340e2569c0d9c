"""Get-, New-, Set- and Remove-InboundConnector with Exchange Online's defaults, validation and value forms.

Documented behaviour modelled here (New-InboundConnector and Set-InboundConnector reference):
Enabled and RequireTls default to $true; RestrictDomainsToCertificate,
RestrictDomainsToIPAddresses and TreatMessagesAsInternal to $false; ConnectorSource to
Default. SenderDomains are SMTP domains, a leading ``*.`` is allowed and ``*`` alone means
every domain; they are stored and returned as ``smtp:<domain>;1``. SenderIPAddresses take
IPv4 addresses or CIDR ranges from /24 to /32. TreatMessagesAsInternal $true needs an
OnPremises connector with CloudServicesMailEnabled $false. Names are unique per tenant,
ignoring case, and Identity matches the Name or the Guid.

A tenant flagged `connectors_created_disabled` creates connectors with Enabled $false and a
warning, and rejects enabling them, as Microsoft does for some service offerings.
"""

from __future__ import annotations

import copy
import ipaddress
import uuid
from datetime import timedelta
from typing import Any

from tenanttls.errors import InvalidInput
from tenanttls.domain.names import (
    CONNECTOR_NAME_FORBIDDEN,
    CONNECTOR_NAME_FORBIDDEN_TEXT,
    MAX_CONNECTOR_NAME_LENGTH,
    validate_connector_name,
    validate_domain_name,
)
from tenanttls.simulator.display import quoted
from tenanttls.simulator import tenants
from tenanttls.simulator.exchange import parameters as p
from tenanttls.simulator.exchange.context import CmdletContext, CmdletResult, directory_fields
from tenanttls.simulator.exchange.errors import (
    ALREADY_EXISTS_EXCEPTION,
    TASK_EXCEPTION,
    CmdletError,
    binding_error,
    not_found,
    show,
    validation_error,
)
from tenanttls.simulator.tenants import Document, iso

DISABLED_WARNING = (
    "Inbound connector for this service offering is created in a disabled state. Contact Support to enable it."
)
# NOTE: Microsoft's FAQ quotes only "you can't enable an inbound connector" for this case; the rest
# of the sentence is this simulator's wording.
CANNOT_ENABLE = (
    "You can't enable an inbound connector for this service offering. Inbound connectors of this "
    "organization are created in a disabled state. Contact Support to enable it."
)

BOOLEAN_FIELDS = (
    "Enabled",
    "RequireTls",
    "RestrictDomainsToCertificate",
    "RestrictDomainsToIPAddresses",
    "CloudServicesMailEnabled",
    "TreatMessagesAsInternal",
    "EFTestMode",
    "EFSkipLastIP",
)
LIST_FIELDS = (
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

DEFAULTS: dict[str, Any] = {
    "Enabled": True,
    # NOTE: the documentation does not state ConnectorType's default; Partner is assumed.
    "ConnectorType": "Partner",
    "ConnectorSource": "Default",
    "Comment": None,
    "SenderIPAddresses": [],
    "SenderDomains": [],
    "TrustedOrganizations": [],
    "AssociatedAcceptedDomains": [],
    "ClientHostNames": [],
    "RequireTls": True,
    "RestrictDomainsToIPAddresses": False,
    "RestrictDomainsToCertificate": False,
    # NOTE: the documentation does not state CloudServicesMailEnabled's default; $false is assumed.
    "CloudServicesMailEnabled": False,
    "TreatMessagesAsInternal": False,
    "TlsSenderCertificateName": None,
    "DetectSenderIPBySkippingLastIP": False,
    "DetectSenderIPBySkippingTheseIPs": [],
    "DetectSenderIPRecipientList": [],
    "EFTestMode": False,
    "ScanAndDropRecipients": [],
    "EFSkipLastIP": False,
    "EFSkipIPs": [],
    "EFSkipMailGateway": [],
    "EFUsers": [],
    "AdminDisplayName": None,
    "ExchangeVersion": "0.1 (8.0.535.0)",
}

_CONNECTOR_TYPE = p.Parameter(
    "ConnectorType", p.ENUM, type_name="Microsoft.Exchange.Data.TenantConnectorType", choices=("Partner", "OnPremises")
)
_CONNECTOR_SOURCE = p.Parameter(
    "ConnectorSource",
    p.ENUM,
    type_name="Microsoft.Exchange.Data.TenantConnectorSource",
    choices=("Default", "HybridWizard", "Migrated", "AdminUI"),
)
_SWITCHES = (p.Parameter("Confirm", p.SWITCH), p.Parameter("WhatIf", p.SWITCH))


def _settable(add_remove: bool) -> tuple[p.Parameter, ...]:
    return (
        _CONNECTOR_TYPE,
        _CONNECTOR_SOURCE,
        p.Parameter("Comment", p.STRING),
        p.Parameter("TlsSenderCertificateName", p.STRING),
        *(p.Parameter(name, p.BOOLEAN) for name in BOOLEAN_FIELDS),
        *(p.Parameter(name, p.LIST, allow_add_remove=add_remove) for name in LIST_FIELDS if name != "SenderDomains"),
        *_SWITCHES,
    )


NEW_PARAMETERS = (
    p.Parameter("Name", p.STRING, required=True, max_length=MAX_CONNECTOR_NAME_LENGTH),
    p.Parameter("SenderDomains", p.LIST, required=True),
    *_settable(add_remove=False),
)
SET_PARAMETERS = (
    p.Parameter("Identity", p.STRING, required=True),
    p.Parameter("Name", p.STRING, not_null=True, max_length=MAX_CONNECTOR_NAME_LENGTH),
    p.Parameter("SenderDomains", p.LIST, allow_add_remove=True),
    *_settable(add_remove=True),
)
GET_PARAMETERS = (p.Parameter("Identity", p.STRING),)
REMOVE_PARAMETERS = (p.Parameter("Identity", p.STRING, required=True), *_SWITCHES)


# --- value forms ------------------------------------------------------------------------------------


def sender_domain_wire_form(value: str) -> str:
    """Return `value` as Exchange stores a sender domain: ``smtp:<domain>;1``.

    Accepts ``*``, ``contoso.com``, ``*.contoso.com`` and the stored form itself. Raises the
    argument-transformation error for anything else, such as ``a.*.contoso.com``.
    """
    text = value.strip()
    if text.lower().startswith("smtp:"):
        text = text[5:]
    if text.endswith(";1"):
        text = text[:-2]
    if text == "*":
        return "smtp:*;1"

    try:
        domain = validate_domain_name(text, allow_wildcard=True, what="sender domain")
    except InvalidInput as error:
        raise _transformation_error("SenderDomains", value, "Microsoft.Exchange.Data.AddressSpace", str(error)) from error
    return f"smtp:{domain};1"


def _transformation_error(parameter: str, value: str, type_name: str, reason: str) -> CmdletError:
    return binding_error(
        f"Cannot process argument transformation on parameter '{parameter}'. Cannot convert value "
        f"\"{show(value)}\" to type \"{type_name}\". Error: \"{show(reason, 300)}\""
    )


def sender_ip_address(value: str, parameter: str = "SenderIPAddresses") -> str:
    """Return an IPv4 address or CIDR range (/24 to /32) in canonical form; raise the Exchange error otherwise."""
    text = value.strip()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as error:
        raise validation_error(
            f"The value \"{show(value)}\" of {parameter} isn't a valid IP address. Specify a single IPv4 address "
            "or a CIDR range from /24 to /32, for example 192.0.2.10 or 192.0.2.0/24."
        ) from error

    if network.version != 4:
        raise validation_error(f"The value \"{show(value)}\" of {parameter} is an IPv6 address. Only IPv4 addresses are supported.")
    if network.prefixlen < 24:
        raise validation_error(
            f"The CIDR range \"{show(value)}\" of {parameter} is too large. Specify a range from /24 to /32."
        )
    return str(network.network_address) if network.prefixlen == 32 and "/" not in text else str(network)


def _domain(parameter: str, value: str, *, wildcard: bool) -> str:
    try:
        return validate_domain_name(value, allow_wildcard=wildcard, what=parameter)
    except InvalidInput as error:
        raise _transformation_error(parameter, value, "Microsoft.Exchange.Data.SmtpDomain", str(error)) from error


def _normalise_item(context: CmdletContext, parameter: str, value: str) -> str:
    """Return one multi-valued item in the form Exchange stores it."""
    if parameter == "SenderDomains":
        return sender_domain_wire_form(value)
    if parameter in ("SenderIPAddresses", "EFSkipIPs"):
        return sender_ip_address(value, parameter)
    if parameter == "TrustedOrganizations":
        return _domain(parameter, value, wildcard=False)
    if parameter == "AssociatedAcceptedDomains":
        domain = _domain(parameter, value, wildcard=False)
        accepted = {entry["id"] for entry in tenants.accepted_domains_at(context.state.tenant(context.tenant_id), context.now)}
        if domain not in accepted:
            raise validation_error(
                f"The domain \"{show(value)}\" in AssociatedAcceptedDomains isn't an accepted domain of this "
                "organization. Specify accepted domains only."
            )
        return domain
    return value.strip()


def _apply_list(context: CmdletContext, parameter: str, current: list[str], value: Any) -> list[str]:
    """Return the new list for a multi-valued parameter: a replacement list, or Add and Remove entries."""
    if isinstance(value, dict):
        removed = {_normalise_item(context, parameter, item).lower() for item in value["Remove"]}
        result = [item for item in current if item.lower() not in removed]
        for item in value["Add"]:
            normalised = _normalise_item(context, parameter, item)
            if normalised.lower() not in {existing.lower() for existing in result}:
                result.append(normalised)
        return result

    result = []
    for item in value:
        normalised = _normalise_item(context, parameter, item)
        if normalised.lower() not in {existing.lower() for existing in result}:
            result.append(normalised)
    return result


# --- objects ------------------------------------------------------------------------------------------


def complete_connector(context: CmdletContext, fields: dict[str, Any], *, created: str, changed: str) -> dict[str, Any]:
    """Return `fields` with every Get-InboundConnector field present: defaults, ids, directory fields, times."""
    complete = copy.deepcopy(DEFAULTS)
    complete.update(fields)

    name = complete["Name"]
    guid = complete.get("Guid") or tenants.stable_guid(context.tenant_id, "inbound", name.lower(), created)
    complete.update(
        directory_fields(
            context,
            name=name,
            container="CN=Transport Settings",
            object_class="msExchSMTPInboundConnector",
            category="ms-Exch-SMTP-Inbound-Connector",
        )
    )
    complete.update(
        {
            "Name": name,
            "Identity": name,
            "Id": name,
            "Guid": guid,
            "ExchangeObjectId": guid,
            "WhenCreatedUTC": created,
            "WhenChangedUTC": changed,
            "WhenCreated": created.replace("Z", "+00:00"),
            "WhenChanged": changed.replace("Z", "+00:00"),
        }
    )
    return complete


def _validate(context: CmdletContext, fields: dict[str, Any], others: list[dict[str, Any]]) -> None:
    """Check the rules that concern the whole connector after the parameters were applied."""
    _check_name(fields["Name"])

    for other in others:
        if other["Name"].lower() == fields["Name"].lower():
            raise CmdletError(
                ALREADY_EXISTS_EXCEPTION,
                f"An inbound connector with the name \"{show(fields['Name'])}\" already exists in this organization. "
                "Specify a different name.",
            )

    if not fields["SenderDomains"]:
        raise validation_error("SenderDomains can't be empty. Specify at least one domain, or * for all domains.")

    if fields["TreatMessagesAsInternal"]:
        if fields["ConnectorType"] != "OnPremises":
            raise validation_error("TreatMessagesAsInternal can be set to $true only on connectors of type OnPremises.")
        if fields["CloudServicesMailEnabled"]:
            raise validation_error(
                "TreatMessagesAsInternal can't be set to $true when CloudServicesMailEnabled is $true."
            )

    # NOTE: the three rules below follow from what the parameters mean (a restriction needs the
    # value it restricts to, and an OnPremises connector must identify the sender); Microsoft's
    # exact error texts for them are unconfirmed.
    if fields["RestrictDomainsToIPAddresses"] and not fields["SenderIPAddresses"]:
        raise validation_error("RestrictDomainsToIPAddresses is $true, so SenderIPAddresses can't be empty.")
    if fields["RestrictDomainsToCertificate"] and not fields["TlsSenderCertificateName"]:
        raise validation_error("RestrictDomainsToCertificate is $true, so TlsSenderCertificateName can't be empty.")
    if fields["ConnectorType"] == "OnPremises" and not (fields["SenderIPAddresses"] or fields["TlsSenderCertificateName"]):
        raise validation_error(
            "An OnPremises connector must identify the sending server: specify SenderIPAddresses or "
            "TlsSenderCertificateName."
        )


def _check_name(name: str) -> None:
    """Raise the validation error for a Name that `validate_connector_name` rejects, with the reason."""
    try:
        validate_connector_name(name)
        return
    except InvalidInput as error:
        cause = error

    forbidden = "".join(sorted({ch for ch in name if ch in CONNECTOR_NAME_FORBIDDEN or ord(ch) < 32}))
    if forbidden:
        reason = f"it contains {quoted(forbidden)}. A connector name can't contain {CONNECTOR_NAME_FORBIDDEN_TEXT}."
    elif name != name.strip():
        reason = "it starts or ends with a space. Remove the leading and trailing spaces."
    elif len(name) > MAX_CONNECTOR_NAME_LENGTH:
        reason = f"it has {len(name)} characters. The maximum is {MAX_CONNECTOR_NAME_LENGTH}."
    else:
        reason = f"{cause}."
    raise validation_error(f"The value of Name {quoted(name)} isn't valid: {reason}") from cause


def _apply_parameters(context: CmdletContext, fields: dict[str, Any], bound: dict[str, Any]) -> None:
    """Write the bound parameter values into `fields` in Exchange's stored forms."""
    for name, value in bound.items():
        if name in ("Identity", "Confirm", "WhatIf"):
            continue
        if name in LIST_FIELDS:
            fields[name] = _apply_list(context, name, list(fields.get(name) or []), value)
        elif name == "TlsSenderCertificateName":
            fields[name] = None if value is None else _certificate_name(value)
        else:
            fields[name] = value


def _certificate_name(value: str) -> str:
    try:
        return validate_domain_name(value, allow_wildcard=True, what="TLS certificate name")
    except InvalidInput as error:
        raise _transformation_error("TlsSenderCertificateName", value, "Microsoft.Exchange.Data.TlsCertificate", str(error)) from error


def _effective(context: CmdletContext) -> Any:
    return context.now + timedelta(seconds=context.delays["connector_seconds"])


# --- cmdlets --------------------------------------------------------------------------------------------


def get_inbound_connector(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """List the tenant's inbound connectors, or the one named by Identity."""
    document = context.state.tenant(context.tenant_id)
    identity = bound.get("Identity")
    if identity is None:
        return CmdletResult(objects=copy.deepcopy(tenants.current_connectors(document)))

    entry = tenants.find_connector_entry(document, identity)
    if entry is None:
        raise not_found(identity, context.server)
    return CmdletResult(objects=[copy.deepcopy(entry["current"])])


def new_inbound_connector(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """Create an inbound connector; it acts on mail after the tenant's connector delay."""
    document = context.state.tenant(context.tenant_id)
    created = iso(context.now)
    fields: dict[str, Any] = copy.deepcopy(DEFAULTS)
    fields["Name"] = bound["Name"]
    # A random Guid, as Exchange assigns: a name-derived one would repeat when a connector is
    # created in the same second under the name a renamed connector had.
    fields["Guid"] = str(uuid.uuid4())
    _apply_parameters(context, fields, bound)

    warnings = []
    if document.get("connectors_created_disabled"):
        fields["Enabled"] = False
        warnings.append(DISABLED_WARNING)

    _validate(context, fields, tenants.current_connectors(document))
    fields = complete_connector(context, fields, created=created, changed=created)
    if bound.get("WhatIf"):
        return CmdletResult(warnings=warnings)

    with context.state.edit(context.tenant_id, "New-InboundConnector", {"name": fields["Name"], "guid": fields["Guid"]}) as draft:
        draft["inbound_connectors"].append(tenants.new_connector_entry(fields, _effective(context)))
    return CmdletResult(warnings=warnings)


def set_inbound_connector(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """Change an inbound connector (Name renames it). The change takes effect for mail after the connector delay."""
    document = context.state.tenant(context.tenant_id)
    entry = tenants.find_connector_entry(document, bound["Identity"])
    if entry is None:
        raise not_found(bound["Identity"], context.server)

    current = entry["current"]
    fields = copy.deepcopy(current)
    _apply_parameters(context, fields, bound)

    if document.get("connectors_created_disabled") and fields["Enabled"] and not current["Enabled"]:
        raise CmdletError(TASK_EXCEPTION, CANNOT_ENABLE)

    others = [other for other in tenants.current_connectors(document) if other["Guid"] != current["Guid"]]
    _validate(context, fields, others)
    if fields == current:
        return CmdletResult(
            warnings=[f"The command completed successfully but no settings of '{current['Name']}' have been modified."]
        )

    fields = complete_connector(context, fields, created=current["WhenCreatedUTC"], changed=iso(context.now))
    if bound.get("WhatIf"):
        return CmdletResult()

    changed = sorted(key for key in fields if fields[key] != current.get(key) and not key.startswith("When"))
    detail = {"identity": current["Name"], "guid": current["Guid"], "changed": changed}
    with context.state.edit(context.tenant_id, "Set-InboundConnector", detail) as draft:
        target = next(item for item in draft["inbound_connectors"] if item["Guid"] == current["Guid"])
        tenants.record_connector_version(target, fields, _effective(context))
    return CmdletResult()


def remove_inbound_connector(context: CmdletContext, bound: dict[str, Any]) -> CmdletResult:
    """Delete an inbound connector; mail still uses it until the connector delay has passed."""
    document = context.state.tenant(context.tenant_id)
    entry = tenants.find_connector_entry(document, bound["Identity"])
    if entry is None:
        raise not_found(bound["Identity"], context.server)
    if bound.get("WhatIf"):
        return CmdletResult()

    current = entry["current"]
    with context.state.edit(context.tenant_id, "Remove-InboundConnector", {"name": current["Name"], "guid": current["Guid"]}) as draft:
        target = next(item for item in draft["inbound_connectors"] if item["Guid"] == current["Guid"])
        tenants.record_connector_version(target, None, _effective(context))
    return CmdletResult()


def seed_connector(context: CmdletContext, given: dict[str, Any]) -> dict[str, Any]:
    """Return a seeded connector (fields as Get-InboundConnector shows them) completed with defaults.

    Seeds describe existing state, so values are kept as given (ConnectorType ``onPremises``,
    ConnectorSource ``AdminUI``) apart from SenderDomains, which take the ``smtp:…;1`` form.
    """
    if not isinstance(given.get("Name"), str) or not given["Name"].strip():
        raise InvalidInput(f"inbound connector {show(given)} in the seed has no Name; every connector needs one")

    fields = {key: copy.deepcopy(value) for key, value in given.items()}
    domains = fields.get("SenderDomains", ["*"])
    fields["SenderDomains"] = [sender_domain_wire_form(item) for item in ([domains] if isinstance(domains, str) else domains)]

    created = fields.get("WhenCreatedUTC") or iso(context.now)
    changed = fields.get("WhenChangedUTC") or created
    return complete_connector(context, fields, created=created, changed=changed)
