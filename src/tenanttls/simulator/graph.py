"""The simulated Microsoft Graph v1.0 `domains` API.

- ``POST /v1.0/domains`` with ``{"id": name}`` adds an unverified domain (201). A subdomain of
  a domain verified in the same tenant is verified at once, as Microsoft does; a name
  verified in another tenant is rejected. A subdomain of a domain verified in another
  tenant is added unverified and needs its own TXT proof, as Microsoft 365's Domains FAQ
  describes.
- ``GET /v1.0/domains`` and ``GET /v1.0/domains/{id}`` read domains (``$select`` supported,
  as on ``verify``).
- ``GET /v1.0/domains/{id}/verificationDnsRecords`` returns the ``MS=ms########`` TXT record
  (unique per tenant and domain) and the MX alternative.
- ``POST /v1.0/domains/{id}/verify`` queries the TXT records of the name at the configured
  nameserver. Once the value is found, the domain is verified, and Exchange lists it after
  the accepted-domain delay.
- ``DELETE /v1.0/domains/{id}`` removes a domain (204).

Reads need ``Domain.Read.All`` or ``Domain.ReadWrite.All`` in the token's roles; changes
need ``Domain.ReadWrite.All``. The tenant is the token's ``tid``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import InvalidInput
from tenanttls.simulator import catalog, tenants
from tenanttls.simulator.auth import authenticate, unverified_tenant
from tenanttls.simulator.dnslookup import DnsLookupError, lookup_txt
from tenanttls.simulator.jsonbody import InvalidJsonBody, parse_json
from tenanttls.simulator.responses import graph_error
from tenanttls.simulator.services import Services, base_url, services_of

logger = logging.getLogger(__name__)

DOMAIN_PROPERTIES = (
    "authenticationType",
    "availabilityStatus",
    "id",
    "isAdminManaged",
    "isDefault",
    "isInitial",
    "isRoot",
    "isVerified",
    "passwordNotificationWindowInDays",
    "passwordValidityPeriodInDays",
    "supportedServices",
    "state",
)
GRAPH_401_HEADERS = {
    "WWW-Authenticate": (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        f'client_id="{catalog.RESOURCE_APP_IDS[catalog.GRAPH_RESOURCE]}"'
    )
}
GRAPH_401_MESSAGES = {
    "missing": "Access token is empty.",
    "malformed": "IDX14100: JWT is not well formed.",
    "signature": "Access token validation failure.",
    "expired": "Access token has expired or is not yet valid.",
    "audience": "Access token validation failure. Invalid audience.",
    "tenant": "Access token validation failure. The token's tenant does not exist.",
}


class GraphError(Exception):
    """A Graph request failed with HTTP `status`, error `code` and `message`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _not_found(name: str) -> GraphError:
    return GraphError(
        404, "Request_ResourceNotFound",
        f"Resource '{name[:200]}' does not exist or one of its queried reference-property objects are not present.",
    )


def render_domain(document: dict[str, Any], entry: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    """Return the Graph `domain` resource of one domain entry, limited to `select` when given."""
    resource = {
        "authenticationType": entry["authenticationType"],
        "availabilityStatus": None,
        "id": entry["id"],
        "isAdminManaged": True,
        "isDefault": entry["id"] == tenants.default_domain(document),
        "isInitial": entry["isInitial"],
        "isRoot": tenants.is_root_domain(document, entry["id"]),
        "isVerified": entry["isVerified"],
        "passwordNotificationWindowInDays": None,
        "passwordValidityPeriodInDays": None,
        "supportedServices": list(entry["supportedServices"]),
        "state": None,
    }
    if select:
        resource = {key: value for key, value in resource.items() if key in select}
    return resource


def _select(request: Request) -> list[str] | None:
    text = request.query_params.get("$select")
    if not text:
        return None
    wanted = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in wanted if item not in DOMAIN_PROPERTIES]
    if unknown:
        raise GraphError(400, "BadRequest", f"Could not find a property named '{unknown[0][:100]}' on type 'microsoft.graph.domain'.")
    return wanted


# --- request plumbing ------------------------------------------------------------------------------


async def _serve(
    request: Request, endpoint: str, handler: Callable[[Services, dict[str, Any]], Awaitable[Response]], *, write: bool
) -> Response:
    """Authenticate, check the permission and run `handler` under the request guard; render GraphError."""
    services = services_of(request)
    tenant_hint = unverified_tenant(request, services)

    async def handle() -> Response:
        now = services.clock.now()
        try:
            claims = _claims(request, services)
            needed = catalog.GRAPH_DOMAIN_WRITE_PERMISSIONS if write else catalog.GRAPH_DOMAIN_READ_PERMISSIONS
            if not needed & set(claims.get("roles") or []):
                raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
            return await handler(services, claims)
        except GraphError as error:
            return graph_error(request, now, status=error.status, code=error.code, message=error.message, headers=error.headers)

    return await services.guard.run(request, surface="graph", endpoint=f"graph:{endpoint}", tenant_id=tenant_hint, handler=handle)


