"""Rendering of a caller's value inside an error message."""

from __future__ import annotations

import json
from typing import Any


def quoted(value: Any, limit: int = 100) -> str:
    """Return `value` as JSON text: a string in double quotes with JSON escapes, ``null``, numbers as written.

    Strings longer than `limit` characters are cut and end in ``...``. Values JSON cannot
    show (such as bytes) fall back to their ``str`` form.
    """
    if isinstance(value, str) and len(value) > limit:
        value = value[: max(limit - 3, 1)] + "..."
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    except RecursionError:
        text = "(a value nested too deeply to show)"
    if len(text) > limit + 2:
        text = text[: limit - 1] + "..."
    return text
