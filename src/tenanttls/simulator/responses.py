"""Error responses in the shape each simulated Microsoft service uses.

- Entra ID (identity): ``{"error", "error_description", "error_codes", "timestamp", "trace_id",
  "correlation_id", "error_uri"}``. As Entra ID writes it, the description starts with
  ``AADSTSnnnn:`` and ends with the trace id, correlation id and timestamp.
- Graph: ``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``.
- Exchange admin API: see `tenanttls.simulator.exchange.errors`.

`fault_response` renders the injected faults (429, 503, 504, 500) in the shape of the
service they hit. NOTE: the texts of injected faults are this simulator's; Microsoft does
not document the bodies of its throttling and outage responses.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tenanttls.simulator.exchange.errors import request_error

# The text Exchange Online sends when a tenant has too many requests in flight, as clients match it.
CONCURRENCY_TEXT = "You have reached the maximum number of concurrent requests per tenant. Please wait and try again."


def correlation_id(request: Request) -> str:
    """Return the client's ``client-request-id`` when it is a GUID, else a new one (Microsoft echoes the client's)."""
    given = request.headers.get("client-request-id", "")
    try:
        return str(uuid.UUID(given))
    except ValueError:
        return str(uuid.uuid4())


def aad_error(
    request: Request, now: datetime, *, status: int, error: str, code: int | None, text: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return an Entra ID token-endpoint error: ``error`` is the OAuth code, `code` the AADSTS number.

    `code` None leaves out the ``AADSTS`` prefix, ``error_codes`` and ``error_uri``, for errors
    that Entra ID gives no number.
    """
    trace_id = str(uuid.uuid4())
    correlation = correlation_id(request)
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    prefix = f"AADSTS{code}: " if code is not None else ""
    description = f"{prefix}{text} Trace ID: {trace_id} Correlation ID: {correlation} Timestamp: {timestamp}"
    body: dict[str, Any] = {
        "error": error,
        "error_description": description,
        "error_codes": [code] if code is not None else [],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
    }
    if code is not None:
        body["error_uri"] = f"https://login.microsoftonline.com/error?code={code}"
    return JSONResponse(body, status_code=status, headers=headers)


def graph_error(request: Request, now: datetime, *, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Return a Microsoft Graph error body with its innerError request ids."""
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": correlation_id(request),
            },
        }
    }
    merged = {"request-id": request_id, **(headers or {})}
    return JSONResponse(body, status_code=status, headers=merged)


FAULTS = {
    # kind: (status, identity error, AADSTS code, identity text, Graph code, Exchange code, message)
    "throttle": (
        429, "temporarily_unavailable", 90055,
        "TenantThrottlingError - There are too many incoming requests. Please retry later.",
        "TooManyRequests", "TooManyRequests", "Too many requests. Retry after the time given in Retry-After.",
    ),
    "unavailable": (
        503, "temporarily_unavailable", 90033,
        "A transient error has occurred. Please try again.",
        "serviceNotAvailable", "ServiceUnavailable", "The service is temporarily unavailable. Please try again later.",
    ),
    "timeout": (
        504, "temporarily_unavailable", 90033,
        "The request timed out. Please try again.",
        "GatewayTimeout", "GatewayTimeout", "The request timed out before the service could respond.",
    ),
    "internal": (
        500, "server_error", 90100,
        "An unexpected error occurred in the service. Please try again.",
        "generalException", "InternalServerError", "An internal server error occurred. Please try again.",
    ),
}


def fault_response(surface: str, kind: str, request: Request, now: datetime, retry_after: int | None = None) -> Response:
    """Return the response of an injected or unexpected fault of `kind` in `surface`'s error shape."""
    if kind == "concurrency":
        # NOTE: clients match this text; the HTTP status Exchange pairs with it is unconfirmed, 429 is assumed.
        return PlainTextResponse(CONCURRENCY_TEXT, status_code=429)

    status, aad_code_name, aad_number, aad_text, graph_code, exchange_code, message = FAULTS[kind]
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if surface == "identity":
        return aad_error(request, now, status=status, error=aad_code_name, code=aad_number, text=aad_text, headers=headers)
    if surface == "graph":
        return graph_error(request, now, status=status, code=graph_code, message=message, headers=headers)
    return JSONResponse(request_error(exchange_code, message), status_code=status, headers=headers)


# --- paths and methods that no route serves ----------------------------------------------------------------


def api_family(path: str) -> str:
    """Return which API a path belongs to: "inspection", "graph", "exchange" or "identity" (everything else)."""
    if path == "/_simulator" or path.startswith("/_simulator/"):
        return "inspection"
    if path.startswith("/v1.0/"):
        return "graph"
    if path.startswith("/adminapi/"):
        return "exchange"
    return "identity"


def route_error(request: Request, now: datetime, *, status: int, allowed: str | None) -> Response:
    """Return the 404 or 405 for a path or method that no route serves, in the error shape of the path's API.

    `allowed` is the ``Allow`` header value of a 405 (the methods the path takes).
    """
    path = request.url.path
    method = request.method
    headers = {"Allow": allowed} if status == 405 and allowed else None
    family = api_family(path)

    if family == "inspection":
        if status == 405:
            message = f"method {method} is not allowed on {path[:200]}; use {allowed}"
        else:
            message = f"unknown inspection path {path[:200]}; docs/simulator.md lists the /_simulator/ paths"
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    if family == "graph":
        if status == 405:
            # NOTE: Graph's directory APIs were seen sending this code and text for a wrong method;
            # the status 405 follows OData and is unconfirmed.
            return graph_error(
                request, now, status=405, code="Request_BadRequest",
                message="Specified HTTP method is not allowed for the request target.", headers=headers,
            )
        segment = unknown_graph_segment(path)
        return graph_error(request, now, status=400, code="BadRequest", message=f"Resource not found for the segment '{segment}'.")

    if family == "exchange":
        # NOTE: the admin API's bodies for an unknown path or method are unconfirmed; these use its request-error shape.
        if status == 405:
            body = request_error("MethodNotAllowed", f"The HTTP method '{method}' is not allowed for this resource. Use {allowed}.")
        else:
            body = request_error("NotFound", "The resource was not found. The admin API serves POST /adminapi/beta/{tenant}/InvokeCommand.")
        return JSONResponse(body, status_code=status, headers=headers)

    if status == 405:
        text = f"The endpoint only accepts {allowed} requests. Received a {method} request."
        return aad_error(request, now, status=405, error="invalid_request", code=900561, text=text, headers=headers)
    # NOTE: Entra ID responds to an unknown path with an HTML page; the simulator keeps its JSON error
    # shape, without an AADSTS number, so that clients can read it.
    return aad_error(
        request, now, status=404, error="not_found", code=None, text=f"The path '{path[:200]}' does not exist on this identity host."
    )


def unknown_graph_segment(path: str) -> str:
    """Return the first segment of a ``/v1.0/`` path that the simulated Graph does not serve, as Graph names it."""
    segments = [segment for segment in path.split("/")[2:] if segment]
    if not segments:
        return "v1.0"
    if segments[0] != "domains" or len(segments) < 3:
        return segments[0][:100]
    if segments[2] not in ("verificationDnsRecords", "verify") or len(segments) == 3:
        return segments[2][:100]
    return segments[3][:100]
