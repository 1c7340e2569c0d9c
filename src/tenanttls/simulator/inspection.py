"""The inspection API under ``/_simulator/``: seed and read tenants, counts, faults, delays, consent, clock.

These paths exist only in the simulator, never on a Microsoft host, and have no
authentication, because the simulator is meant to listen on loopback. Request and response
bodies are JSON. Errors are ``{"error": "message"}`` with status 400 or 404.

=========================================  ==========================================================
``GET /_simulator/health``                 ``{"status": "ok", "tenants": N}``, plus ``"smtp": "host:port"``
                                           while the SMTP front door runs
``POST /_simulator/seed[?replace=true]``   add the seed's tenants (and app, settings); returns their ids
``GET /_simulator/tenants``                tenant summaries
``GET /_simulator/tenants/{tenant}``       the tenant's full document (id or initial domain in the path)
``PATCH /_simulator/tenants/{tenant}``     display_name, connectors_created_disabled, app_roles, delays,
                                           faults, consent_decision
``DELETE /_simulator/tenants/{tenant}``    remove the tenant
``POST .../tenants/{tenant}/consent``      ``{"granted": bool, "permissions": [...]}``: grant or revoke
``POST .../{tenant}/consent-decision``     ``{"decision": "accept" | "deny"}`` for the next admin consent
``GET|PATCH /_simulator/settings``         global delays, faults, page_size, token_lifetime_seconds
``GET|DELETE /_simulator/calls``           call counts per endpoint and tenant, faults, requests in flight
``GET /_simulator/mutations``              the mutation log (``?tenant=`` and ``?limit=``)
``GET /_simulator/clock``                  the simulator's time
``POST /_simulator/clock/advance``         ``{"seconds": N}``: move the clock forward
``GET /_simulator/mail-view[?at=ISO]``     accepted domains and connectors in effect for mail
=========================================  ==========================================================
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenanttls.clock import OffsetClock
from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.simulator.display import quoted
from tenanttls.simulator.jsonbody import InvalidJsonBody, parse_json
from tenanttls.simulator.seed import apply_seed, parse_app_roles
from tenanttls.simulator.services import Services, services_of
from tenanttls.simulator.settings import LATEST_CLOCK_TIME, MAX_SECONDS
from tenanttls.simulator.tenants import iso, parse_iso

logger = logging.getLogger(__name__)

TENANT_UPDATE_KEYS = {"display_name", "connectors_created_disabled", "app_roles", "delays", "faults", "consent_decision"}


class InspectionError(Exception):
    """A request to the inspection API was invalid (400) or named something that does not exist (404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request, Services], Awaitable[Any]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap `handler` so that its result becomes JSON and its errors become ``{"error": ...}`` responses."""

    async def endpoint(request: Request) -> Response:
        services = services_of(request)
        try:
            result = await handler(request, services)
        except InspectionError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        except InvalidInput as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except NotFoundError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


async def _json_body(request: Request) -> Any:
    try:
        # An empty body reads as null, so the handler names the object it expected.
        return parse_json(await request.body() or b"null")
    except InvalidJsonBody as error:
        raise InspectionError(400, str(error)) from error


def _object_body(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InspectionError(400, f"{what} must be a JSON object")
    return body


def _tenant_id(request: Request, services: Services) -> str:
    reference = request.path_params["tenant"]
    tenant_id = services.state.resolve(reference)
    if tenant_id is None:
        raise InspectionError(404, f"tenant {quoted(reference, 100)} not found; list tenants with GET /_simulator/tenants")
    return tenant_id


# --- handlers -----------------------------------------------------------------------------------------


async def health(request: Request, services: Services) -> Any:
    body: dict[str, Any] = {"status": "ok", "tenants": len(services.state.tenant_ids())}
    if services.smtp_address is not None:
        body["smtp"] = services.smtp_address
    return body


async def seed(request: Request, services: Services) -> Any:
    body = await _json_body(request)
    replace = request.query_params.get("replace", "").lower() in ("1", "true", "yes")
    added = apply_seed(services.state, body, replace=replace)
    return JSONResponse({"tenants": added}, status_code=201)


async def list_tenants(request: Request, services: Services) -> Any:
    summaries = []
    for tenant_id in services.state.tenant_ids():
        document = services.state.tenant(tenant_id)
        summaries.append(
            {
                "tenant_id": tenant_id,
                "initial_domain": document["initial_domain"],
                "display_name": document["display_name"],
                "consent_granted": document["consent"]["granted"],
                "domains": len(document["domains"]),
                "inbound_connectors": sum(1 for entry in document["inbound_connectors"] if entry["current"]),
            }
        )
    return {"tenants": summaries}


async def get_tenant(request: Request, services: Services) -> Any:
    return services.state.tenant(_tenant_id(request, services))


async def update_tenant(request: Request, services: Services) -> Any:
    tenant_id = _tenant_id(request, services)
    body = _object_body(await _json_body(request), "the tenant update")
    unknown = sorted(set(body) - TENANT_UPDATE_KEYS)
    if unknown:
        raise InspectionError(400, f"unknown key(s) {', '.join(unknown)}: valid keys are {', '.join(sorted(TENANT_UPDATE_KEYS))}")

    update = dict(body)
    if "app_roles" in update:
        update["app_roles"] = parse_app_roles(update["app_roles"], tenant_id)
    if "connectors_created_disabled" in update and not isinstance(update["connectors_created_disabled"], bool):
        raise InspectionError(400, "connectors_created_disabled must be true or false")
    if "display_name" in update and not (isinstance(update["display_name"], str) and update["display_name"].strip()):
        raise InspectionError(400, "display_name must be a non-empty string")
    if "consent_decision" in update and update["consent_decision"] not in ("accept", "deny"):
        raise InspectionError(400, "consent_decision must be 'accept' or 'deny'")

    services.guard.reset_fault_counts()
    return services.state.update_tenant(tenant_id, update)


async def delete_tenant(request: Request, services: Services) -> Any:
    services.state.delete_tenant(_tenant_id(request, services))
    return Response(status_code=204)


async def set_consent(request: Request, services: Services) -> Any:
    tenant_id = _tenant_id(request, services)
    body = _object_body(await _json_body(request), "the consent")
    granted = body.get("granted")
    permissions = body.get("permissions")
    if not isinstance(granted, bool):
        raise InspectionError(400, "'granted' must be true or false")
    if permissions is not None and not (isinstance(permissions, list) and all(isinstance(item, str) for item in permissions)):
        raise InspectionError(400, "'permissions' must be a list of permission names such as 'Exchange.ManageAsApp'")

    services.state.set_consent(tenant_id, granted, permissions, "grant-consent" if granted else "revoke-consent")
    return services.state.tenant(tenant_id)["consent"]


async def set_consent_decision(request: Request, services: Services) -> Any:
    tenant_id = _tenant_id(request, services)
    body = _object_body(await _json_body(request), "the consent decision")
    decision = body.get("decision")
    if decision not in ("accept", "deny"):
        raise InspectionError(400, "'decision' must be 'accept' or 'deny'")
    services.state.update_tenant(tenant_id, {"consent_decision": decision})
    return {"tenant_id": tenant_id, "decision": decision}


async def get_settings(request: Request, services: Services) -> Any:
    return services.state.settings


async def update_settings(request: Request, services: Services) -> Any:
    body = _object_body(await _json_body(request), "the settings update")
    settings = services.state.update_settings(body)
    services.guard.reset_fault_counts()
    return settings


async def get_calls(request: Request, services: Services) -> Any:
    snapshot = services.guard.calls.snapshot()
    snapshot["in_flight"] = services.guard.limiter.in_flight()
    return snapshot


async def reset_calls(request: Request, services: Services) -> Any:
    services.guard.calls.reset()
    return Response(status_code=204)


async def get_mutations(request: Request, services: Services) -> Any:
    tenant_id = None
    if request.query_params.get("tenant"):
        tenant_id = services.state.resolve(request.query_params["tenant"])
        if tenant_id is None:
            raise InspectionError(404, f"tenant {quoted(request.query_params['tenant'], 100)} not found")
    try:
        limit = int(request.query_params.get("limit", "100"))
    except ValueError as error:
        raise InspectionError(400, "limit must be a whole number") from error
    return {"mutations": services.state.mutations(tenant_id, max(1, min(limit, 10_000)))}


async def get_clock(request: Request, services: Services) -> Any:
    clock = services.clock
    offset = clock.offset.total_seconds() if isinstance(clock, OffsetClock) else None
    return {"now": iso(clock.now()), "kind": type(clock).__name__, "offset_seconds": offset}


async def advance_clock(request: Request, services: Services) -> Any:
    body = _object_body(await _json_body(request), "the clock advance")
    seconds = _advance_seconds(body)
    now = services.clock.now()
    if seconds > (LATEST_CLOCK_TIME - now).total_seconds():
        raise InspectionError(
            400,
            f"advancing the clock by {quoted(seconds)} seconds would pass {iso(LATEST_CLOCK_TIME)}, the latest time "
            f"the simulator supports; the clock is at {iso(now)}",
        )

    advance = getattr(services.clock, "advance", None)
    if advance is None:
        raise InspectionError(400, f"the simulator's clock ({type(services.clock).__name__}) cannot be advanced")
    advance(seconds)
    if isinstance(services.clock, OffsetClock):
        services.state.set_clock_offset_seconds(services.clock.offset.total_seconds())
    else:
        services.state.record("advance-clock", {"seconds": seconds})
    logger.info("simulator clock advanced: seconds=%s now=%s", seconds, iso(services.clock.now()))
    return await get_clock(request, services)


def _advance_seconds(body: dict[str, Any]) -> float:
    if "seconds" not in body:
        raise InspectionError(400, 'missing \'seconds\': send {"seconds": N}, the number of seconds to move the clock forward')

    seconds = body["seconds"]
    valid = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    # NaN and infinity fail the range check; a huge JSON integer is compared without converting it to float.
    if not valid or not 0 <= seconds <= MAX_SECONDS:
        raise InspectionError(
            400,
            f"invalid 'seconds' {quoted(seconds)}: expected a number from 0 to {MAX_SECONDS} (100 years); "
            "the clock only moves forward",
        )
    return float(seconds)


async def mail_view(request: Request, services: Services) -> Any:
    at = request.query_params.get("at")
    try:
        moment = parse_iso(at) if at else services.clock.now()
    except ValueError as error:
        raise InspectionError(400, f"'at' must be an ISO 8601 time such as 2026-01-01T00:00:00Z, not {quoted(at, 50)}") from error
    return {"at": iso(moment), "tenants": [asdict(view) for view in services.state.mail_view(moment)]}


ROUTES = [
    Route("/_simulator/health", _endpoint(health), methods=["GET"]),
    Route("/_simulator/seed", _endpoint(seed), methods=["POST"]),
    Route("/_simulator/tenants", _endpoint(list_tenants), methods=["GET"]),
    Route("/_simulator/tenants/{tenant}", _endpoint(get_tenant), methods=["GET"]),
    Route("/_simulator/tenants/{tenant}", _endpoint(update_tenant), methods=["PATCH"]),
    Route("/_simulator/tenants/{tenant}", _endpoint(delete_tenant), methods=["DELETE"]),
    Route("/_simulator/tenants/{tenant}/consent", _endpoint(set_consent), methods=["POST"]),
    Route("/_simulator/tenants/{tenant}/consent-decision", _endpoint(set_consent_decision), methods=["POST"]),
    Route("/_simulator/settings", _endpoint(get_settings), methods=["GET"]),
    Route("/_simulator/settings", _endpoint(update_settings), methods=["PATCH"]),
    Route("/_simulator/calls", _endpoint(get_calls), methods=["GET"]),
    Route("/_simulator/calls", _endpoint(reset_calls), methods=["DELETE"]),
    Route("/_simulator/mutations", _endpoint(get_mutations), methods=["GET"]),
    Route("/_simulator/clock", _endpoint(get_clock), methods=["GET"]),
    Route("/_simulator/clock/advance", _endpoint(advance_clock), methods=["POST"]),
    Route("/_simulator/mail-view", _endpoint(mail_view), methods=["GET"]),
]
