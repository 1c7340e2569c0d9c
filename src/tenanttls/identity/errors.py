"""Mapping Microsoft Entra ID (MSAL) errors to tenanttls errors.

Entra returns ``{"error", "error_description": "AADSTS<code>: ...", "error_codes": [...]}``.
The AADSTS code distinguishes the cases better than the OAuth ``error`` string, so it is
checked first (codes from learn.microsoft.com/entra/identity-platform/reference-error-codes).
Microsoft warns that the codes may change, so the ``error`` string is the fallback.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from tenanttls.errors import (
    ConsentRequired,
    CredentialError,
    InvalidRequest,
    MicrosoftApiError,
    MicrosoftServiceError,
    NotFound,
)

# Application not found in the directory: the tenant has not consented, or the client id is wrong.
APP_NOT_FOUND_CODE = 700016
# The app is not known in the tenant, or the tenant's admin has not consented (yet).
CONSENT_CODES = frozenset(
    {
        APP_NOT_FOUND_CODE,
        65001,  # the user or administrator has not consented to use the application
        7000229,  # the client application is missing a service principal in the tenant
    }
)
# The app's own credential is wrong.
CREDENTIAL_CODES = frozenset(
    {
        700027,  # client assertion failed signature validation (unknown certificate or key)
        7000215,  # invalid client secret
        7000222,  # the client secret has expired
        700024,  # client assertion is not within its valid time range
    }
)
# The tenant does not exist. Reported as NotFound: the tenant is clearly absent.
TENANT_NOT_FOUND_CODES = frozenset({90002})
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})

_AADSTS = re.compile(r"AADSTS(\d+)")
_TRACE_SUFFIX = re.compile(r"\s+Trace ID:")


def error_codes(result: Mapping[str, Any]) -> set[int]:
    """Return the AADSTS codes of an Entra error, from ``error_codes`` and the description."""
    codes = {code for code in result.get("error_codes") or [] if isinstance(code, int)}
    codes.update(int(code) for code in _AADSTS.findall(str(result.get("error_description") or "")))
    return codes


def error_for_result(
    result: Mapping[str, Any], *, tenant: str, scope: str, client_id: str | None = None
) -> MicrosoftApiError:
    """Return the tenanttls error for a failed MSAL token result.

    `client_id` is the app's client id, named in the message when Entra does not know
    the app (AADSTS700016), because a wrong client id causes that as well as missing consent.
    """
    error = str(result.get("error") or "unknown_error")
    lines = str(result.get("error_description") or "").splitlines()
    # Entra appends "Trace ID: ... Correlation ID: ... Timestamp: ..."; the ids are kept on the error instead.
    description = _TRACE_SUFFIX.split(lines[0])[0].strip() if lines else ""
    codes = error_codes(result)
    context = {"tenant": tenant, "operation": f"token {scope}", "correlation_id": result.get("correlation_id")}
    detail = f"{error}: {description}" if description else error

    if codes & TENANT_NOT_FOUND_CODES or error == "invalid_tenant":
        return NotFound(f"tenant {tenant} was not found by Microsoft Entra ID ({detail}); check the tenant id", **context)
    if APP_NOT_FOUND_CODE in codes:
        return _app_not_found(tenant, client_id, detail, context)
    if codes & CONSENT_CODES:
        return _consent_required(tenant, detail, context)
    if codes & CREDENTIAL_CODES:
        return _credential_error(tenant, detail, context)
    if error == "unauthorized_client":
        return _consent_required(tenant, detail, context)
    if error == "invalid_client":
        return _credential_error(tenant, detail, context)
    if error in TRANSIENT_ERRORS:
        return MicrosoftServiceError(f"Microsoft Entra ID failed a token request for tenant {tenant}: {detail}", **context)
    return InvalidRequest(f"Microsoft Entra ID rejected a token request for tenant {tenant}: {detail}", **context)


def _consent_required(tenant: str, detail: str, context: dict[str, Any]) -> ConsentRequired:
    return ConsentRequired(
        f"the app has no admin consent in tenant {tenant}, or it is not effective yet ({detail}); "
        "ask the tenant's admin to consent, then retry after a few minutes",
        detail=detail,
        **context,
    )


def _app_not_found(tenant: str, client_id: str | None, detail: str, context: dict[str, Any]) -> ConsentRequired:
    app = f"the app {client_id}" if client_id else "the app"
    setting = f"client_id {client_id}" if client_id else "client_id"
    return ConsentRequired(
        f"Microsoft Entra ID does not know {app} in tenant {tenant} ({detail}). Either the tenant's admin "
        f"has not consented yet, or client_id is wrong. Check that {setting} is the app registration's "
        "application (client) id, then ask the tenant's admin to consent and retry after a few minutes",
        detail=detail,
        app_unknown=True,
        **context,
    )


def _credential_error(tenant: str, detail: str, context: dict[str, Any]) -> CredentialError:
    return CredentialError(
        f"Microsoft Entra ID rejected the app's credential for tenant {tenant} ({detail}); check the client id, "
        "certificate and key in the configuration",
        **context,
    )
