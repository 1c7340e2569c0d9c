"""TSIG keys (RFC 8945) for signing RFC 2136 updates.

A key is written ``name:algorithm:base64secret``, for example
``tenanttls-update:hmac-sha256:3q2+7w==``. The order of knsupdate's and nsupdate's
``-y`` option, ``algorithm:name:base64secret``, is accepted too, because the
algorithm is always one of the names in `ALGORITHMS`. The key is configured through
a secret reference (``env:NAME`` or ``file:/path``) so the secret never sits in a
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
    def parse(cls, text: str, *, source: str = "TSIG key") -> TsigKey:
        """Parse ``name:algorithm:base64secret`` or ``algorithm:name:base64secret``.

        Raises `ConfigurationError` naming `source` (the setting, and the file or
        variable it came from) and the bad part. The secret is never part of a message.
        """
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise ConfigurationError(
                f"invalid {source}: expected 'name:algorithm:base64secret' (or knsupdate's "
                f"'algorithm:name:base64secret'), got {len(parts)} part(s) separated by ':'"
            )

        name, algorithm = _name_and_algorithm(parts[0], parts[1], source)
        if not name:
            raise ConfigurationError(f"invalid {source}: the key name is empty")
        try:
            secret = base64.b64decode(parts[2], validate=True)
        except binascii.Error as error:
            raise ConfigurationError(f"invalid {source} {name!r}: the secret is not valid base64") from error
        if not secret:
            raise ConfigurationError(f"invalid {source} {name!r}: the secret is empty")

        return cls(name=_key_name(name, source), algorithm=algorithm, secret=secret)

    @classmethod
    def from_reference(cls, reference: str) -> TsigKey:
        """Read the key of the ``dns_tsig_key`` setting from a secret reference (``env:NAME`` or ``file:/path``)."""
        data = resolve_secret(reference, what="dns_tsig_key")
        source = f"dns_tsig_key ({_describe_reference(reference)})"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigurationError(f"invalid {source}: the key is not UTF-8 text") from error
        return cls.parse(text, source=source)

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


def _name_and_algorithm(first: str, second: str, source: str) -> tuple[str, str]:
    """Return the key name and algorithm from the first two parts, in either order."""
    first_is_algorithm = first.lower() in ALGORITHMS
    second_is_algorithm = second.lower() in ALGORITHMS
    if second_is_algorithm and (not first_is_algorithm or first.lower() == second.lower()):
        return first, second.lower()
    if first_is_algorithm and not second_is_algorithm:
        return second, first.lower()

    known = ", ".join(ALGORITHMS)
    if first_is_algorithm and second_is_algorithm:
        raise ConfigurationError(
            f"invalid {source}: both {first!r} and {second!r} are algorithm names, so the key name is unclear; "
            "rename the key"
        )
    # Parts that do not look like an algorithm are not shown: a misplaced secret could be one of them.
    unknown = [part for part in (first, second) if part.lower().startswith("hmac-")]
    if unknown:
        raise ConfigurationError(f"invalid {source}: unknown algorithm {unknown[0]!r}; use one of {known}")
    raise ConfigurationError(
        f"invalid {source}: neither the first nor the second part is an algorithm; write "
        f"'name:algorithm:base64secret' with the algorithm one of {known}"
    )


def _describe_reference(reference: str) -> str:
    if reference.startswith("file:"):
        return f"file {reference[5:]}"
    return f"environment variable {reference[4:]}"


def _key_name(name: str, source: str = "TSIG key") -> str:
    try:
        return dns.name.from_text(name).to_text(omit_final_dot=True).lower()
    except dns.exception.DNSException as error:
        raise ConfigurationError(f"invalid {source}: key name {name!r} is not a DNS name ({error})") from error
