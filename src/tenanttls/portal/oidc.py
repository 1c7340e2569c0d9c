"""The portal as an OpenID Connect relying party of the Microsoft identity platform.

The portal signs users in with the authorization-code flow (OpenID Connect Core 1.0,
section 3.1). It sends the browser to ``{login_url}/{tenant}/oauth2/v2.0/authorize`` with
a random ``state`` and ``nonce`` kept in the session, and redeems the returned code at the
token endpoint as a confidential client. It accepts the ID token only when its RS256
signature matches a key of the identity platform's JWKS and ``iss``, ``aud``, ``nonce``,
``exp`` and ``nbf`` are right. ``iss`` is checked against the ``tid`` claim, the rule for
multi-tenant apps that sign in through ``organizations``.
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Protocol
from urllib.parse import urlencode

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tenanttls.clock import Clock
from tenanttls.domain.names import is_guid
from tenanttls.errors import ConfigurationError, TenantTlsError

logger = logging.getLogger(__name__)

# Allowed difference between the identity platform's clock and ours.
CLOCK_SKEW = timedelta(minutes=5)

# Microsoft Entra directory role template ids (Microsoft Entra built-in roles reference).
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"

# Roles whose holders may start, roll back or hand the upgrade to support.
ACTING_ROLES = frozenset({GLOBAL_ADMINISTRATOR, EXCHANGE_ADMINISTRATOR})
# Roles that may grant tenant-wide admin consent to application permissions.
CONSENTING_ROLES = frozenset({GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR})

ROLE_NAMES = {
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    PRIVILEGED_ROLE_ADMINISTRATOR: "Privileged Role Administrator",
    EXCHANGE_ADMINISTRATOR: "Exchange Administrator",
}


class SignInFailed(TenantTlsError):
    """The sign-in could not be completed; the message is safe to show to the user."""

    exit_code = 11


@dataclass(frozen=True)
class Principal:
    """The signed-in user, as the session keeps it.

    `kind` is ``"tenant"`` for a customer's user and ``"operator"`` for provider staff.
    `wids` are directory role template ids; `roles` are app roles.
    """

    kind: str
    tenant_id: str
    oid: str
    upn: str
    name: str
    wids: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    signed_in_at: float = 0.0

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def can_act(self) -> bool:
        """True for a tenant admin who may start, roll back or request the manual upgrade."""
        return self.kind == "tenant" and bool(ACTING_ROLES.intersection(self.wids))

    @property
    def can_consent(self) -> bool:
        """True for a tenant admin who may grant admin consent to the provider's app."""
        return self.kind == "tenant" and bool(CONSENTING_ROLES.intersection(self.wids))

    @property
    def role_names(self) -> list[str]:
        """The names of the user's directory roles that this portal recognises, for display."""
        return [ROLE_NAMES[wid] for wid in self.wids if wid in ROLE_NAMES]

    @property
    def actor(self) -> str:
        """The name recorded in audit events: kind, UPN and object id."""
        return f"{self.kind}:{self.upn} ({self.oid})"

    def to_session(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tid": self.tenant_id,
            "oid": self.oid,
            "upn": self.upn,
            "name": self.name,
            "wids": list(self.wids),
            "roles": list(self.roles),
            "at": self.signed_in_at,
        }

    @classmethod
    def from_session(cls, data: Mapping[str, Any]) -> "Principal":
        return cls(
            kind=str(data["kind"]),
            tenant_id=str(data["tid"]),
            oid=str(data["oid"]),
            upn=str(data.get("upn", "")),
            name=str(data.get("name", "")),
            wids=tuple(data.get("wids") or ()),
            roles=tuple(data.get("roles") or ()),
            signed_in_at=float(data.get("at") or 0.0),
        )


class ClientCredential(Protocol):
    """The portal's client authentication at the token endpoint."""

    def token_request_fields(self, token_endpoint: str) -> dict[str, str]:
        """Return the form fields that authenticate the client for one token request."""
        ...


class CertificateCredential:
    """A certificate credential: a client assertion (RFC 7523) signed with the app's key.

    The assertion has the form MSAL Python 1.39 sends for a certificate: signed PS256,
    with the certificate's SHA-256 thumbprint in ``x5t#S256`` and the certificate in
    ``x5c``, so the token endpoint can find the registered certificate.
    """

    ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    def __init__(self, client_id: str, certificate_pem: bytes, private_key_pem: bytes) -> None:
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        except ValueError as error:
            raise ConfigurationError(f"the app's certificate or private key is not valid PEM: {error}") from error

        self._client_id = client_id
        self._headers = {
            "x5t#S256": _b64url(certificate.fingerprint(hashes.SHA256())),
            "x5c": [base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()],
        }

    def token_request_fields(self, token_endpoint: str) -> dict[str, str]:
        # Wall time, not the injected clock: the token endpoint checks the assertion's
        # lifetime against its own real time, as MSAL's assertions are.
        now = int(time.time())
        claims = {
            "aud": token_endpoint,
            "iss": self._client_id,
            "sub": self._client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        }
        assertion = jwt.encode(claims, self._key, algorithm="PS256", headers=self._headers)
        return {"client_assertion_type": self.ASSERTION_TYPE, "client_assertion": assertion}


