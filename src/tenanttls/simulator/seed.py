"""The seed format: a JSON document that registers the provider app and creates tenants.

::

    {
      "app": {"client_id": GUID, "display_name": str, "certificates": [PEM, ...],
              "redirect_uris": [URL, ...], "permissions": ["Exchange.ManageAsApp", "Domain.ReadWrite.All"]},
      "tenants": [{
          "tenant_id": GUID, "initial_domain": "contoso.onmicrosoft.com", "display_name": str,
          "accepted_domains": ["contoso.com", {"DomainName": "mail.contoso.com", "DomainType": "InternalRelay",
                                               "Default": false, "MatchSubDomains": false}],
          "inbound_connectors": [Get-InboundConnector field dicts, each with at least Name],
          "outbound_connectors": [Get-OutboundConnector field dicts], "transport_rules": [Get-TransportRule field dicts],
          "consent": {"granted": bool, "permissions": [...]}, "consent_decision": "accept" | "deny",
          "app_roles": ["Exchange Administrator" or a role template id, ...],
          "connectors_created_disabled": bool,
          "delays": {"accepted_domain_seconds": ..., "connector_seconds": ..., "consent_seconds": ...},
          "faults": {see settings.DEFAULT_FAULTS},
          "users": [{"upn": str, "oid": GUID, "display_name": str, "directory_roles": [...],
                     "app_roles": [...]}]  (user sign-in, see `signin.parse_users`)
      }],
      "settings": {"delays": {...}, "faults": {...}, "page_size": int, "token_lifetime_seconds": int}
    }

Every key except `tenant_id` and `initial_domain` (per tenant) and `client_id` (for the app)
is optional. At most one accepted domain of a tenant may be ``"Default": true``; without
one, the initial domain is the default. docs/simulator.md has a complete example.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

from cryptography import x509

from tenanttls.domain.names import is_guid, validate_domain_name, validate_tenant_id
from tenanttls.errors import InvalidInput
from tenanttls.simulator import catalog, tenants
from tenanttls.simulator.display import quoted
from tenanttls.simulator.exchange.configuration import complete_outbound_connector, complete_transport_rule
from tenanttls.simulator.exchange.connectors import seed_connector
from tenanttls.simulator.exchange.context import CmdletContext
from tenanttls.simulator.exchange.errors import CmdletError
from tenanttls.simulator.jsonbody import InvalidJsonBody, parse_json
from tenanttls.simulator.settings import apply_overrides, apply_settings, validate_delays, validate_faults, validate_settings
from tenanttls.simulator.signin import parse_users
from tenanttls.simulator.state import SimulatorState
from tenanttls.simulator.tokens import certificate_thumbprints

logger = logging.getLogger(__name__)

TENANT_KEYS = {
    "tenant_id",
    "initial_domain",
    "display_name",
    "accepted_domains",
    "inbound_connectors",
    "outbound_connectors",
    "transport_rules",
    "consent",
    "consent_decision",
    "app_roles",
    "connectors_created_disabled",
    "delays",
    "faults",
    "users",
}
APP_KEYS = {"client_id", "display_name", "certificate", "certificates", "redirect_uris", "permissions"}
EXAMPLE_GUID = "0e5a8c3b-6f1d-4d2a-9b7e-2c4f8a1d3e5b"


def read_seed(path: Path) -> dict[str, Any]:
    """Return the seed document in the JSON file at `path`. Raise InvalidInput, naming the file, when it is not JSON."""
    try:
        document = parse_json(path.read_bytes(), what=f"seed file {path}")
    except OSError as error:
        raise InvalidInput(f"cannot read seed file {path}: {error.strerror}") from error
    except InvalidJsonBody as error:
        raise InvalidInput(str(error)) from error

    if not isinstance(document, dict):
        raise InvalidInput(f"seed file {path} must contain a JSON object with 'app' and 'tenants'")
    return document


def apply_seed(state: SimulatorState, seed: Mapping[str, Any], *, replace: bool = False, skip_existing: bool = False) -> list[str]:
    """Register the seed's app, apply its settings and add its tenants; return the ids of the tenants added.

    Everything is checked before anything is stored. An existing tenant is an error unless
    `replace` (overwrite it) or `skip_existing` is set. `skip_existing` is the restart rule:
    stored state wins, so existing tenants, a stored app and stored settings are kept as
    they are, and a warning names a stored value that the seed would have changed.
    """
    if not isinstance(seed, Mapping):
        raise InvalidInput("the seed must be a JSON object with 'app', 'tenants' and optional 'settings'")
    unknown = sorted(set(seed) - {"app", "tenants", "settings"})
    if unknown:
        raise InvalidInput(f"unknown seed key(s) {', '.join(unknown)}: valid keys are app, tenants, settings")

    seed_app = parse_app(seed["app"]) if seed.get("app") is not None else None
    seed_settings = validate_settings(seed["settings"]) if seed.get("settings") is not None else None
    keep_app = skip_existing and state.app is not None
    keep_settings = skip_existing and state.settings_stored
    app = seed_app if seed_app is not None and not keep_app else state.app
    permissions = list(app["permissions"]) if app else list(catalog.DEFAULT_APP_PERMISSIONS)
    specs = seed.get("tenants") or []
    if not isinstance(specs, list):
        raise InvalidInput("'tenants' in the seed must be a list of tenant objects")

    now = state.clock.now()
    documents = _build_tenants(state, specs, now=now, permissions=permissions, replace=replace or skip_existing)
    settings_outcome = _apply_settings(state, seed_settings, keep=keep_settings)
    app_outcome = _apply_app(state, seed_app, keep=keep_app)

    added = []
    for document in documents:
        if skip_existing and document["tenant_id"] in state.tenant_ids():
            continue
        state.add_tenant(document, replace=replace)
        added.append(document["tenant_id"])
    logger.info(
        "simulator seed applied: tenants_added=%s tenants_kept=%s app=%s settings=%s",
        len(added), len(documents) - len(added), app_outcome, settings_outcome,
    )
    return added


def _apply_settings(state: SimulatorState, update: dict[str, Any] | None, *, keep: bool) -> str:
    """Store the seed's settings unless `keep`; return what happened, for the log."""
    if update is None:
        return "none-in-seed"
    if not keep:
        state.update_settings(update)
        return "applied"

    if apply_settings(state.settings, update) != state.settings:
        logger.warning(
            "simulator seed settings not applied: reason=the data folder has stored settings, which win on a restart; "
            "change them with PATCH /_simulator/settings"
        )
    return "kept-stored"


