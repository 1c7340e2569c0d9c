"""Parsing of durations written by people: ``24h``, ``5s``, ``1d12h``, ``90m``, ``0``."""

from __future__ import annotations

import re
from datetime import timedelta

from tenanttls.errors import InvalidInput

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Return the duration that `text` names, such as ``24h``, ``1h30m`` or ``5s``.

    A bare number is seconds. Raises `InvalidInput` naming the value otherwise.
    """
    value = str(text).strip().lower().replace(" ", "")
    if value.startswith("-"):
        raise InvalidInput(f"invalid duration {text!r}: a duration cannot be negative; write it without the minus sign")
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return timedelta(seconds=float(value))

    position = 0
    seconds = 0.0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()

    if position != len(value) or not value:
        raise InvalidInput(
            f"invalid duration {text!r}: use a number with a unit (ms, s, m, h, d, w), "
            "for example '24h', '90m', '1h30m' or '5s'"
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Return `delta` in the shortest form `parse_duration` reads back, such as ``1h30m``."""
    total = int(delta.total_seconds())
    if total <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
