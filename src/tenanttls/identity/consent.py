"""The admin-consent URL that a customer's admin opens, and the parser of its callback.

A multi-tenant app gets into a customer tenant when that tenant's admin opens
``{login}/{tenant}/adminconsent?client_id=...&redirect_uri=...&state=...`` and accepts.
Microsoft then redirects the browser to `redirect_uri` with ``admin_consent=True``,
``tenant`` and ``state``, or with ``error`` and ``error_description`` when the admin
declined or the request was invalid.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Mapping, Sequence
from urllib.parse import urlencode, urlsplit

from tenanttls.domain.names import is_guid, validate_tenant, validate_tenant_id
from tenanttls.errors import InvalidInput

# Entra ID limits a redirect URI to 256 characters
# (learn.microsoft.com/entra/identity-platform/reply-url).
MAX_REDIRECT_URI_LENGTH = 256
# NOTE: Entra documents no limit for `state`; 1024 characters is an estimate that keeps the
# consent URL well below the 8 KB that common web servers accept in a request line.
MAX_STATE_LENGTH = 1024
# Tenant-independent authorities: the admin signs in and the callback names the tenant.
MULTI_TENANT_AUTHORITIES = ("organizations", "common")


@dataclass(frozen=True)
class ConsentResult:
    """The outcome of an admin-consent redirect.

    `tenant_id` is the GUID of the tenant whose admin responded, when Microsoft sent it.
    `granted` is True only for ``admin_consent=True`` without an error.
    """

    tenant_id: str | None
    granted: bool
    error: str | None = None
    error_description: str | None = None


def _validate_redirect_uri(redirect_uri: str) -> str:
    """Return `redirect_uri` after checking Entra ID would accept it as a redirect URI."""
    if not isinstance(redirect_uri, str) or not redirect_uri:
        raise InvalidInput(f"invalid redirect URI {redirect_uri!r}: give the portal's consent callback URL")
    if len(redirect_uri) > MAX_REDIRECT_URI_LENGTH:
        raise InvalidInput(
            f"invalid redirect URI {redirect_uri[:60]!r}...: {len(redirect_uri)} characters, the maximum is "
            f"{MAX_REDIRECT_URI_LENGTH}"
        )

    parts = urlsplit(redirect_uri)
    local = parts.hostname in ("localhost", "127.0.0.1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise InvalidInput(
            f"invalid redirect URI {redirect_uri!r}: Entra ID requires https (http only for localhost)"
        )
    if not parts.hostname or parts.fragment:
        raise InvalidInput(f"invalid redirect URI {redirect_uri!r}: expected an absolute URL without a #fragment")
    return redirect_uri


def _validate_state(state: str) -> str:
    if not isinstance(state, str) or not state:
        raise InvalidInput("invalid consent state: it must not be empty; generate a random value per request")
    if len(state) > MAX_STATE_LENGTH:
        raise InvalidInput(f"invalid consent state: {len(state)} characters, the maximum is {MAX_STATE_LENGTH}")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in state):
        raise InvalidInput("invalid consent state: it contains spaces or control characters")
    return state


def build_admin_consent_url(login_url: str, client_id: str, tenant: str, redirect_uri: str, state: str) -> str:
    """Return the URL where `tenant`'s admin grants the app admin consent.

    `tenant` is a GUID, an ``.onmicrosoft.com`` name, or ``organizations`` when the
    tenant is not known yet. `state` comes back unchanged in the callback and must be
    checked there (`parse_consent_callback`) against cross-site request forgery.
    """
    if not isinstance(client_id, str) or not is_guid(client_id.strip().lower()):
        raise InvalidInput(f"invalid client id {client_id!r}: expected the app registration's GUID")
    if tenant not in MULTI_TENANT_AUTHORITIES:
        tenant = validate_tenant(tenant)
    query = urlencode(
        {"client_id": client_id, "redirect_uri": _validate_redirect_uri(redirect_uri), "state": _validate_state(state)}
    )
    return f"{login_url.rstrip('/')}/{tenant}/adminconsent?{query}"


def parse_consent_callback(params: Mapping[str, str | Sequence[str]], expected_state: str) -> ConsentResult:
    """Return the outcome of an admin-consent redirect from its query parameters.

    Each value is a str, or a list of one str as ``urllib.parse.parse_qs`` returns it.
    Raises `InvalidInput` when `state` is missing or differs from `expected_state`, because
    then the redirect did not come from the consent request this portal session made.
    Also raises it when ``tenant`` is present but not a GUID, and when a parameter has
    several values or is not a str.
    """
    state = _parameter(params, "state")
    if not expected_state or state is None or not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise InvalidInput(
            "consent callback rejected: its state does not match the consent request; start the consent again"
        )

    tenant = _parameter(params, "tenant")
    tenant_id = validate_tenant_id(tenant) if tenant else None
    error = _parameter(params, "error") or None
    if error:
        return ConsentResult(tenant_id, False, error, _parameter(params, "error_description") or None)

    if tenant_id is None:
        raise InvalidInput("consent callback rejected: it has neither a tenant nor an error; start the consent again")
    granted = (_parameter(params, "admin_consent") or "").lower() == "true"
    return ConsentResult(tenant_id, granted)


def _parameter(params: Mapping[str, str | Sequence[str]], name: str) -> str | None:
    """Return the one value of query parameter `name`, or None when it is absent."""
    value = params.get(name)
    if isinstance(value, (list, tuple)):
        if len(value) > 1:
            raise InvalidInput(
                f"consent callback rejected: {name} has {len(value)} values; a redirect from Microsoft has one"
            )
        value = value[0] if value else None
    if value is not None and not isinstance(value, str):
        raise InvalidInput(
            f"consent callback rejected: {name} is a {type(value).__name__}; expected strings, as in the query string"
        )
    return value
