"""Messages for rejected request data, in the portal's own words.

FastAPI validates JSON bodies and typed query parameters with Pydantic, whose messages
("String should have at most 2000 characters", "Input should be a valid dictionary")
name neither the field nor the fix. `describe_errors` turns each Pydantic error into one
sentence that names the field, states what is wrong with the value and what to send instead.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

# The valid form of each field whose rule is a pattern, as advice to the sender.
FIELD_HINTS = {
    "plan_fingerprint": "send the 64 hexadecimal characters of 'fingerprint' from GET /api/tenants/{id}/plan",
    "contact_email": "send an e-mail address like 'it@contoso.com'",
}

# Source of a value, keyed by the first element of an error's location in FastAPI.
_SOURCES = {"body": "field", "query": "query parameter", "path": "path segment", "header": "header", "cookie": "cookie"}


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Return one ``{"field", "message"}`` per Pydantic error; `field` is empty for the whole body."""
    return [{"field": _field(error), "message": describe_error(error)} for error in errors]


def describe_error(error: Mapping[str, Any]) -> str:
    """Return one sentence for a Pydantic error: the field, what is wrong and the fix."""
    field = _field(error)
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    value = error.get("input")

    if kind == "json_invalid":
        # FastAPI puts the character position where the JSON parser stopped after "body".
        return f"The request body is not valid JSON: {context.get('error', 'parse error')} at character {field or 0}; send a JSON object."
    if not field:
        return _describe_body(kind)
    name = f"{_source(error)} {field!r}"

    if kind == "missing":
        return f"The {name} is missing; add it."
    if kind == "extra_forbidden":
        return f"The {name} is not part of this request; remove it (see /openapi.json for the fields)."
    if kind == "string_too_long":
        return f"The {name} is {_length(value)} characters long; the maximum is {context.get('max_length')}. Shorten it."
    if kind == "string_too_short":
        return f"The {name} is {_length(value)} characters long; the minimum is {context.get('min_length')}."
    if kind == "string_pattern_mismatch":
        hint = FIELD_HINTS.get(field, "see /openapi.json for the expected form")
        return f"The {name} value {_shown(value)} is not valid; {hint}."
    if kind == "string_type":
        return f"The {name} must be text in double quotes, not {_shown(value)}."
    if kind in ("bool_type", "bool_parsing"):
        return f"The {name} must be true or false, not {_shown(value)}."
    if kind == "value_error":
        return f"The {name} value {_shown(value)} is not valid: {context.get('error', 'rejected')}."
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"The {name} must be a whole number, not {_shown(value)}."
    return f"The {name} value {_shown(value)} is not valid; see /openapi.json for the expected form."


def _describe_body(kind: str) -> str:
    if kind == "missing":
        return "The request body is missing; send a JSON object with the fields listed in /openapi.json."
    return "The request body must be a JSON object with the fields listed in /openapi.json."


def _field(error: Mapping[str, Any]) -> str:
    """Return the dotted field path without its source (``note``, ``items.0.name``), or ``""`` for the body itself."""
    location = list(error.get("loc") or ())
    if location and location[0] in _SOURCES:
        location = location[1:]
    return ".".join(str(part) for part in location)


def _source(error: Mapping[str, Any]) -> str:
    location = error.get("loc") or ("body",)
    return _SOURCES.get(str(location[0]), "field")


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _shown(value: Any) -> str:
    """Return the value as the user sent it, shortened to 60 characters."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
