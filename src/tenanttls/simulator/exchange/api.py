"""``POST /adminapi/beta/{tenant}/InvokeCommand``: run one cmdlet for a tenant, as Exchange Online's admin API does.

Request: ``{"CmdletInput": {"CmdletName": "Get-InboundConnector", "Parameters": {...}}}`` with an
app-only token for ``https://outlook.office365.com`` that carries ``Exchange.ManageAsApp``,
issued in a tenant where the app has a supported Entra role. The tenant in the path is
its id or a ``*.onmicrosoft.com`` name.

Response: ``{"@odata.context", "adminapi.warnings@odata.type", "@adminapi.warnings", "value"}``
plus ``@odata.nextLink`` when more objects remain. The client repeats the same POST
against the next link. A page holds at most the server's page size, or fewer when the
request carries ``Prefer: odata.maxpagesize=N``. ``$select=A,B`` limits the properties.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tenanttls.domain.names import is_guid
from tenanttls.simulator import catalog
from tenanttls.simulator.auth import authenticate
from tenanttls.simulator.exchange.cmdlets import Cmdlet, find_cmdlet
from tenanttls.simulator.exchange.context import CmdletContext
from tenanttls.simulator.exchange.errors import CmdletError, request_error
from tenanttls.simulator.exchange.parameters import bind
from tenanttls.simulator.jsonbody import InvalidJsonBody, parse_json
from tenanttls.simulator.services import Services, base_url, services_of
from tenanttls.simulator.settings import MAX_PAGE_SIZE

logger = logging.getLogger(__name__)

WWW_AUTHENTICATE = (
    f'Bearer client_id="{catalog.RESOURCE_APP_IDS[catalog.EXCHANGE_RESOURCE]}", '
    'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
    'token_types="app_asserted_user_v1 service_asserted_app_v1", error="invalid_token"'
)
# NOTE: public captures show the x-ms-diagnostics codes 2000003 (audience) and 2000004 (tenant);
# the codes and texts of the other reasons are modelled on them.
DIAGNOSTICS = {
    "missing": '2000000;reason="The token is missing.";error_category="invalid_token"',
    "malformed": '2000001;reason="The token is malformed.";error_category="invalid_token"',
    "signature": '2000001;reason="The token signature is invalid.";error_category="invalid_signature"',
    "expired": '2000008;reason="The token has expired.";error_category="invalid_lifetime"',
    "audience": '2000003;reason="The audience claim value is invalid.";error_category="invalid_resource"',
    "tenant": '2000004;reason="The tenant for the token does not exist or does not match the request.";error_category="invalid_tenant"',
}
_PREFER_PAGE_SIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)


class RequestRejected(Exception):
    """The request was rejected before a cmdlet ran. `response` is what Exchange returns for it."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def resolve_tenant(services: Services, reference: str) -> str | None:
    """Return the tenant id for a path segment that is a tenant id or a ``*.onmicrosoft.com`` name."""
    text = reference.strip().lower()
    if not (is_guid(text) or text.endswith(".onmicrosoft.com")):
        return None
    return services.state.resolve(text)


def _peek_cmdlet(raw: bytes) -> Cmdlet | None:
    """Return the cmdlet a request body names, without validating the rest (for call counting)."""
    try:
        body = parse_json(raw)
        return find_cmdlet(body["CmdletInput"]["CmdletName"])
    except (InvalidJsonBody, TypeError, KeyError):
        return None


async def invoke_command(request: Request) -> Response:
    """Handle one InvokeCommand request under the request guard."""
    services = services_of(request)
    reference = request.path_params["tenant"]
    tenant_id = resolve_tenant(services, reference)
    raw = await request.body()
    cmdlet = _peek_cmdlet(raw)
    endpoint = f"exchange:{cmdlet.name}" if cmdlet else "exchange:InvokeCommand"

    async def handle() -> Response:
        try:
            return _invoke(request, services, reference, tenant_id, raw)
        except RequestRejected as rejected:
            return rejected.response

    return await services.guard.run(request, surface="exchange", endpoint=endpoint, tenant_id=tenant_id, handler=handle)


async def invoke_command_v1(request: Request) -> Response:
    """``POST /adminapi/v1.0/{tenant}/InvokeCommand``: clients report 405 here; only ``beta`` serves InvokeCommand."""
    return Response(status_code=405, headers={"Allow": "GET"})


def _unauthorized(reason: str) -> RequestRejected:
    return RequestRejected(
        Response(status_code=401, headers={"WWW-Authenticate": WWW_AUTHENTICATE, "x-ms-diagnostics": DIAGNOSTICS[reason]})
    )


def _forbidden(message: str) -> RequestRejected:
    return RequestRejected(JSONResponse(request_error("Forbidden", message), status_code=403))


def _bad_request(message: str) -> RequestRejected:
    return RequestRejected(JSONResponse(request_error("BadRequest", message), status_code=400))


def _invoke(request: Request, services: Services, reference: str, tenant_id: str | None, raw: bytes) -> Response:
    claims = _authorise(request, services, tenant_id)
    assert tenant_id is not None
    cmdlet, raw_parameters = _parse_body(raw)
    _check_cmdlet_role(claims, cmdlet)
    offset = _offset(request, cmdlet)

    document = services.state.tenant(tenant_id)
    context = CmdletContext(
        state=services.state,
        tenant_id=tenant_id,
        initial_domain=document["initial_domain"],
        now=services.clock.now(),
        delays=services.state.delays(tenant_id),
    )
    try:
        bound = bind(cmdlet.parameters, raw_parameters)
        result = cmdlet.handler(context, bound)
    except CmdletError as error:
        logger.info("simulator exchange: tenant=%s cmdlet=%s status=%s error=%s", tenant_id, cmdlet.name, error.status, error.exception_type)
        return JSONResponse(error.body(), status_code=error.status)

    logger.info("simulator exchange: tenant=%s cmdlet=%s status=200 objects=%s", tenant_id, cmdlet.name, len(result.objects))
    return _page(request, services, reference, cmdlet, offset, result.objects, result.warnings)


