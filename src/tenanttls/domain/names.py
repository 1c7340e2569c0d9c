"""Validation of tenant ids, domain names and connector names.

Each validator returns the value in canonical form or raises `InvalidInput` with
a message that names the value and describes a valid one.
"""

from __future__ import annotations

import re
import uuid

from tenanttls.errors import InvalidInput

# RFC 1035 limits, relaxed as Microsoft accepts them: labels may start with a digit.
MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# NOTE: Exchange keeps connector names as directory common names. The 64-character limit and
# the rejected characters follow the usual rules for Exchange object names; the exact rule for
# connectors is not documented, so Exchange may still reject a name that passes here.
MAX_CONNECTOR_NAME_LENGTH = 64
_CONNECTOR_NAME_FORBIDDEN = set('\\/:*?"<>|\r\n\t\x00')
# The rejected characters (control characters below 32 are rejected too), and the same in words.
CONNECTOR_NAME_FORBIDDEN = frozenset(_CONNECTOR_NAME_FORBIDDEN)
CONNECTOR_NAME_FORBIDDEN_TEXT = '\\ / : * ? " < > | or a control character'


def _show(value: object, limit: int = 80) -> str:
    """Render `value` for an error message: repr, cut to `limit` characters."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def validate_domain_name(value: str, *, allow_wildcard: bool = False, what: str = "domain name") -> str:
    """Return `value` lower-cased after checking it is a DNS domain name.

    A leading ``*.`` label is accepted only when `allow_wildcard` is true; a ``*``
    anywhere else is rejected, as Exchange does. Trailing dots are removed. A name
    whose last label is all digits (an IPv4 address such as ``1.2.3.4``) is
    rejected, because no top-level domain is numeric.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"invalid {what} {_show(value)}: expected a name like 'contoso.com'")

    name = value.strip().lower().rstrip(".")
    if len(name) > MAX_DOMAIN_LENGTH:
        raise InvalidInput(
            f"invalid {what} {_show(value)}: {len(name)} characters, the maximum is {MAX_DOMAIN_LENGTH}"
        )

    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            raise InvalidInput(f"invalid {what} {_show(value)}: a wildcard is not allowed here; give an exact name")
        labels = labels[1:]

    if len(labels) < 2:
        raise InvalidInput(f"invalid {what} {_show(value)}: expected at least two labels, like 'contoso.com'")

    for label in labels:
        if not label:
            raise InvalidInput(
                f"invalid {what} {_show(value)}: it contains an empty label (two dots in a row, or a leading dot)"
            )
        if not _LABEL.match(label):
            wildcard_rule = " (a '*' is allowed only as the whole first label)" if "*" in label else ""
            raise InvalidInput(
                f"invalid {what} {_show(value)}: label {_show(label)} must be 1-63 letters, digits or "
                f"hyphens, not starting or ending with a hyphen{wildcard_rule}"
            )

    if labels[-1].isdigit():
        raise InvalidInput(
            f"invalid {what} {_show(value)}: the last label {_show(labels[-1])} is all digits, so this is an "
            "IP address, not a domain name; give a name like 'contoso.com'"
        )
    return name


def is_guid(value: str) -> bool:
    """Return True when `value` is a GUID in the 8-4-4-4-12 hex form."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return str(parsed) == value.strip().lower()


def validate_tenant(value: str) -> str:
    """Return a tenant reference: a GUID (lower-cased) or a ``*.onmicrosoft.com`` name.

    These are the two forms that Microsoft's authority URLs and the Exchange admin API accept.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"invalid tenant {_show(value)}: expected a tenant id (GUID) or a name like 'contoso.onmicrosoft.com'"
        )

    text = value.strip()
    if is_guid(text.lower()):
        return text.lower()

    if text.lower().endswith(".onmicrosoft.com"):
        return validate_domain_name(text, what="tenant name")

    raise InvalidInput(
        f"invalid tenant {_show(value)}: expected a tenant id (GUID such as "
        "'72f988bf-86f1-41af-91ab-2d7cd011db47') or a name like 'contoso.onmicrosoft.com'"
    )


def validate_tenant_id(value: str) -> str:
    """Return `value` lower-cased after checking it is a tenant id (GUID)."""
    if isinstance(value, str) and is_guid(value.strip().lower()):
        return value.strip().lower()
    raise InvalidInput(
        f"invalid tenant id {_show(value)}: expected a GUID such as '72f988bf-86f1-41af-91ab-2d7cd011db47'"
    )


def validate_connector_name(value: str) -> str:
    """Return `value` after checking Exchange would accept it as a connector name."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"invalid connector name {_show(value)}: the name must not be empty")

    if value != value.strip():
        raise InvalidInput(f"invalid connector name {_show(value)}: remove the leading or trailing spaces")

    if len(value) > MAX_CONNECTOR_NAME_LENGTH:
        raise InvalidInput(
            f"invalid connector name {_show(value)}: {len(value)} characters, "
            f"the maximum is {MAX_CONNECTOR_NAME_LENGTH}"
        )

    bad = sorted({ch for ch in value if ch in _CONNECTOR_NAME_FORBIDDEN or ord(ch) < 32})
    if bad:
        raise InvalidInput(
            f"invalid connector name {_show(value)}: it contains {_show(''.join(bad))}; "
            f"remove it, because a connector name can't contain {CONNECTOR_NAME_FORBIDDEN_TEXT}"
        )
    return value
