"""The simulated tenant as a JSON document, and the pure functions that read and change it.

One document per tenant contains everything Microsoft would keep for it::

    {
      "tenant_id": GUID, "initial_domain": "contoso.onmicrosoft.com", "display_name": ...,
      "consent": {"granted": bool, "granted_at": ISO time or null, "permissions": [...],
                  "decision": "accept" | "deny"},
      "app_roles": [Entra role template ids assigned to the provider app],
      "connectors_created_disabled": bool,
      "delays": {partial delay settings}, "faults": {partial fault settings},
      "domains": {name: Graph domain entry, see `new_domain`},
      "inbound_connectors": [connector entry, see `record_connector_version`],
      "outbound_connectors": [Exchange field dicts], "transport_rules": [Exchange field dicts]
    }

Times are ISO 8601 strings in UTC. A change that Microsoft applies with a delay is stored
with the time it takes effect, so readers pass the current time (`now`) and see the state of
that moment: accepted domains through `accepted_domains_at`, connectors through `connector_at`.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any, Container

Document = dict[str, Any]


def iso(moment: datetime) -> str:
    """Return `moment` as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (seconds precision, as Exchange shows it)."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Return the aware datetime of an ISO 8601 string written by `iso` (or with an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def stable_guid(*parts: str) -> str:
    """Return a GUID derived from `parts`, so that seeded objects keep their ids across restarts."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tenanttls-simulator/" + "/".join(parts)))


# --- domains -----------------------------------------------------------------------------------


def new_domain(
    name: str,
    *,
    now: datetime,
    verification_code: str,
    verified: bool,
    accepted_at: datetime | None,
    initial: bool = False,
    default: bool = False,
    exchange: dict[str, Any] | None = None,
) -> Document:
    """Return a Graph domain entry.

    `accepted_at` is the time Exchange starts listing the domain in Get-AcceptedDomain.
    `exchange` contains the accepted-domain fields given in a seed (DomainType, MatchSubDomains).
    """
    return {
        "id": name,
        "isVerified": verified,
        "isInitial": initial,
        "isDefault": default,
        "authenticationType": "Managed",
        "supportedServices": verified_services(initial) if verified else [],
        "verificationCode": verification_code,
        "createdDateTime": iso(now),
        "verifiedDateTime": iso(now) if verified else None,
        "acceptedDateTime": iso(accepted_at) if accepted_at else None,
        "exchange": dict(exchange or {}),
    }


def verified_services(initial: bool) -> list[str]:
    """Return the ``supportedServices`` of a verified domain: Email, which Exchange uses it for.

    NOTE: Microsoft sets supportedServices from the services configured on each domain; the
    simulator gives every verified custom domain ``Email`` (however it was verified) and the
    initial domain ``Email`` and ``OfficeCommunicationsOnline``.
    """
    return ["Email", "OfficeCommunicationsOnline"] if initial else ["Email"]


def verification_code(tenant_id: str, name: str, taken: Container[str] = ()) -> str:
    """Return the ``MS=ms########`` proof value for `name` in `tenant_id`.

    The value is derived from tenant and name, so it is the same after the domain is
    deleted and added again, and differs between tenants. `taken` lists codes already in use
    by other tenant and domain pairs; a collision moves to the next derived value.
    """
    counter = 0
    while True:
        digest = hashlib.sha256(f"{tenant_id}/{name}/{counter}".encode()).digest()
        code = f"MS=ms{int.from_bytes(digest[:8], 'big') % 100_000_000:08d}"
        if code not in taken:
            return code
        counter += 1


def accepted_domains_at(document: Document, now: datetime) -> list[Document]:
    """Return the verified domains Exchange lists at `now`, initial domain first."""
    listed = []
    for entry in document["domains"].values():
        accepted = entry.get("acceptedDateTime")
        if entry["isVerified"] and accepted and parse_iso(accepted) <= now:
            listed.append(entry)
    return sorted(listed, key=lambda entry: (not entry["isInitial"], entry["id"]))


def default_domain(document: Document) -> str:
    """Return the name of the tenant's one default domain, which Graph and Exchange both report.

    A domain other than the initial one wins when it is marked default, so a state saved
    before the seed stopped marking the initial domain as well still has one default.
    The initial domain is the default when no other domain is marked.
    """
    for name, entry in document["domains"].items():
        if entry.get("isDefault") and not entry["isInitial"]:
            return name
    return document["initial_domain"]


def is_root_domain(document: Document, name: str) -> bool:
    """Return False when a parent of `name` is a verified domain of the tenant (Graph's `isRoot`)."""
    labels = name.split(".")
    for index in range(1, len(labels) - 1):
        parent = ".".join(labels[index:])
        entry = document["domains"].get(parent)
        if entry and entry["isVerified"]:
            return False
    return True


# --- inbound connectors --------------------------------------------------------------------------


def new_connector_entry(fields: Document, effective: datetime) -> Document:
    """Return a connector entry whose first version (`fields`) takes effect for mail at `effective`."""
    return {
        "Guid": fields["Guid"],
        "current": copy.deepcopy(fields),
        "versions": [{"effective": iso(effective), "fields": copy.deepcopy(fields)}],
    }


def record_connector_version(entry: Document, fields: Document | None, effective: datetime) -> None:
    """Make `fields` the current form of the connector, taking effect for mail at `effective`.

    `fields` None removes the connector. Mail still uses the previous form until `effective`.
    """
    entry["current"] = copy.deepcopy(fields)
    entry["versions"].append({"effective": iso(effective), "fields": copy.deepcopy(fields)})


def connector_at(entry: Document, now: datetime) -> Document | None:
    """Return the connector's fields in effect for mail at `now`, or None when it does not act."""
    active = None
    for version in entry["versions"]:
        if parse_iso(version["effective"]) <= now:
            active = version["fields"]
    return copy.deepcopy(active) if active is not None else None


def current_connectors(document: Document) -> list[Document]:
    """Return the current fields of every inbound connector, in creation order."""
    return [entry["current"] for entry in document["inbound_connectors"] if entry["current"] is not None]


def find_connector_entry(document: Document, identity: str) -> Document | None:
    """Return the entry of the current connector whose Name (any case) or Guid is `identity`."""
    wanted = identity.strip().lower()
    for entry in document["inbound_connectors"]:
        fields = entry["current"]
        if fields is None:
            continue
        if fields["Name"].lower() == wanted or fields["Guid"].lower() == wanted:
            return entry
    return None


def prune_connector_versions(document: Document, now: datetime) -> None:
    """Drop versions that no longer matter at `now` or later, and removed connectors once removal took effect."""
    kept = []
    for entry in document["inbound_connectors"]:
        versions = entry["versions"]
        active_index = None
        for index, version in enumerate(versions):
            if parse_iso(version["effective"]) <= now:
                active_index = index
        if active_index:
            entry["versions"] = versions[active_index:]

        removed = entry["current"] is None and len(entry["versions"]) == 1 and entry["versions"][0]["fields"] is None
        if not removed or parse_iso(entry["versions"][0]["effective"]) > now:
            kept.append(entry)
    document["inbound_connectors"] = kept