def _authorise(request: Request, services: Services, tenant_id: str | None) -> dict[str, Any]:
    """Return the token's claims after the checks Exchange makes before it looks at the body."""
    claims = authenticate(
        request, services, audiences={catalog.EXCHANGE_RESOURCE, catalog.RESOURCE_APP_IDS[catalog.EXCHANGE_RESOURCE]}
    )
    if isinstance(claims, str):
        raise _unauthorized(claims)
    if tenant_id is None or claims["tid"] != tenant_id:
        raise _unauthorized("tenant")

    if catalog.EXCHANGE_MANAGE_AS_APP not in (claims.get("roles") or []):
        raise _forbidden(
            f"The application {claims.get('appid')} has not been granted the Exchange.ManageAsApp permission "
            "in this organization. Grant the permission and consent to it."
        )
    if not catalog.EXCHANGE_SUPPORTED_ROLES & set(claims.get("wids") or []):
        raise _forbidden(
            f"The role assigned to application {claims.get('appid')} isn't supported in this scenario. Please check "
            "online documentation for assigning correct Directory Roles to Azure AD Application for EXO App-Only "
            "Authentication."
        )
    return claims


def _parse_body(raw: bytes) -> tuple[Cmdlet, Any]:
    """Return the cmdlet and its raw Parameters; reject malformed bodies and unknown cmdlets."""
    try:
        body = parse_json(raw)
    except InvalidJsonBody as error:
        text = str(error)
        raise _bad_request(f"{text[:1].upper()}{text[1:]}.") from error

    cmdlet_input = body.get("CmdletInput") if isinstance(body, dict) else None
    if not isinstance(cmdlet_input, dict) or not isinstance(cmdlet_input.get("CmdletName"), str):
        raise _bad_request('The request body must be {"CmdletInput": {"CmdletName": "<cmdlet>", "Parameters": {...}}}.')

    cmdlet = find_cmdlet(cmdlet_input["CmdletName"])
    if cmdlet is None:
        # A client of the admin API reports 403 with an empty body for a cmdlet the session does not offer.
        raise RequestRejected(Response(status_code=403))
    return cmdlet, cmdlet_input.get("Parameters")


def _check_cmdlet_role(claims: dict[str, Any], cmdlet: Cmdlet) -> None:
    allowed = catalog.EXCHANGE_WRITE_ROLES if cmdlet.writes else catalog.EXCHANGE_READ_ROLES
    if not allowed & set(claims.get("wids") or []):
        # NOTE: one public report shows this text with HTTP 401; 403 is used so that clients do not
        # mistake a missing role for an expired token.
        raise _forbidden(f"User is not allowed to call {cmdlet.name}")


# --- paging and $select --------------------------------------------------------------------------------


def _page_size(request: Request, services: Services) -> int:
    limit = min(int(services.state.settings["page_size"]), MAX_PAGE_SIZE)
    match = _PREFER_PAGE_SIZE.search(request.headers.get("prefer", ""))
    if match and int(match.group(1)) > 0:
        return min(int(match.group(1)), limit)
    return limit


def _skip_token(cmdlet: Cmdlet, offset: int) -> str:
    data = json.dumps({"cmdlet": cmdlet.name, "offset": offset}).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _offset(request: Request, cmdlet: Cmdlet) -> int:
    token = request.query_params.get("$skiptoken")
    if token is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["cmdlet"] != cmdlet.name or not isinstance(data["offset"], int) or data["offset"] < 0:
            raise ValueError(token)
    except (binascii.Error, ValueError, TypeError, KeyError) as error:
        raise _bad_request("The $skiptoken is invalid. Repeat the request without it to start from the first page.") from error
    return data["offset"]


def _selected(objects: list[dict[str, Any]], select: str | None) -> list[dict[str, Any]]:
    if not select:
        return objects
    wanted = {item.strip().lower() for item in select.split(",") if item.strip()}
    return [{key: value for key, value in item.items() if key.lower() in wanted} for item in objects]


def _annotated(item: dict[str, Any]) -> dict[str, Any]:
    """Return `item` with the ``@odata.type`` annotations Exchange adds to multi-valued properties."""
    annotated: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, list):
            annotated[f"{key}@odata.type"] = "#Collection(String)"
        annotated[key] = value
    return annotated


def _page(
    request: Request,
    services: Services,
    reference: str,
    cmdlet: Cmdlet,
    offset: int,
    objects: list[dict[str, Any]],
    warnings: list[str],
) -> Response:
    size = _page_size(request, services)
    select = request.query_params.get("$select")
    page = [_annotated(item) for item in _selected(objects[offset : offset + size], select)]

    base = base_url(request)
    body: dict[str, Any] = {
        "@odata.context": f"{base}/adminapi/beta/{reference}/$metadata#Collection(Exchange.GenericHashTable)",
        "adminapi.warnings@odata.type": "#Collection(String)",
        "@adminapi.warnings": warnings,
        "value": page,
    }
    if offset + size < len(objects):
        query = {"$skiptoken": _skip_token(cmdlet, offset + size)}
        if select:
            query["$select"] = select
        body["@odata.nextLink"] = f"{base}{request.url.path}?{urlencode(query)}"

    headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if "prefer" in request.headers else None
    return JSONResponse(body, headers=headers)
