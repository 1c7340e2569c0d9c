"""Mapping Microsoft Graph error responses to tenanttls errors.

Graph errors have the form ``{"error": {"code", "message", "innerError": {"request-id",
"client-request-id", "date"}}}``.
"""

from __future__ import annotations

import httpx

from tenanttls.errors import (
    ConsentRequired,
    CredentialError,
    InvalidRequest,
    MicrosoftApiError,
    MicrosoftServiceError,
    NotFound,
    PermissionDenied,
    UnexpectedResponse,
)
from tenanttls.transport.responses import body_snippet, context_of, try_json_object, with_next_step

# Graph's codes for an object that does not exist.
NOT_FOUND_CODES = frozenset({"Request_ResourceNotFound", "ResourceNotFound", "itemNotFound"})


def parse_error(response: httpx.Response) -> tuple[str, str] | None:
    """Return Graph's error ``(code, message)``, or None when the body is not Graph's error shape."""
    error = (try_json_object(response) or {}).get("error")
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None
    return error["code"], str(error.get("message") or "")


def error_for(response: httpx.Response, *, tenant: str, operation: str) -> MicrosoftApiError:
    """Return the tenanttls error for a failed Graph response.

    Only a 404 with a not-found code is `NotFound`; a 404 without Graph's error body
    (a wrong base URL, a proxy page) is `UnexpectedResponse`.
    """
    context = context_of(response, tenant, operation)
    status = response.status_code
    parsed = parse_error(response)
    detail = f": {parsed[0]}: {parsed[1]}" if parsed else f" ({body_snippet(response)})"

    if status == 401:
        text = response.text + response.headers.get("WWW-Authenticate", "")
        if "consent" in text.lower():
            return ConsentRequired(
                with_next_step(
                    f"Graph rejected the app's token for tenant {tenant}{detail}",
                    "ask the tenant's admin to grant admin consent again",
                ),
                **context,
            )
        return CredentialError(
            with_next_step(
                f"Graph rejected a newly issued token for tenant {tenant} ({operation}){detail}",
                "check the app's certificate and its Domain.ReadWrite.All permission",
            ),
            **context,
        )
    if status == 403:
        return PermissionDenied(
            with_next_step(
                f"Graph denied {operation} for tenant {tenant}{detail}",
                "the app needs the Domain.ReadWrite.All application permission with admin consent",
            ),
            **context,
        )
    if status == 404 and parsed and parsed[0] in NOT_FOUND_CODES:
        return NotFound(f"{operation} for tenant {tenant}: {parsed[1] or parsed[0]}", **context)
    if status >= 500:
        return MicrosoftServiceError(f"Graph failed {operation} for tenant {tenant} with HTTP {status}{detail}", **context)
    if parsed is None:
        return UnexpectedResponse(
            f"Graph returned HTTP {status} for {operation} in tenant {tenant} without an error object{detail}; "
            "check graph_url",
            **context,
        )
    return InvalidRequest(f"Graph rejected {operation} for tenant {tenant}{detail}", **context)