class SecretCredential:
    """A client secret, sent as ``client_secret`` in the token request body."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "SecretCredential(<hidden>)"

    def token_request_fields(self, token_endpoint: str) -> dict[str, str]:
        return {"client_secret": self._secret}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcClient:
    """Build authorization URLs, redeem codes and validate ID tokens for one app registration."""

    def __init__(
        self,
        *,
        login_url: str,
        client_id: str,
        credential: ClientCredential,
        http: httpx.Client,
        clock: Clock,
    ) -> None:
        self.login_url = login_url.rstrip("/")
        self.client_id = client_id
        self._credential = credential
        self._http = http
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._keys_lock = threading.Lock()

    def authorization_url(self, tenant_segment: str, *, redirect_uri: str, state: str, nonce: str) -> str:
        """Return the URL that starts the sign-in of a user of `tenant_segment`."""
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "response_mode": "query",
                "scope": "openid profile",
                "state": state,
                "nonce": nonce,
            }
        )
        return f"{self.login_url}/{tenant_segment}/oauth2/v2.0/authorize?{query}"

    def redeem_code(self, tenant_segment: str, code: str, redirect_uri: str) -> str:
        """Redeem `code` at the token endpoint and return the raw ID token.

        Raises `SignInFailed` with the identity platform's error text when it refuses.
        """
        endpoint = f"{self.login_url}/{tenant_segment}/oauth2/v2.0/token"
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            **self._credential.token_request_fields(endpoint),
        }
        try:
            response = self._http.post(endpoint, data=form)
        except httpx.HTTPError as error:
            raise SignInFailed(f"the identity platform at {self.login_url} could not be reached: {error}") from error

        body = _json_or_empty(response)
        if response.status_code != 200 or "id_token" not in body:
            description = str(body.get("error_description") or body.get("error") or f"HTTP {response.status_code}")
            logger.warning("sign-in code redemption failed: status=%s error=%s", response.status_code, body.get("error"))
            raise SignInFailed(f"the identity platform rejected the sign-in: {description.splitlines()[0]}")
        return str(body["id_token"])

    def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """Return the claims of `id_token` after checking signature, issuer, audience, nonce and time.

        Raises `SignInFailed` naming the check that failed.
        """
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as error:
            raise SignInFailed(f"the ID token is malformed: {error}") from error
        if header.get("alg") != "RS256":
            raise SignInFailed(f"the ID token is signed with {header.get('alg')!r}; only RS256 is accepted")

        key = self._signing_key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                id_token,
                key=key,
                algorithms=["RS256"],
                audience=self.client_id,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "require": ["iss", "tid", "oid", "exp"]},
            )
        except jwt.PyJWTError as error:
            raise SignInFailed(f"the ID token was rejected: {error}") from error

        self._check_claims(claims, nonce)
        return claims

    def _check_claims(self, claims: Mapping[str, Any], nonce: str) -> None:
        tenant_id = str(claims.get("tid", ""))
        if not is_guid(tenant_id):
            raise SignInFailed(f"the ID token's tid {tenant_id!r} is not a tenant id")
        expected_issuer = f"{self.login_url}/{tenant_id}/v2.0"
        if claims.get("iss") != expected_issuer:
            raise SignInFailed(f"the ID token's issuer {claims.get('iss')!r} is not {expected_issuer!r}")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SignInFailed("the ID token's nonce does not match this sign-in; start the sign-in again")

        now = self._clock.now().timestamp()
        skew = CLOCK_SKEW.total_seconds()
        if float(claims["exp"]) < now - skew:
            raise SignInFailed("the ID token has expired; start the sign-in again")
        if float(claims.get("nbf", 0)) > now + skew:
            raise SignInFailed("the ID token is not valid yet; check the server's clock")

    def _signing_key(self, kid: str) -> Any:
        with self._keys_lock:
            if kid not in self._keys:
                self._keys = self._fetch_keys()
            key = self._keys.get(kid)
        if key is None:
            raise SignInFailed(f"the ID token's signing key {kid!r} is not in the identity platform's key set")
        return key

    def _fetch_keys(self) -> dict[str, Any]:
        url = f"{self.login_url}/common/discovery/v2.0/keys"
        try:
            response = self._http.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise SignInFailed(f"the identity platform's signing keys could not be read from {url}: {error}") from error

        keys = {}
        for entry in document.get("keys", []):
            if entry.get("kty") == "RSA" and entry.get("kid"):
                keys[entry["kid"]] = jwt.algorithms.RSAAlgorithm.from_jwk(entry)
        return keys


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

