"""Verification of the certificate client assertion that a confidential client sends to the token endpoint.

The assertion is a JWT (RFC 7523) signed with the app's private key. Its header names the
certificate by thumbprint: ``x5t`` (base64url SHA-1, what MSAL sends when given a
thumbprint) or ``x5t#S256`` (base64url SHA-256, what MSAL sends when given the public
certificate). Claims: ``aud`` the token endpoint URL, ``iss`` and ``sub`` the client id,
``exp``/``nbf``. Failures carry the AADSTS code Entra ID uses for the same failure.

Times are checked against wall time, not the simulator's clock, because MSAL stamps the
assertion with the time of the machine it runs on.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import jwt
from cryptography import x509

from tenanttls.simulator.tenants import parse_iso

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class TokenRequestError(Exception):
    """A token request failed: HTTP `status`, OAuth `error`, AADSTS `code` and its text."""

    status: int
    error: str
    code: int
    text: str


def _invalid_client(code: int, text: str) -> TokenRequestError:
    return TokenRequestError(401, "invalid_client", code, text)


def _thumbprint(header: dict[str, Any]) -> tuple[str, str]:
    """Return ("sha256" or "sha1", upper-case hex thumbprint) from the assertion header."""
    for key, kind in (("x5t#S256", "sha256"), ("x5t", "sha1")):
        value = header.get(key)
        if isinstance(value, str) and value:
            try:
                raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except (binascii.Error, ValueError) as error:
                raise _invalid_client(50027, "JWT token is invalid or malformed.") from error
            return kind, raw.hex().upper()

    raise _invalid_client(50027, "Invalid JWT token. No certificate thumbprint specified in token header.")


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def verify_client_assertion(
    assertion: str,
    *,
    app: dict[str, Any],
    client_id: str,
    audience_matches: Callable[[str], bool],
) -> None:
    """Raise `TokenRequestError` unless `assertion` is a valid, current assertion of `client_id` for this endpoint."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError as error:
        raise _invalid_client(50027, "JWT token is invalid or malformed.") from error

    kind, thumbprint = _thumbprint(header)
    registered = next((item for item in app["certificates"] if item[kind] == thumbprint), None)
    if registered is None:
        raise _invalid_client(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application. "
            f"[Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', "
            f"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]",
        )

    now = datetime.now(timezone.utc)
    found = f"Found key 'Start={registered['not_before']}, End={registered['not_after']}'"
    if not parse_iso(registered["not_before"]) <= now <= parse_iso(registered["not_after"]):
        raise _invalid_client(
            700027,
            f"Client assertion contains an invalid signature. [Reason - The key used is expired., "
            f"Thumbprint of key used by client: '{thumbprint}', {found}]",
        )

    certificate = x509.load_pem_x509_certificate(registered["pem"].encode("ascii"))
    claims = _decode(assertion, certificate, thumbprint, found)
    _check_claims(claims, client_id=client_id, audience_matches=audience_matches, now=now)


def _decode(assertion: str, certificate: x509.Certificate, thumbprint: str, found: str) -> dict[str, Any]:
    try:
        return jwt.decode(
            assertion,
            certificate.public_key(),  # type: ignore[arg-type]
            algorithms=ALGORITHMS,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError, TypeError, ValueError) as error:
        raise _invalid_client(
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature value did not match "
            f"the expected signature value., Thumbprint of key used by client: '{thumbprint}', {found}]",
        ) from error
    except jwt.InvalidTokenError as error:
        raise _invalid_client(50027, "JWT token is invalid or malformed.") from error


def _check_claims(claims: dict[str, Any], *, client_id: str, audience_matches: Callable[[str], bool], now: datetime) -> None:
    if str(claims.get("iss", "")).lower() != client_id or str(claims.get("sub", "")).lower() != client_id:
        raise _invalid_client(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")

    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if not any(isinstance(audience, str) and audience_matches(audience) for audience in audiences):
        raise _invalid_client(700023, "Client assertion audience claim does not match Realm issuer.")

    try:
        expires = datetime.fromtimestamp(float(claims["exp"]), timezone.utc)
        not_before = datetime.fromtimestamp(float(claims.get("nbf", 0)), timezone.utc)
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise _invalid_client(50027, "JWT token is invalid or malformed. The 'exp' claim is missing or invalid.") from error

    if now > expires + CLOCK_SKEW or now < not_before - CLOCK_SKEW:
        raise _invalid_client(
            700024,
            f"Client assertion is not within its valid time range. Current time: {_format_time(now)}, "
            f"assertion valid from {_format_time(not_before)}, expiry time of assertion {_format_time(expires)}.",
        )