def _apply_app(state: SimulatorState, app: dict[str, Any] | None, *, keep: bool) -> str:
    """Store the seed's app unless `keep`; return what happened, for the log."""
    if app is None:
        return "none-in-seed"
    if not keep:
        state.set_app(app)
        return "applied"

    stored = state.app
    if app != stored:
        logger.warning(
            "simulator seed app not applied: client_id=%s stored_client_id=%s reason=the data folder has a stored app, "
            "which wins on a restart; replace it with POST /_simulator/seed",
            app["client_id"], stored["client_id"] if stored else None,
        )
    return "kept-stored"


def _build_tenants(
    state: SimulatorState, specs: list[Any], *, now: datetime, permissions: list[str], replace: bool
) -> list[dict[str, Any]]:
    codes = set(state.verification_codes())
    documents = []
    seen: set[str] = set()
    for position, spec in enumerate(specs):
        document = build_tenant(spec, now=now, app_permissions=permissions, codes_taken=codes, position=position)
        if document["tenant_id"] in seen:
            raise InvalidInput(f"tenant {document['tenant_id']} appears twice in the seed")
        if document["tenant_id"] in state.tenant_ids() and not replace:
            raise InvalidInput(f"tenant {document['tenant_id']} already exists in the simulator; seed with replace")
        seen.add(document["tenant_id"])
        codes.update(entry["verificationCode"] for entry in document["domains"].values())
        documents.append(document)
    return documents


