"""Labels and unique names under the provider's zone.

A label is 26 characters of lower-case base32 (RFC 4648 alphabet, 130 random bits
from `secrets`), so it is DNS-safe, case-insensitive and cannot be derived from the
tenant's domain or id.
"""

from __future__ import annotations

import base64
import re
import secrets

from tenanttls.domain.names import MAX_LABEL_LENGTH, validate_domain_name
from tenanttls.errors import InvalidInput

LABEL_LENGTH = 26

# A DNS label as RFC 1035 allows it in a host name, lower case only.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def new_label() -> str:
    """Return a new random label: 26 lower-case base32 characters."""
    random_bytes = secrets.token_bytes(17)
    return base64.b32encode(random_bytes).decode("ascii").lower()[:LABEL_LENGTH]


def validate_label(label: str) -> str:
    """Return `label` lower-cased after checking it is one DNS label of at most 63 characters."""
    if not isinstance(label, str) or not label:
        raise InvalidInput(f"invalid label {label!r}: expected 1-{MAX_LABEL_LENGTH} letters, digits or hyphens")

    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(
            f"invalid label {label[:20]!r}...: {len(label)} characters, the maximum is {MAX_LABEL_LENGTH}"
        )

    lowered = label.lower()
    if not _LABEL.match(lowered):
        raise InvalidInput(
            f"invalid label {label!r}: use letters, digits or hyphens, not starting or ending with a hyphen"
        )
    return lowered


def unique_name(label: str, zone: str) -> str:
    """Return the unique name ``<label>.<zone>``, lower-cased and checked as a DNS name."""
    label = validate_label(label)
    zone = validate_domain_name(zone, what="provider zone")
    return validate_domain_name(f"{label}.{zone}", what="unique name")
