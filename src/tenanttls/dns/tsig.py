"""TSIG keys (RFC 8945) for signing RFC 2136 updates.

A key is written ``name:algorithm:base64secret``, for example
``tenanttls-update:hmac-sha256:3q2+7w==``, and configured through a secret
reference (``env:NAME`` or ``file:/path``) so the secret never sits in a
settings file.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.tsig

from tenanttls.config import resolve_secret
from tenanttls.errors import ConfigurationError

# The HMAC algorithms of RFC 8945 that dnspython and Knot both implement.
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key: its name, HMAC algorithm and secret. The secret is left out of `repr`."""

    name: str
    algorithm: str
    secret: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> TsigKey:
        """Parse ``name:algorithm:base64secret``; raise `ConfigurationError` naming the bad part."""
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise ConfigurationError(
                "invalid TSIG key: expected 'name:algorithm:base64secret', "
                f"got {len(parts)} part(s) separated by ':'"
            )

        name, algorithm, encoded = parts
        if not name:
            raise ConfigurationError("invalid TSIG key: the key name before the first ':' is empty")
        algorithm = algorithm.lower()
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"invalid TSIG key {name!r}: unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise ConfigurationError(f"invalid TSIG key {name!r}: the secret is not valid base64") from error
        if not secret:
            raise ConfigurationError(f"invalid TSIG key {name!r}: the secret is empty")

        return cls(name=_key_name(name), algorithm=algorithm, secret=secret)

    @classmethod
    def from_reference(cls, reference: str) -> TsigKey:
        """Read the key from a secret reference (``env:NAME`` or ``file:/path``)."""
        return cls.parse(resolve_secret(reference, what="dns_tsig_key").decode("utf-8"))

    @classmethod
    def generate(cls, name: str, algorithm: str = "hmac-sha256") -> TsigKey:
        """Return a new key with a random 32-byte secret."""
        return cls.parse(f"{name}:{algorithm}:{base64.b64encode(secrets.token_bytes(32)).decode()}")

    @property
    def secret_base64(self) -> str:
        """The secret in base64, as server configuration files (Knot, BIND) expect it."""
        return base64.b64encode(self.secret).decode("ascii")

    def to_text(self) -> str:
        """Return the key as ``name:algorithm:base64secret``, secret included."""
        return f"{self.name}:{self.algorithm}:{self.secret_base64}"

    def to_dnspython(self) -> dns.tsig.Key:
        """Return the key as dnspython uses it for signing and checking messages."""
        return dns.tsig.Key(dns.name.from_text(self.name), self.secret, ALGORITHMS[self.algorithm])


def _key_name(name: str) -> str:
    try:
        return dns.name.from_text(name).to_text(omit_final_dot=True).lower()
    except dns.exception.DNSException as error:
        raise ConfigurationError(f"invalid TSIG key name {name!r}: {error}") from error