def parse_app(spec: Any) -> dict[str, Any]:
    """Return the provider app registration from its seed form, with certificate thumbprints computed."""
    if not isinstance(spec, Mapping):
        raise InvalidInput("'app' in the seed must be an object with client_id and certificates")
    _reject_unknown("app", spec, APP_KEYS)

    client_id = spec.get("client_id")
    if client_id is None:
        raise InvalidInput(f"missing client_id of the app in the seed: give the app's client id, a GUID such as {EXAMPLE_GUID}")
    if not _is_text(client_id) or not is_guid(client_id.strip().lower()):
        raise InvalidInput(f"invalid client_id {quoted(client_id)} of the app in the seed: expected a GUID such as {EXAMPLE_GUID}")
    client_id = client_id.strip().lower()

    pems = spec.get("certificates") or ([spec["certificate"]] if spec.get("certificate") else [])
    if not isinstance(pems, list) or not pems:
        raise InvalidInput("the app in the seed needs 'certificates': a list of PEM certificates (the public part only)")

    redirect_uris = spec.get("redirect_uris", [])
    if not isinstance(redirect_uris, list) or not all(_is_text(uri) for uri in redirect_uris):
        raise InvalidInput("'redirect_uris' of the app must be a list of URLs")

    return {
        "client_id": client_id,
        "display_name": str(spec.get("display_name") or "tenanttls provider app"),
        "certificates": [_parse_certificate(pem, position) for position, pem in enumerate(pems)],
        "redirect_uris": list(redirect_uris),
        "permissions": _permissions(spec.get("permissions", list(catalog.DEFAULT_APP_PERMISSIONS))),
    }


def _parse_certificate(pem: Any, position: int) -> dict[str, str]:
    not_pem = InvalidInput(
        f"app certificate {position + 1} in the seed is not a PEM certificate; give the public certificate, "
        "the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"
    )
    if not _is_text(pem):
        raise not_pem
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as error:
        # cryptography's own text points to its FAQ; the seed's author needs only the fix.
        raise not_pem from error

    sha1, sha256 = certificate_thumbprints(certificate)
    return {
        "pem": pem,
        "sha1": sha1,
        "sha256": sha256,
        "not_before": tenants.iso(certificate.not_valid_before_utc),
        "not_after": tenants.iso(certificate.not_valid_after_utc),
    }


