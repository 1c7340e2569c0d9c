"""Validation of form fields and query parameters, with messages a user can act on.

Each function returns the cleaned value or raises `FormError` with one message per
field. Values are always text: a file upload or a repeated field is rejected.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import InvalidInput

# An e-mail address as support needs it: local part, @, a domain with a dot (RFC 5321 limits the path to 254).
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")
MAX_EMAIL_LENGTH = 254
_SEARCH = re.compile(r"^[A-Za-z0-9.@_-]*$")


class FormError(InvalidInput):
    """One or more fields are invalid; `errors` maps each field to its message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = dict(errors)


def _raw(form: Mapping[str, Any], name: str) -> str | None:
    getlist = getattr(form, "getlist", None)
    if getlist is not None:
        values = getlist(name)
    elif name in form:
        values = [form[name]]
    else:
        values = []
    if not values:
        return None
    if len(values) > 1:
        raise FormError({name: "is given more than once; send it once"})
    value = values[0]
    if not isinstance(value, str):
        raise FormError({name: "must be text, not a file"})
    return value


def text(form: Mapping[str, Any], name: str, *, label: str, max_length: int, required: bool = False, multiline: bool = False) -> str:
    """Return the field as stripped text of at most `max_length` characters.

    Multiline text comes back with ``\\n`` line breaks. Browsers send a textarea's line
    breaks as CR LF but count each as one character for ``maxlength``, so the length is
    counted after the CR LF pairs become LF, the way the user saw it.
    """
    value = (_raw(form, name) or "").strip()
    if multiline:
        value = normalize_line_breaks(value)
    if required and not value:
        raise FormError({name: f"{label} is required"})
    if len(value) > max_length:
        counted = ", counting each line break as one" if multiline else ""
        raise FormError({name: f"{label} is {len(value):,} characters long{counted}; the maximum is {max_length:,}"})

    allowed = "\n\t" if multiline else ""
    if any((ord(ch) < 32 and ch not in allowed) or ord(ch) == 127 for ch in value):
        raise FormError({name: f"{label} contains control characters; remove them"})
    return value


def normalize_line_breaks(value: str) -> str:
    """Return `value` with CR LF and lone CR line breaks turned into LF."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def email(form: Mapping[str, Any], name: str, *, label: str, required: bool = True) -> str:
    """Return the field as an e-mail address."""
    value = text(form, name, label=label, max_length=MAX_EMAIL_LENGTH, required=required)
    if value and not EMAIL_PATTERN.match(value):
        raise FormError({name: f"{label} {value!r} is not an e-mail address like 'it@contoso.com'"})
    return value


def confirmed(form: Mapping[str, Any], name: str, *, label: str) -> bool:
    """Return True when the confirmation checkbox is ticked; raise `FormError` otherwise."""
    value = _raw(form, name)
    if value != "yes":
        raise FormError({name: f"Tick \u201c{label}\u201d to confirm"})
    return True


def hex_digest(form: Mapping[str, Any], name: str, *, label: str) -> str:
    """Return a SHA-256 hex digest field (64 lower-case hex characters)."""
    value = text(form, name, label=label, max_length=64, required=True)
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise FormError({name: f"{label} is not valid; open the plan again and confirm from there"})
    return value


def choice(params: Mapping[str, Any], name: str, *, label: str, choices: tuple[str, ...]) -> str | None:
    """Return the parameter when it is one of `choices`, None when empty."""
    value = text(params, name, label=label, max_length=64)
    if not value:
        return None
    if value not in choices:
        raise FormError({name: f"{label} {value!r} is not one of: {', '.join(choices)}"})
    return value


def search(params: Mapping[str, Any], name: str, *, label: str) -> str | None:
    """Return a search text: letters, digits and ``.@_-``, at most 253 characters."""
    value = text(params, name, label=label, max_length=253)
    if not value:
        return None
    if not _SEARCH.match(value):
        raise FormError({name: f"{label} may contain only letters, digits and . @ _ -"})
    return value.lower()


def domain_cursor(params: Mapping[str, Any], name: str) -> str | None:
    """Return a page cursor (an initial domain), or None."""
    value = text(params, name, label="page cursor", max_length=253)
    if not value:
        return None
    try:
        return validate_domain_name(value, what="page cursor")
    except InvalidInput as error:
        raise FormError({name: str(error)}) from error


def integer(params: Mapping[str, Any], name: str, *, label: str, minimum: int, maximum: int, default: int) -> int:
    """Return a whole number between `minimum` and `maximum`, or `default` when empty."""
    value = text(params, name, label=label, max_length=12)
    if not value:
        return default
    if not value.isdigit() or not minimum <= int(value) <= maximum:
        raise FormError({name: f"{label} must be a whole number from {minimum} to {maximum}"})
    return int(value)
