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
    request: Request, now: datetime, *, status: int, error: str, code: int, text: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return an Entra ID token-endpoint error: ``error`` is the OAuth code, `code` the AADSTS number."""
    trace_id = str(uuid.uuid4())
    correlation = correlation_id(request)
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    description = f"AADSTS{code}: {text} Trace ID: {trace_id} Correlation ID: {correlation} Timestamp: {timestamp}"
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
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