def _permissions(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(_is_text(item) for item in value):
        raise InvalidInput(f"invalid permissions {quoted(value)}: expected a list such as [\"Exchange.ManageAsApp\"]")
    return list(dict.fromkeys(item.strip() for item in value))


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _reject_unknown(what: str, spec: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(spec) - known)
    if unknown:
        raise InvalidInput(f"unknown {what} key(s) {', '.join(unknown)}: valid keys are {', '.join(sorted(known))}")


def build_tenant(
    spec: Any, *, now: datetime, app_permissions: list[str], codes_taken: set[str] | None = None, position: int = 0
) -> dict[str, Any]:
    """Return a tenant document (see `tenants`) from its seed form; raise InvalidInput naming the bad value.

    `position` is the tenant's index in the seed's list, which messages name until the tenant id is known.
    """
    where = f"tenants[{position}] in the seed"
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{where} must be an object with tenant_id and initial_domain, not {quoted(spec, 80)}")
    _reject_unknown("tenant", spec, TENANT_KEYS)

    tenant_id = _seed_tenant_id(spec.get("tenant_id"), where)
    initial = _initial_domain(spec.get("initial_domain"), f"tenant {tenant_id} ({where})")
    return _tenant_document(spec, tenant_id, initial, now, app_permissions, codes_taken)


def _seed_tenant_id(value: Any, where: str) -> str:
    if value is None:
        raise InvalidInput(f"missing tenant_id of {where}: give the tenant's id, a GUID such as {EXAMPLE_GUID}")
    try:
        return validate_tenant_id(value)
    except InvalidInput as error:
        raise InvalidInput(f"invalid tenant_id {quoted(value)} of {where}: expected a GUID such as {EXAMPLE_GUID}") from error


def _initial_domain(value: Any, where: str) -> str:
    example = 'a name like "contoso.onmicrosoft.com"'
    if value is None:
        raise InvalidInput(f"missing initial_domain of {where}: give {example}")
    try:
        initial = validate_domain_name(value, what="initial domain")
    except InvalidInput as error:
        raise InvalidInput(f"invalid initial_domain {quoted(value)} of {where}: expected {example}") from error
    if not initial.endswith(".onmicrosoft.com"):
        raise InvalidInput(f"invalid initial_domain {quoted(value)} of {where}: it must end in .onmicrosoft.com, as {example}")
    return initial


def _tenant_document(
    spec: Mapping[str, Any],
    tenant_id: str,
    initial: str,
    now: datetime,
    app_permissions: list[str],
    codes_taken: set[str] | None,
) -> dict[str, Any]:
    """Build the document of a tenant whose id and initial domain are already checked."""
    document: dict[str, Any] = {
        "tenant_id": tenant_id,
        "initial_domain": initial,
        "display_name": str(spec.get("display_name") or initial.split(".")[0].capitalize()),
        "consent": _consent(spec, tenant_id, app_permissions, now),
        "app_roles": parse_app_roles(spec.get("app_roles", []), tenant_id),
        "connectors_created_disabled": bool(spec.get("connectors_created_disabled", False)),
        "delays": apply_overrides({}, _of_tenant(tenant_id, validate_delays, spec.get("delays", {}))),
        "faults": apply_overrides({}, _of_tenant(tenant_id, validate_faults, spec.get("faults", {}))),
        "domains": _domains(spec, tenant_id, initial, now, set(codes_taken or ())),
        "inbound_connectors": [],
        "outbound_connectors": [],
        "transport_rules": [],
        "users": parse_users(spec.get("users", []), tenant_id, initial),
    }

    context = CmdletContext(state=None, tenant_id=tenant_id, initial_domain=initial, now=now, delays={})  # type: ignore[arg-type]
    _add_connectors(document, context, spec)
    return document


def _of_tenant(tenant_id: str, validate: Callable[[Any], dict[str, Any]], value: Any) -> dict[str, Any]:
    """Return `validate(value)`; an error message gains the tenant id, which the settings validators do not know."""
    try:
        return validate(value)
    except InvalidInput as error:
        raise InvalidInput(f"{error} (tenant {tenant_id})") from error


def _consent(spec: Mapping[str, Any], tenant_id: str, app_permissions: list[str], now: datetime) -> dict[str, Any]:
    given = spec.get("consent", {"granted": False})
    if isinstance(given, bool):
        given = {"granted": given}
    if not isinstance(given, Mapping) or not isinstance(given.get("granted", False), bool):
        raise InvalidInput(
            f"invalid consent {quoted(given)} of tenant {tenant_id}: expected {{\"granted\": true or false, \"permissions\": [...]}}"
        )

    granted = given.get("granted", False)
    decision = spec.get("consent_decision", "accept")
    if decision not in ("accept", "deny"):
        raise InvalidInput(f"invalid consent_decision {quoted(decision)} of tenant {tenant_id}: expected \"accept\" or \"deny\"")
    return {
        "granted": granted,
        "granted_at": tenants.iso(now) if granted else None,
        "permissions": _permissions(given.get("permissions", app_permissions)) if granted else [],
        "decision": decision,
    }


def parse_app_roles(value: Any, tenant_id: str) -> list[str]:
    """Return the role template ids for a list of Entra role names or ids; raise InvalidInput for an unknown role."""
    if not isinstance(value, list):
        raise InvalidInput(f"invalid app_roles {quoted(value)} of tenant {tenant_id}: expected a list of Entra role names or ids")

    templates = []
    for role in value:
        template = catalog.role_template_id(role) if isinstance(role, str) else None
        if template is None:
            raise InvalidInput(
                f"unknown Entra role {quoted(role)} for tenant {tenant_id}: use a role template id or one of "
                f"{', '.join(catalog.ROLE_TEMPLATES)}"
            )
        templates.append(template)
    return list(dict.fromkeys(templates))


def _domains(spec: Mapping[str, Any], tenant_id: str, initial: str, now: datetime, taken: set[str]) -> dict[str, Any]:
    given = spec.get("accepted_domains", [])
    if not isinstance(given, list):
        raise InvalidInput(f"accepted_domains of tenant {tenant_id} must be a list of names or objects")

    entries = [(initial, {"DomainType": "Authoritative"}, False)]
    for item in given:
        fields = {"DomainName": item} if isinstance(item, str) else item
        if not isinstance(fields, Mapping) or not _is_text(fields.get("DomainName")):
            raise InvalidInput(f"invalid accepted domain {quoted(item)} of tenant {tenant_id}: give a name or an object with DomainName")
        name = validate_domain_name(fields["DomainName"], what="accepted domain")
        exchange = {key: fields[key] for key in ("DomainType", "MatchSubDomains", "Guid") if key in fields}
        if exchange.get("DomainType", "Authoritative") not in ("Authoritative", "InternalRelay", "ExternalRelay"):
            raise InvalidInput(f"invalid DomainType {quoted(exchange['DomainType'])} of {name}: use Authoritative or InternalRelay")
        entries.append((name, exchange, bool(fields.get("Default", False))))

    # A tenant has one default domain: the one the seed marks, else the initial domain.
    marked = [name for name, _, default in entries if default]
    if len(marked) > 1:
        raise InvalidInput(
            f"tenant {tenant_id} marks {len(marked)} accepted domains Default ({', '.join(marked)}); "
            "mark at most one"
        )
    domains = {}
    for index, (name, exchange, default) in enumerate(entries):
        if name in domains:
            raise InvalidInput(f"accepted domain {quoted(name)} appears twice in tenant {tenant_id}")
        code = tenants.verification_code(tenant_id, name, taken)
        taken.add(code)
        domains[name] = tenants.new_domain(
            name,
            now=now,
            verification_code=code,
            verified=True,
            accepted_at=now,
            initial=index == 0,
            default=default or (index == 0 and not marked),
            exchange=exchange,
        )
    return domains


def _add_connectors(document: dict[str, Any], context: CmdletContext, spec: Mapping[str, Any]) -> None:
    tenant_id = document["tenant_id"]
    for key in ("inbound_connectors", "outbound_connectors", "transport_rules"):
        items = spec.get(key, [])
        if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
            raise InvalidInput(f"{key} of tenant {tenant_id} must be a list of objects with Exchange's field names")

        names: set[str] = set()
        for position, item in enumerate(items):
            if not _is_text(item.get("Name")):
                raise InvalidInput(f"an entry of {key} of tenant {tenant_id} has no Name; every object needs one")
            if item["Name"].lower() in names:
                raise InvalidInput(f"{key} of tenant {tenant_id} has the name {quoted(item['Name'])} twice; names are unique")
            names.add(item["Name"].lower())
            document[key].append(_seed_object(key, context, dict(item), position))


def _seed_object(key: str, context: CmdletContext, item: dict[str, Any], position: int) -> dict[str, Any]:
    if key == "outbound_connectors":
        return complete_outbound_connector(context, item)
    if key == "transport_rules":
        return complete_transport_rule(context, item, position)

    try:
        fields = seed_connector(context, item)
    except CmdletError as error:
        raise InvalidInput(f"invalid inbound connector {quoted(item['Name'])} of tenant {context.tenant_id}: {error.text}") from error
    return tenants.new_connector_entry(fields, context.now)
