"""Propagation delays, injected faults and paging: defaults, validation and per-tenant overrides.

Global settings apply to every tenant; a tenant's own `delays` and `faults` override single
keys of them. Delays are seconds of the simulator's clock (a duration string such as
``"15m"`` is accepted too); fault rates are probabilities from 0 to 1.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timezone
from typing import Any, Mapping

from tenanttls.domain.durations import parse_duration
from tenanttls.errors import InvalidInput
from tenanttls.simulator.display import quoted

SURFACES = ("identity", "graph", "exchange")

# The maximum delay, fault wait or clock advance: 100 years of 365 days. The clock
# never passes LATEST_CLOCK_TIME, so a time plus such a duration stays below datetime's year 9999.
MAX_SECONDS = 100 * 365 * 86400
LATEST_CLOCK_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc)

# The largest InvokeCommand page the simulator serves, in objects.
MAX_PAGE_SIZE = 1000
MAX_TOKEN_LIFETIME_SECONDS = 86400

DEFAULT_DELAYS: dict[str, float] = {
    # Time from a successful Graph verify until Get-AcceptedDomain lists the domain.
    "accepted_domain_seconds": 0.0,
    # Time from New/Set/Remove-InboundConnector until the change takes effect for mail.
    "connector_seconds": 0.0,
    # Time from admin consent until the token endpoint issues tokens for the tenant.
    "consent_seconds": 0.0,
}

DEFAULT_FAULTS: dict[str, Any] = {
    # Share of requests that get 429 with a Retry-After header of `retry_after_seconds`.
    "throttle_rate": 0.0,
    "retry_after_seconds": 5,
    # Share of requests that get 503.
    "unavailable_rate": 0.0,
    # Share of requests held for `hang_seconds` of wall time that then get 504.
    "hang_rate": 0.0,
    "hang_seconds": 30.0,
    # Wall-time delay added to every request before it is handled; the request then succeeds.
    "latency_seconds": 0.0,
    # Exchange requests in flight per tenant above which Exchange responds "too many concurrent requests".
    "max_concurrent_requests": None,
    # The services the rates apply to.
    "surfaces": list(SURFACES),
    # Stop injecting after this many injected faults (counted per tenant or globally); None means no limit.
    "max_faults": None,
}

DEFAULT_SETTINGS: dict[str, Any] = {
    "delays": DEFAULT_DELAYS,
    "faults": DEFAULT_FAULTS,
    # Objects per InvokeCommand page when the request has no `Prefer: odata.maxpagesize`.
    "page_size": 1000,
    "token_lifetime_seconds": 3599,
}


def default_settings() -> dict[str, Any]:
    """Return a fresh copy of the default global settings."""
    return copy.deepcopy(DEFAULT_SETTINGS)


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"invalid {key} {quoted(value)}: expected a number of seconds or a duration like \"15m\"")
    if isinstance(value, (int, float)):
        seconds = value
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value).total_seconds()
        except OverflowError:
            seconds = math.inf
    else:
        raise InvalidInput(f"invalid {key} {quoted(value)}: expected a number of seconds or a duration like \"15m\"")

    # Compared before any float() conversion, which fails on a JSON integer beyond float's range.
    if (isinstance(seconds, float) and math.isnan(seconds)) or not 0 <= seconds <= MAX_SECONDS:
        raise InvalidInput(f"invalid {key} {quoted(value)}: expected seconds from 0 to {MAX_SECONDS} (100 years)")
    return float(seconds)


def _rate(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInput(f"invalid {key} {quoted(value)}: expected a probability from 0 to 1, such as 0.25")
    return float(value)


def _count(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"invalid {key} {quoted(value)}: expected a whole number of 1 or more, or null for no limit")
    return value


def _require_mapping(what: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"invalid {what} {quoted(value)}: expected a JSON object")
    return value


def _reject_unknown(what: str, given: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidInput(f"unknown {what} key(s) {', '.join(unknown)}: valid keys are {', '.join(sorted(known))}")


def validate_delays(value: Any) -> dict[str, float | None]:
    """Return the delays in `value` as seconds; a key set to None means "use the global value".

    `value` None stands for every key set to None, which clears all delays at once.
    """
    if value is None:
        return {key: None for key in DEFAULT_DELAYS}
    delays = _require_mapping("delays", value)
    _reject_unknown("delay", delays, DEFAULT_DELAYS)
    return {key: None if item is None else _seconds(key, item) for key, item in delays.items()}


def validate_faults(value: Any) -> dict[str, Any]:
    """Return the fault settings in `value` after checking each key; None means "use the global value".

    `value` None stands for every key set to None, which clears all faults at once.
    """
    if value is None:
        return {key: None for key in DEFAULT_FAULTS}
    faults = _require_mapping("faults", value)
    _reject_unknown("fault", faults, DEFAULT_FAULTS)

    checked: dict[str, Any] = {}
    for key, item in faults.items():
        if item is None:
            checked[key] = None
        elif key.endswith("_rate"):
            checked[key] = _rate(key, item)
        elif key.endswith("_seconds"):
            checked[key] = _seconds(key, item)
        elif key in ("max_concurrent_requests", "max_faults"):
            checked[key] = _count(key, item)
        elif key == "surfaces":
            checked[key] = _surfaces(item)
    return checked


def _surfaces(value: Any) -> list[str]:
    if not isinstance(value, list) or any(item not in SURFACES for item in value):
        raise InvalidInput(f"invalid surfaces {quoted(value)}: expected a list drawn from {', '.join(SURFACES)}")
    return list(dict.fromkeys(value))


def validate_settings(value: Any) -> dict[str, Any]:
    """Return a checked partial update of the global settings (delays, faults, page_size, token lifetime)."""
    settings = _require_mapping("settings", value)
    _reject_unknown("settings", settings, DEFAULT_SETTINGS)

    checked: dict[str, Any] = {}
    if "delays" in settings:
        checked["delays"] = validate_delays(settings["delays"])
    if "faults" in settings:
        checked["faults"] = validate_faults(settings["faults"])
    for key, maximum, unit in (
        ("page_size", MAX_PAGE_SIZE, "objects per InvokeCommand page"),
        ("token_lifetime_seconds", MAX_TOKEN_LIFETIME_SECONDS, "seconds"),
    ):
        if key in settings:
            item = settings[key]
            if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= maximum:
                raise InvalidInput(f"invalid {key} {quoted(item)}: expected a whole number from 1 to {maximum} ({unit})")
            checked[key] = item
    return checked


def apply_settings(current: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return `current` with a validated `update` applied; None in delays or faults restores the default."""
    merged = copy.deepcopy(current)
    for section, defaults in (("delays", DEFAULT_DELAYS), ("faults", DEFAULT_FAULTS)):
        for key, item in update.get(section, {}).items():
            merged[section][key] = copy.deepcopy(defaults[key]) if item is None and key in defaults else item
    for key in ("page_size", "token_lifetime_seconds"):
        if key in update:
            merged[key] = update[key]
    return merged


def apply_overrides(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return a tenant's override map with `update` applied; a key set to None is removed."""
    merged = dict(current)
    for key, item in update.items():
        if item is None:
            merged.pop(key, None)
        else:
            merged[key] = item
    return merged
