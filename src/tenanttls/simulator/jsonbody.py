"""JSON request bodies: parsing with a readable reason, and a limit on nesting.

Bodies of Microsoft's APIs and of the inspection API nest a few levels at most. A deeper
document would make Python's recursive JSON parser, ``copy.deepcopy`` and ``json.dumps``
raise RecursionError somewhere later, so it is rejected here, before anything uses it.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class InvalidJsonBody(ValueError):
    """A body is not JSON, or nests deeper than `MAX_DEPTH`; the message names the body and the reason."""


def parse_json(raw: bytes | str, what: str = "the request body") -> Any:
    """Return the JSON value in `raw`; raise InvalidJsonBody with a readable message naming `what`.

    The message reads "not valid JSON: <reason> at line L column C" for a syntax error,
    and names the limit for a document nested more than `MAX_DEPTH` levels.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidJsonBody(f"{what} is not valid JSON: byte {error.start} is not UTF-8 text") from error
    if not raw.strip():
        raise InvalidJsonBody(f"{what} is empty; send a JSON document")

    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        reason = error.msg[:1].lower() + error.msg[1:]
        raise InvalidJsonBody(f"{what} is not valid JSON: {reason} at line {error.lineno} column {error.colno}") from error
    except RecursionError as error:
        raise _too_deep(what) from error

    if _deeper_than(value, MAX_DEPTH):
        raise _too_deep(what)
    return value


def _too_deep(what: str) -> InvalidJsonBody:
    return InvalidJsonBody(f"{what} nests arrays or objects more than {MAX_DEPTH} levels deep; the maximum is {MAX_DEPTH}")


def _deeper_than(value: Any, limit: int) -> bool:
    """Return True when arrays and objects in `value` nest more than `limit` levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
