"""Access tokens: issued by the simulated Entra ID, checked by the simulated Graph and Exchange.

Tokens are RS256 JWTs in the v1.0 form that Graph and Exchange Online receive: `iss` is
``https://sts.windows.net/{tid}/``, `aud` the resource URI, `roles` the application
permissions granted in the tenant and `wids` the Entra role templates assigned to the app.
The signing key and its self-signed certificate live in ``DATA/keys/``. The public part is
served as a JWKS, so clients can check tokens the way they would check Microsoft's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenanttls.clock import Clock

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 3599
# Entra ID and the resources tolerate five minutes of clock difference.
CLOCK_SKEW = timedelta(minutes=5)


def base64url(data: bytes) -> str:
    """Return `data` in unpadded base64url, the JOSE encoding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_to_base64url(value: int) -> str:
    return base64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class TokenRejected(Exception):
    """An access token failed a check.

    `reason` is one of ``missing``, ``malformed``, ``signature``, ``expired``, ``audience``;
    `message` is a readable explanation.
    """

    reason: str
    message: str

    def __str__(self) -> str:
        return self.message


class TokenIssuer:
    """Signs access tokens with the simulator's key and verifies tokens presented to the resources."""

    def __init__(self, key_directory: Path, clock: Clock) -> None:
        self._clock = clock
        self._key, self._certificate = _load_or_create_signing_key(key_directory)
        self.key_id = base64url(self._certificate.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1 by definition

    def jwks(self) -> dict[str, Any]:
        """Return the JSON Web Key Set that lists the signing key, in Entra ID's format."""
        numbers = self._key.public_key().public_numbers()
        der = self._certificate.public_bytes(serialization.Encoding.DER)
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.key_id,
                    "x5t": self.key_id,
                    "n": _uint_to_base64url(numbers.n),
                    "e": _uint_to_base64url(numbers.e),
                    "x5c": [base64.b64encode(der).decode("ascii")],
                }
            ]
        }

    def issue(
        self,
        *,
        tenant_id: str,
        audience: str,
        app_id: str,
        app_display_name: str,
        roles: Iterable[str],
        wids: Iterable[str],
        lifetime: int = DEFAULT_TOKEN_LIFETIME,
    ) -> str:
        """Return a signed app-only access token for `audience` in `tenant_id`, valid for `lifetime` seconds."""
        now = int(self._clock.now().timestamp())
        issuer = f"https://sts.windows.net/{tenant_id}/"
        service_principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{app_id}"))
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "app_displayname": app_display_name,
            "appid": app_id,
            "appidacr": "2",
            "idp": issuer,
            "idtyp": "app",
            "oid": service_principal,
            "sub": service_principal,
            "tid": tenant_id,
            "uti": base64url(os.urandom(16)),
            "ver": "1.0",
            "wids": sorted(set(wids)),
        }
        granted = sorted(set(roles))
        if granted:
            claims["roles"] = granted
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id, "x5t": self.key_id})

    def sign(self, claims: dict[str, Any]) -> str:
        """Return `claims` as a JWT signed with the simulator's key (ID tokens of the user sign-in)."""
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id, "x5t": self.key_id})

    def verify(self, token: str | None, *, audiences: Iterable[str]) -> dict[str, Any]:
        """Return the claims of `token` after checking signature, lifetime and audience.

        Raises `TokenRejected` with the reason. Lifetime is checked against the
        simulator's clock, so advancing the clock expires tokens.
        """
        if not token:
            raise TokenRejected("missing", "Access token is empty.")

        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise TokenRejected("malformed", f"JWT is not well formed: {error}") from error
        if header.get("kid") != self.key_id:
            raise TokenRejected("signature", "Signature key was not found for the token's 'kid'.")

        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False},
            )
        except jwt.InvalidSignatureError as error:
            raise TokenRejected("signature", "Signature validation failed.") from error
        except jwt.InvalidTokenError as error:
            raise TokenRejected("malformed", f"JWT is not well formed: {error}") from error

        self._check_lifetime(claims)
        if claims.get("aud") not in set(audiences):
            raise TokenRejected("audience", f"Invalid audience '{claims.get('aud')}'.")
        return claims

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        now = self._clock.now()
        try:
            expires = datetime.fromtimestamp(float(claims["exp"]), timezone.utc)
            not_before = datetime.fromtimestamp(float(claims.get("nbf", claims["exp"])), timezone.utc)
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise TokenRejected("malformed", "The token has no valid 'exp' or 'nbf' claim.") from error

        if now >= expires + CLOCK_SKEW or now < not_before - CLOCK_SKEW:
            raise TokenRejected("expired", "Lifetime validation failed, the token is expired or not yet valid.")


def _load_or_create_signing_key(directory: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key_path = directory / "token-signing.key"
    certificate_path = directory / "token-signing.pem"
    if key_path.exists() and certificate_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        if isinstance(key, rsa.RSAPrivateKey):
            return key, certificate

    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls simulator token signing")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )

    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    logger.info("simulator tokens: created signing key path=%s", key_path)
    return key, certificate


def certificate_thumbprints(certificate: x509.Certificate) -> tuple[str, str]:
    """Return the SHA-1 and SHA-256 thumbprints of `certificate` in upper-case hex."""
    sha1 = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1 by definition
    sha256 = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return sha1, sha256
