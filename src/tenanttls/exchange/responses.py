"""Reading InvokeCommand responses and mapping Exchange errors to tenanttls errors.

A cmdlet error arrives as ``{"error": {"code", "message", "details": [{"message":
"ErrId|ExceptionType|text"}], "innererror": {...}}}``. The text after the exception
type is what PowerShell would print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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

NOT_FOUND_EXCEPTION = "ManagementObjectNotFoundException"
# Exchange's text when a tenant has too many requests running at once.
_CONCURRENCY_TEXT = re.compile(r"maximum number of concurrent requests", re.IGNORECASE)
_CONSENT_TEXT = re.compile(r"consent|AADSTS65001", re.IGNORECASE)


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one cmdlet: the objects of every page and Exchange's warnings."""

    values: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExchangeError:
    """The parts of an InvokeCommand error body."""

    code: str
    message: str
    exception_type: str | None
    text: str


def is_concurrency_throttled(response: httpx.Response) -> bool:
    """Return True when Exchange refused the request for too many concurrent requests in the tenant."""
    return response.status_code >= 400 and bool(_CONCURRENCY_TEXT.search(response.text))


def read_warnings(document: dict[str, Any], response: httpx.Response) -> list[str]:
    """Return the cmdlet warnings of a page from ``@adminapi.warnings`` and the ``X-Warnings`` header."""
    warnings = document.get("@adminapi.warnings") or []
    found = [str(item) for item in warnings] if isinstance(warnings, list) else [str(warnings)]
    header = response.headers.get("X-Warnings")
    if header and header not in found:
        found.append(header)
    return found


def parse_error(document: dict[str, Any] | None) -> ExchangeError | None:
    """Return the parts of an Exchange error body, or None when the body has no ``error`` object."""
    error = (document or {}).get("error")
    if not isinstance(error, dict):
        return None

    code = str(error.get("code") or "")
    message = str(error.get("message") or "")
    exception_type, text = None, message
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            parts = detail["message"].split("|", 2)
            if len(parts) == 3:
                exception_type, text = parts[1], parts[2].strip()
            else:
                text = detail["message"].strip()
            break

    inner = error.get("innererror")
    if exception_type is None and isinstance(inner, dict) and isinstance(inner.get("type"), str):
        exception_type = inner["type"]
    return ExchangeError(code=code, message=message, exception_type=exception_type, text=text or message or code)


def error_for(response: httpx.Response, *, tenant: str, cmdlet: str) -> MicrosoftApiError:
    """Return the tenanttls error for a failed InvokeCommand response.

    Only ManagementObjectNotFoundException is reported as `NotFound`; a 404 without it,
    a 5xx or a body that is not Exchange's error shape never is.
    """
    context = context_of(response, tenant, cmdlet)
    status = response.status_code
    parsed = parse_error(try_json_object(response))
    detail = f": {parsed.text}" if parsed else f" ({body_snippet(response)})"

    if status == 401:
        diagnostics = response.headers.get("x-ms-diagnostics")
        if parsed is None and diagnostics:  # Exchange explains a rejected token in this header
            detail = f" ({diagnostics[:200]})"
        if _CONSENT_TEXT.search(response.text + response.headers.get("WWW-Authenticate", "")):
            return ConsentRequired(
                with_next_step(
                    f"Exchange rejected the app's token for tenant {tenant}{detail}",
                    "ask the tenant's admin to grant admin consent again",
                ),
                **context,
            )
        return CredentialError(
            with_next_step(
                f"Exchange rejected a newly issued token for tenant {tenant} ({cmdlet}){detail}",
                "check the app's certificate and that the app has the Exchange.ManageAsApp permission",
            ),
            **context,
        )
    if status == 403:
        return _permission_denied(tenant, cmdlet, parsed, response, context)
    if parsed and parsed.exception_type and parsed.exception_type.endswith(NOT_FOUND_EXCEPTION):
        return NotFound(f"{cmdlet} for tenant {tenant}: {parsed.text}", **context)
    if status >= 500:
        return MicrosoftServiceError(f"Exchange failed {cmdlet} for tenant {tenant} with HTTP {status}{detail}", **context)
    if parsed is None:
        return UnexpectedResponse(
            f"Exchange returned HTTP {status} for {cmdlet} in tenant {tenant} without an error object"
            f"{detail}; check exchange_url",
            **context,
        )
    return InvalidRequest(f"Exchange rejected {cmdlet} for tenant {tenant}: {parsed.text}", **context)


def _permission_denied(
    tenant: str, cmdlet: str, parsed: ExchangeError | None, response: httpx.Response, context: dict[str, Any]
) -> PermissionDenied:
    """Return the error for a 403, which means a missing role, or a cmdlet the session does not offer."""
    role_fix = "assign the app the Exchange Administrator role in the tenant"
    if parsed is not None:
        message = f"Exchange denied {cmdlet} for tenant {tenant}: {parsed.text}"
        return PermissionDenied(with_next_step(message, role_fix), **context)
    # One client of the admin API reports 403 with an empty body for an unknown cmdlet, and the
    # simulator does the same. A missing role may look alike, so the message names both causes.
    return PermissionDenied(
        f"Exchange denied {cmdlet} for tenant {tenant} with HTTP 403 and {body_snippet(response)}. Either "
        f"Exchange does not offer the cmdlet {cmdlet}, or the app lacks the role to run it. Check the cmdlet "
        f"name, or {role_fix}",
        **context,
    )
