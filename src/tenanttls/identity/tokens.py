"""`TokenProvider`: app-only access tokens for customer tenants, with a certificate credential.

One MSAL `ConfidentialClientApplication` per tenant authority
(``{login_url}/{tenant}``) obtains tokens with the client-credentials grant and a
signed client assertion. Tokens are cached per tenant and scope until shortly before
they expire.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tenanttls.clock import Clock, SystemClock
from tenanttls.domain.names import is_guid, validate_tenant
from tenanttls.errors import (
    ConfigurationError,
    InvalidInput,
    MicrosoftApiError,
    MicrosoftServiceError,
    NotFound,
    UnexpectedResponse,
)
from tenanttls.identity.consent import ConsentResult, build_admin_consent_url, parse_consent_callback
from tenanttls.identity.errors import error_for_result
from tenanttls.transport.network import (
    describe_network_error,
    find_ssl_error,
    origin_of,
    require_https,
    tls_configuration_error,
)

logger = logging.getLogger(__name__)

LOGIN_URL = "https://login.microsoftonline.com"
# Hosts of Microsoft's public and national clouds, where MSAL's instance discovery works.
MICROSOFT_LOGIN_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn", "login.microsoft.com"}
)
# A token is renewed this long before it expires, so that it does not expire in flight.
REFRESH_MARGIN = timedelta(minutes=5)
_SHA1_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")


@dataclass
class _CachedToken:
    token: str
    expires_at: datetime


def _pem_text(value: str | bytes, label: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigurationError(f"the app's {label} is not PEM text") from None
    return value


def _load_key(private_key_pem: str | bytes) -> Any:
    try:
        return serialization.load_pem_private_key(_pem_text(private_key_pem, "private key").encode(), password=None)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(
            "the app's private key is not an unencrypted PEM private key; check the client_key setting"
        ) from error


def _client_credential(private_key_pem: str | bytes, certificate_pem_or_thumbprint: str | bytes) -> dict[str, Any]:
    """Return MSAL's certificate credential, after checking that key and certificate belong together.

    With a certificate, MSAL signs with PS256 and names the certificate by its SHA-256
    thumbprint. With only a thumbprint, which MSAL takes as SHA-1, it signs with RS256.
    The credential carries the loaded key object rather than the PEM text. MSAL 1.39
    hands an unencrypted ``private_key`` unchanged to PyJWT, which signs with a key
    object as it is but parses PEM text again for every client assertion.
    """
    key = _load_key(private_key_pem)
    value = _pem_text(certificate_pem_or_thumbprint, "certificate")

    if "-----BEGIN CERTIFICATE-----" in value:
        try:
            certificate = x509.load_pem_x509_certificate(value.encode())
        except ValueError as error:
            raise ConfigurationError("the app's certificate is not a valid PEM certificate") from error
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if certificate.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(encoding, public):
            raise ConfigurationError(
                "the app's certificate does not match its private key; configure the certificate that was "
                "made for this key"
            )
        return {"private_key": key, "public_certificate": value}

    thumbprint = value.replace(":", "").replace(" ", "").strip()
    if not _SHA1_THUMBPRINT.match(thumbprint):
        raise ConfigurationError(
            "the app's certificate setting is neither a PEM certificate nor a SHA-1 thumbprint of 40 hex digits"
        )
    return {"private_key": key, "thumbprint": thumbprint.upper()}


def _http_session(verify: bool | str | Path | ssl.SSLContext, timeout: float) -> requests.Session:
    """Return the requests session that every MSAL application of the provider shares.

    `verify` and `timeout` are bound to each request. A session-level `verify` would lose
    to the REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE environment variables, which requests
    prefers over it. With a CA path bound to the request, they no longer apply.
    """
    if isinstance(verify, ssl.SSLContext):
        raise ConfigurationError("the token provider takes a CA bundle path or True/False, not an ssl.SSLContext")
    if isinstance(verify, (str, Path)) and not Path(verify).is_file():
        raise ConfigurationError(f"CA bundle not found: {verify}; give the path of a PEM file or use the system store")
    session = requests.Session()
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, verify=str(verify) if isinstance(verify, Path) else verify, timeout=timeout
    )
    return session


class TokenProvider:
    """App-only tokens for many tenants from one app registration. Thread-safe.

    `certificate_pem_or_thumbprint` is the app's certificate (PEM), or its SHA-1
    thumbprint. `verify` is True, False or the path of a CA bundle (the simulator's
    ``ca.pem``). `clock` decides when a cached token counts as expired.
    """

    def __init__(
        self,
        client_id: str,
        private_key_pem: str | bytes,
        certificate_pem_or_thumbprint: str | bytes,
        *,
        login_url: str = LOGIN_URL,
        verify: bool | str | Path = True,
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        if not isinstance(client_id, str) or not is_guid(client_id.strip().lower()):
            raise ConfigurationError(f"invalid client id {client_id!r}: expected the app registration's GUID")
        self.client_id = client_id.strip().lower()
        self.login_url = require_https("login_url", login_url)
        self._credential = _client_credential(private_key_pem, certificate_pem_or_thumbprint)
        self._session = _http_session(verify, timeout)
        self._clock = clock or SystemClock()
        self._instance_discovery = urlsplit(self.login_url).hostname in MICROSOFT_LOGIN_HOSTS

        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._app_locks: dict[str, threading.Lock] = {}
        self._acquire_locks: dict[tuple[str, str], threading.Lock] = {}
        self._tokens: dict[tuple[str, str], _CachedToken] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP session that the MSAL applications share."""
        self._session.close()

    def __repr__(self) -> str:
        return f"TokenProvider(client_id={self.client_id!r}, login_url={self.login_url!r})"

    def get_token(self, tenant: str, scope: str) -> str:
        """Return an access token for `scope` (such as ``https://graph.microsoft.com/.default``) in `tenant`.

        Raises:
            InvalidInput: `tenant` is neither a GUID nor an ``.onmicrosoft.com`` name.
            ConsentRequired: the tenant's admin has not consented, or not long enough ago.
            CredentialError: Entra rejected the app's certificate or client id.
            NotFound: the tenant does not exist.
            MicrosoftServiceError: Entra or the network failed.
        """
        tenant = validate_tenant(tenant)
        scope = self._validate_scope(scope)
        key = (tenant, scope)
        token = self._cached(key)
        if token is not None:
            return token

        # One request per tenant and scope at a time, so that threads starting together
        # share one token instead of each asking Entra for its own.
        with self._lock:
            acquiring = self._acquire_locks.setdefault(key, threading.Lock())
        with acquiring:
            token = self._cached(key)
            return token if token is not None else self._new_token(tenant, scope)

    def _cached(self, key: tuple[str, str]) -> str | None:
        """Return the cached token for `key` while it is valid for another `REFRESH_MARGIN`; drop it otherwise."""
        with self._lock:
            cached = self._tokens.get(key)
        if cached is None:
            return None
        if self._clock.now() < cached.expires_at - REFRESH_MARGIN:
            return cached.token
        self.invalidate(*key)
        return None

    def _new_token(self, tenant: str, scope: str) -> str:
        app = self._app(tenant)
        result = self._acquire(app, tenant, scope)
        expires_in = float(result.get("expires_in") or 0)
        token = str(result["access_token"])

        with self._lock:
            self._tokens[(tenant, scope)] = _CachedToken(token, self._clock.now() + timedelta(seconds=expires_in))
        logger.debug("token obtained: tenant=%s scope=%s expires_in=%ds", tenant, scope, expires_in)
        return token

    def invalidate(self, tenant: str, scope: str) -> None:
        """Drop the cached token for `scope` in `tenant`, here and in MSAL's cache."""
        tenant = validate_tenant(tenant)
        with self._lock:
            self._tokens.pop((tenant, scope), None)
            app = self._apps.get(tenant)
        if app is None:
            return

        cache = app.token_cache
        for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN, target=[scope])):
            cache.remove_at(entry)

    def admin_consent_url(self, tenant: str, redirect_uri: str, state: str) -> str:
        """Return the URL where `tenant`'s admin grants this app admin consent (``organizations`` if unknown)."""
        return build_admin_consent_url(self.login_url, self.client_id, tenant, redirect_uri, state)

    @staticmethod
    def parse_consent_callback(params: Mapping[str, str], expected_state: str) -> ConsentResult:
        """Return the outcome of an admin-consent redirect; see `tenanttls.identity.consent`."""
        return parse_consent_callback(params, expected_state)

    @staticmethod
    def _validate_scope(scope: str) -> str:
        if not isinstance(scope, str) or not scope.startswith("https://") or not scope.endswith("/.default"):
            raise InvalidInput(
                f"invalid scope {scope!r}: app-only tokens need '<resource>/.default', such as "
                "'https://graph.microsoft.com/.default'"
            )
        return scope

    def _app(self, tenant: str) -> msal.ConfidentialClientApplication:
        """Return the MSAL application for `tenant`, creating it once; creation fetches the OIDC metadata."""
        with self._lock:
            app = self._apps.get(tenant)
            if app is not None:
                return app
            creating = self._app_locks.setdefault(tenant, threading.Lock())

        with creating:
            with self._lock:
                if tenant in self._apps:
                    return self._apps[tenant]
            app = self._create_app(tenant)
            with self._lock:
                self._apps[tenant] = app
            return app

    def _create_app(self, tenant: str) -> msal.ConfidentialClientApplication:
        authority = f"{self.login_url}/{tenant}"
        try:
            return msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self._credential,
                authority=authority,
                token_cache=msal.TokenCache(),
                http_client=self._session,
                instance_discovery=self._instance_discovery,
            )
        except ValueError as error:  # MSAL's OIDC discovery failed with a 4xx or invalid JSON
            raise self._discovery_error(tenant, authority, error) from error
        except requests.exceptions.RequestException as error:
            raise self._network_error(tenant, "fetching the OIDC metadata", error) from error

    def _acquire(self, app: msal.ConfidentialClientApplication, tenant: str, scope: str) -> dict[str, Any]:
        try:
            result = app.acquire_token_for_client(scopes=[scope])
        except requests.exceptions.RequestException as error:
            raise self._network_error(tenant, "requesting a token", error) from error
        except ValueError as error:  # the token endpoint's body was not JSON
            raise UnexpectedResponse(
                f"Microsoft Entra ID returned a token response that is not JSON for tenant {tenant}; "
                "check login_url",
                tenant=tenant,
                operation=f"token {scope}",
            ) from error

        if not result or "access_token" not in result:
            # MSAL 1.39 caches a 400 response for 60 s and would return it even after the
            # admin has consented. A new application sends the next request to Entra again.
            self._drop_app(tenant)
            error = error_for_result(result or {}, tenant=tenant, scope=scope, client_id=self.client_id)
            # DEBUG only: the error is raised, and the caller decides whether it is a failure.
            logger.debug(
                "token request failed: tenant=%s scope=%s error_type=%s correlation_id=%s message=%s",
                tenant,
                scope,
                type(error).__name__,
                error.correlation_id,
                error,
            )
            raise error
        return result

    def _drop_app(self, tenant: str) -> None:
        with self._lock:
            self._apps.pop(tenant, None)
            for key in [key for key in self._tokens if key[0] == tenant]:
                del self._tokens[key]

    @staticmethod
    def _discovery_error(tenant: str, authority: str, error: ValueError) -> MicrosoftApiError:
        """Map an MSAL discovery failure; Entra's own text is in the chained exception."""
        text = f"{error} {error.__context__ or ''}"
        if "AADSTS90002" in text or "invalid_tenant" in text:
            return NotFound(
                f"tenant {tenant} was not found by Microsoft Entra ID; check the tenant id",
                tenant=tenant,
                operation="OIDC discovery",
            )
        return UnexpectedResponse(
            f"the OIDC metadata of {authority} could not be read ({str(error.__context__ or error)[:200]}); "
            "check login_url",
            tenant=tenant,
            operation="OIDC discovery",
        )

    def _network_error(self, tenant: str, step: str, error: requests.exceptions.RequestException) -> Exception:
        """Map a failed request to Entra: TLS set up wrongly is a `ConfigurationError`, the rest is transient."""
        ssl_error = find_ssl_error(error)
        if ssl_error is not None:
            configuration_error = tls_configuration_error(self.login_url, ssl_error, setting="login_url")
            if configuration_error is not None:
                return configuration_error

        if isinstance(error, requests.exceptions.ConnectTimeout):
            reason = "the connection timed out"
        elif isinstance(error, requests.exceptions.ReadTimeout):
            reason = "timed out waiting for the response"
        else:
            reason = describe_network_error(error)
        return MicrosoftServiceError(
            f"Microsoft Entra ID at {origin_of(self.login_url)} could not be reached while {step} for tenant "
            f"{tenant}: {reason}; retry later",
            tenant=tenant,
            operation="token",
        )