def _claims(request: Request, services: Services) -> dict[str, Any]:
    result = authenticate(request, services, audiences={catalog.GRAPH_RESOURCE, catalog.RESOURCE_APP_IDS[catalog.GRAPH_RESOURCE]})
    if isinstance(result, str):
        raise GraphError(401, "InvalidAuthenticationToken", GRAPH_401_MESSAGES[result], GRAPH_401_HEADERS)
    return result


def _domain_name(request: Request) -> str:
    return request.path_params["domain"].strip().lower().rstrip(".")


def _find(services: Services, tenant_id: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    document = services.state.tenant(tenant_id)
    entry = document["domains"].get(name)
    if entry is None:
        raise _not_found(name)
    return document, entry


# --- handlers -----------------------------------------------------------------------------------------


async def list_domains(request: Request) -> Response:
    """``GET /v1.0/domains``."""

    async def handle(services: Services, claims: dict[str, Any]) -> Response:
        select = _select(request)
        document = services.state.tenant(claims["tid"])
        values = [render_domain(document, entry, select) for entry in document["domains"].values()]
        return JSONResponse({"@odata.context": f"{base_url(request)}/v1.0/$metadata#domains", "value": values})

    return await _serve(request, "GET /domains", handle, write=False)


async def get_domain(request: Request) -> Response:
    """``GET /v1.0/domains/{id}``."""

    async def handle(services: Services, claims: dict[str, Any]) -> Response:
        select = _select(request)
        document, entry = _find(services, claims["tid"], _domain_name(request))
        body = {"@odata.context": f"{base_url(request)}/v1.0/$metadata#domains/$entity", **render_domain(document, entry, select)}
        return JSONResponse(body)

    return await _serve(request, "GET /domains/{id}", handle, write=False)


async def create_domain(request: Request) -> Response:
    """``POST /v1.0/domains`` with ``{"id": name}``."""

    async def handle(services: Services, claims: dict[str, Any]) -> Response:
        name = _new_domain_name(await request.body())
        tenant_id = claims["tid"]
        _check_new_domain(services, tenant_id, name)

        document = services.state.tenant(tenant_id)
        now = services.clock.now()
        auto_verified = not tenants.is_root_domain(document, name)
        accepted_at = now + timedelta(seconds=services.state.delays(tenant_id)["accepted_domain_seconds"])
        code = tenants.verification_code(tenant_id, name, _CodesOfOthers(services, tenant_id, name))
        entry = tenants.new_domain(
            name, now=now, verification_code=code, verified=auto_verified, accepted_at=accepted_at if auto_verified else None
        )
        with services.state.edit(tenant_id, "add-domain", {"domain": name, "verified": auto_verified}) as draft:
            draft["domains"][name] = entry

        document = services.state.tenant(tenant_id)
        body = {"@odata.context": f"{base_url(request)}/v1.0/$metadata#domains/$entity", **render_domain(document, entry)}
        return JSONResponse(body, status_code=201, headers={"Location": f"{base_url(request)}/v1.0/domains('{name}')"})

    return await _serve(request, "POST /domains", handle, write=True)


def _new_domain_name(raw: bytes) -> str:
    try:
        body = parse_json(raw or b"null")
    except InvalidJsonBody as error:
        raise GraphError(
            400, "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        ) from error

    invalid_id = GraphError(400, "Request_BadRequest", "Invalid value specified for property 'id' of resource 'Domain'.")
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise invalid_id
    extra = sorted(key for key in body if key not in ("id", "@odata.type"))
    if extra:
        raise GraphError(400, "Request_BadRequest", f"Property '{extra[0][:100]}' is read-only and cannot be set when adding a domain.")

    try:
        return validate_domain_name(body["id"])
    except InvalidInput as error:
        raise invalid_id from error


def _check_new_domain(services: Services, tenant_id: str, name: str) -> None:
    document = services.state.tenant(tenant_id)
    if name in document["domains"]:
        raise GraphError(400, "Request_BadRequest", "Another object with the same value for property id already exists.")

    # NOTE: Graph's texts for the two rejections below are unconfirmed; the rules are Microsoft's.
    if name.endswith(".onmicrosoft.com"):
        raise GraphError(400, "Request_BadRequest", f"The domain '{name}' is a Microsoft-managed name and cannot be added.")
    owner = services.state.domain_owner(name)
    if owner is not None and owner != tenant_id:
        raise GraphError(
            400, "Request_BadRequest",
            f"The domain '{name}' is already verified in another tenant. Remove it from that tenant before adding it here.",
        )


class _CodesOfOthers:
    """The ``MS=`` proof values in use by any tenant and domain other than one, looked up one at a time.

    Copying every tenant's values for each new domain made adding domains slow down as
    the simulated fleet grew.
    """

    def __init__(self, services: Services, tenant_id: str, name: str) -> None:
        self._state = services.state
        self._own = (tenant_id, name)

    def __contains__(self, code: object) -> bool:
        owner = self._state.verification_code_owner(code) if isinstance(code, str) else None
        return owner is not None and owner != self._own


async def delete_domain(request: Request) -> Response:
    """``DELETE /v1.0/domains/{id}``."""

    async def handle(services: Services, claims: dict[str, Any]) -> Response:
        name = _domain_name(request)
        document, entry = _find(services, claims["tid"], name)
        if entry["isInitial"]:
            raise GraphError(400, "Request_BadRequest", f"The initial domain '{name}' cannot be deleted.")
        if name == tenants.default_domain(document):
            raise GraphError(400, "Request_BadRequest", f"The default domain '{name}' cannot be deleted. Make another domain the default first.")

        with services.state.edit(claims["tid"], "delete-domain", {"domain": name}) as draft:
            del draft["domains"][name]
        return Response(status_code=204)

    return await _serve(request, "DELETE /domains/{id}", handle, write=True)


async def verification_records(request: Request) -> Response:
    """``GET /v1.0/domains/{id}/verificationDnsRecords``."""

    async def handle(services: Services, claims: dict[str, Any]) -> Response:
        name = _domain_name(request)
        _, entry = _find(services, claims["tid"], name)
        code = entry["verificationCode"]
        records = [
            {
                "@odata.type": "#microsoft.graph.domainDnsTxtRecord",
                "id": tenants.stable_guid(claims["tid"], name, "txt"),
                "isOptional": False,
                "label": name,
                "recordType": "Txt",
                "supportedService": "Email",
                "ttl": 3600,
                "text": code,
            },
            {
                "@odata.type": "#microsoft.graph.domainDnsMxRecord",
                "id": tenants.stable_guid(claims["tid"], name, "mx"),
                "isOptional": False,
                "label": name,
                "recordType": "Mx",
                "supportedService": "Email",
                "ttl": 3600,
                "mailExchange": f"{code[3:]}.msv1.invalid",
                "preference": 32767,
            },
        ]
        context = f"{base_url(request)}/v1.0/$metadata#domains('{name}')/verificationDnsRecords"
        return JSONResponse({"@odata.context": context, "value": records})

    return await _serve(request, "GET /domains/{id}/verificationDnsRecords", handle, write=False)


async def verify_domain(request: Request) -> Response:
    """``POST /v1.0/domains/{id}/verify``: look up the TXT record and verify the domain when it is there."""

    async def handle(services: Services, claims: dict[str, Any]) -> Response:
        select = _select(request)
        tenant_id = claims["tid"]
        name = _domain_name(request)
        _, entry = _find(services, tenant_id, name)
        if entry["isVerified"]:
            raise GraphError(400, "Request_BadRequest", f"The domain '{name}' is already verified.")
        owner = services.state.domain_owner(name)
        if owner is not None and owner != tenant_id:
            raise GraphError(400, "Request_BadRequest", f"The domain '{name}' is already verified in another tenant.")

        await _find_proof(services, name, entry["verificationCode"])
        return _mark_verified(request, services, tenant_id, name, select)

    return await _serve(request, "POST /domains/{id}/verify", handle, write=True)


async def _find_proof(services: Services, name: str, code: str) -> None:
    # NOTE: Graph's text for a failed verification is unconfirmed; the status and code follow its other 400s.
    try:
        values = await run_in_threadpool(lookup_txt, name, services.dns_nameserver)
    except (DnsLookupError, ValueError) as error:
        logger.info("simulator verify failed: domain=%s reason=%s", name, error)
        raise GraphError(
            400, "Request_BadRequest",
            f"Domain verification failed: the DNS query for the TXT record of '{name}' failed ({error}). Try again later.",
        ) from error

    if code not in values:
        logger.info("simulator verify failed: domain=%s reason=record not found", name)
        raise GraphError(
            400, "Request_BadRequest",
            f"Domain verification failed because the TXT record '{code}' was not found at '{name}'. "
            "Add the record shown by verificationDnsRecords and try again.",
        )


def _mark_verified(request: Request, services: Services, tenant_id: str, name: str, select: list[str] | None) -> Response:
    now = services.clock.now()
    accepted_at = now + timedelta(seconds=services.state.delays(tenant_id)["accepted_domain_seconds"])
    try:
        with services.state.edit(tenant_id, "verify-domain", {"domain": name, "accepted_at": tenants.iso(accepted_at)}) as draft:
            entry = draft["domains"][name]
            entry["isVerified"] = True
            entry["verifiedDateTime"] = tenants.iso(now)
            entry["acceptedDateTime"] = tenants.iso(accepted_at)
            entry["supportedServices"] = tenants.verified_services(initial=False)
    except InvalidInput as error:
        # Another tenant verified the name while the DNS query ran.
        raise GraphError(400, "Request_BadRequest", f"The domain '{name}' is already verified in another tenant.") from error

    document = services.state.tenant(tenant_id)
    rendered = render_domain(document, document["domains"][name], select)
    body = {"@odata.context": f"{base_url(request)}/v1.0/$metadata#domains/$entity", **rendered}
    return JSONResponse(body)
