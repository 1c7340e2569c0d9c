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

# The app is not known in the tenant, or the tenant's admin has not consented (yet).
CONSENT_CODES = frozenset(
    {
        700016,  # application not found in the directory (not consented in this tenant)
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


def error_codes(result: Mapping[str, Any]) -> set[int]:
    """Return the AADSTS codes of an Entra error, from ``error_codes`` and the description."""
    codes = {code for code in result.get("error_codes") or [] if isinstance(code, int)}
    codes.update(int(code) for code in _AADSTS.findall(str(result.get("error_description") or "")))
    return codes


def error_for_result(result: Mapping[str, Any], *, tenant: str, scope: str) -> MicrosoftApiError:
    """Return the tenanttls error for a failed MSAL token result."""
    error = str(result.get("error") or "unknown_error")
    lines = str(result.get("error_description") or "").splitlines()
    description = lines[0] if lines else ""
    codes = error_codes(result)
    context = {"tenant": tenant, "operation": f"token {scope}", "correlation_id": result.get("correlation_id")}
    detail = f"{error}: {description}" if description else error

    if codes & TENANT_NOT_FOUND_CODES or error == "invalid_tenant":
        return NotFound(f"tenant {tenant} was not found by Microsoft Entra ID ({detail}); check the tenant id", **context)
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
        **context,
    )


def _credential_error(tenant: str, detail: str, context: dict[str, Any]) -> CredentialError:
    return CredentialError(
        f"Microsoft Entra ID rejected the app's credential for tenant {tenant} ({detail}); check the client id, "
        "certificate and key in the configuration",
        **context,
    )
