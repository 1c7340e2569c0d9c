"""Fixed Microsoft identifiers the simulator uses: resources, permissions and Entra role templates.

The role template ids are the ones Microsoft Entra ID publishes for its built-in roles. They
appear in the `wids` claim of app-only tokens when the role is assigned to the app's service
principal.
"""

from __future__ import annotations

from tenanttls.domain.names import is_guid

EXCHANGE_RESOURCE = "https://outlook.office365.com"
GRAPH_RESOURCE = "https://graph.microsoft.com"

# First-party application ids of the two resources. A scope may name either the resource URI
# or its application id, for example "00000002-0000-0ff1-ce00-000000000000/.default".
RESOURCE_APP_IDS = {
    EXCHANGE_RESOURCE: "00000002-0000-0ff1-ce00-000000000000",
    GRAPH_RESOURCE: "00000003-0000-0000-c000-000000000000",
}

# Host names that mean the same resource in a scope.
RESOURCE_ALIASES = {
    "https://outlook.office365.com": EXCHANGE_RESOURCE,
    "https://outlook.office.com": EXCHANGE_RESOURCE,
    "00000002-0000-0ff1-ce00-000000000000": EXCHANGE_RESOURCE,
    "https://graph.microsoft.com": GRAPH_RESOURCE,
    "00000003-0000-0000-c000-000000000000": GRAPH_RESOURCE,
}

# Application permissions (app roles) the provider app requests by default.
DEFAULT_APP_PERMISSIONS = ("Exchange.ManageAsApp", "Domain.ReadWrite.All")

EXCHANGE_MANAGE_AS_APP = "Exchange.ManageAsApp"
GRAPH_DOMAIN_READ_PERMISSIONS = frozenset(
    {"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
GRAPH_DOMAIN_WRITE_PERMISSIONS = frozenset({"Domain.ReadWrite.All"})

# Built-in Entra roles by display name, mapped to their role template ids.
ROLE_TEMPLATES = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
    "Compliance Administrator": "17315797-102d-40b4-93e0-432062caca18",
    "Domain Name Administrator": "8329153b-31d0-4727-b945-745eb3bc5f31",
}
ROLE_NAMES = {template: name for name, template in ROLE_TEMPLATES.items()}

# Roles that Exchange Online accepts for app-only access (Microsoft's app-only authentication guide).
EXCHANGE_SUPPORTED_ROLES = frozenset(
    ROLE_TEMPLATES[name]
    for name in (
        "Global Administrator",
        "Exchange Administrator",
        "Exchange Recipient Administrator",
        "Global Reader",
        "Helpdesk Administrator",
        "Security Administrator",
        "Security Reader",
        "Compliance Administrator",
    )
)

# NOTE: which of those roles may run which connector cmdlets is modelled, not taken from a
# Microsoft table. Only Exchange and Global Administrators can change connectors, because the
# guide names only them as covering every task. The reader and security roles can read.
EXCHANGE_WRITE_ROLES = frozenset(ROLE_TEMPLATES[name] for name in ("Global Administrator", "Exchange Administrator"))
EXCHANGE_READ_ROLES = EXCHANGE_WRITE_ROLES | frozenset(
    ROLE_TEMPLATES[name]
    for name in ("Global Reader", "Security Administrator", "Security Reader", "Compliance Administrator")
)


def permission_resource(permission: str) -> str:
    """Return the resource that defines `permission`: Exchange for ``Exchange.*``, Graph otherwise."""
    if permission.lower().startswith("exchange."):
        return EXCHANGE_RESOURCE
    return GRAPH_RESOURCE


def role_template_id(role: str) -> str | None:
    """Return the role template id for a role display name or id (any case), or None if unknown."""
    text = role.strip()
    for name, template in ROLE_TEMPLATES.items():
        if text.lower() in (name.lower(), template):
            return template

    # An id of a role this catalogue does not list is still a valid assignment.
    if is_guid(text.lower()):
        return text.lower()
    return None
