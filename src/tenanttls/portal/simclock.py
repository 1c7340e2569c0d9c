"""The simulator's clock, for a portal that runs against the simulator in another process.

The simulator issues ID tokens on its own clock, which ``POST /_simulator/clock/advance``
moves ahead of wall time. A portal on wall time would then reject every new ID token as
"not valid yet", and would count a grace period on another clock than the simulator's.
`SimulatorClock` follows the simulator's clock instead. It is for tests and demonstrations
against the simulator only: Microsoft's identity platform runs on real time.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx

from tenanttls.errors import ConfigurationError

logger = logging.getLogger(__name__)

# Seconds a read of the simulator's clock is reused. Zero reads it on every call, so an
# advance counts at once. A read is one HTTP request on loopback, cheap enough for tests and demonstrations.
REFRESH_SECONDS = 0.0
PORTAL_CLOCKS = ("system", "simulator")


class SimulatorClock:
    """Wall time plus the simulator's offset, read from ``GET {base_url}/_simulator/clock``.

    The offset is read again when the last read is `refresh` seconds old. When a read
    fails, the last offset stays in use and the failure is logged once until a read
    succeeds again.
    """

    def __init__(self, base_url: str, http: httpx.Client, *, refresh: float = REFRESH_SECONDS) -> None:
        self.url = f"{base_url.rstrip('/')}/_simulator/clock"
        self._http = http
        self._refresh = refresh
        self._offset = timedelta(0)
        self._read_at: float | None = None
        self._failing = False
        self._lock = threading.Lock()

    def check(self) -> None:
        """Read the simulator's clock once; raise `ConfigurationError` when it cannot be read."""
        with self._lock:
            error = self._read()
        if error is not None:
            raise ConfigurationError(
                f"portal_clock = 'simulator', but the simulator's clock could not be read at {self.url}: {error}. "
                "This setting works against the simulator only; use portal_clock = 'system' against Microsoft."
            )

    def now(self) -> datetime:
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self._refresh:
                self._read()
            offset = self._offset
        return datetime.now(timezone.utc) + offset

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def _read(self) -> str | None:
        """Update the offset from the simulator; return the error text when the read failed."""
        self._read_at = time.monotonic()
        sent = datetime.now(timezone.utc)
        try:
            response = self._http.get(self.url)
            response.raise_for_status()
            body = response.json()
            self._offset = _offset(body, sent, datetime.now(timezone.utc))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            if not self._failing:
                logger.warning("simulator clock read failed: url=%s error=%s; keeping offset %s", self.url, error, self._offset)
            self._failing = True
            return str(error) or type(error).__name__

        if self._failing:
            logger.info("simulator clock read again: url=%s offset=%s", self.url, self._offset)
        self._failing = False
        return None


def _offset(body: dict, sent: datetime, received: datetime) -> timedelta:
    """Return the simulator's clock minus wall time.

    An `OffsetClock` reports its offset exactly. For other clocks the reported time
    (whole seconds) is compared with the middle of the request.
    """
    if body.get("offset_seconds") is not None:
        return timedelta(seconds=float(body["offset_seconds"]))
    reported = datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00"))
    return reported - (sent + (received - sent) / 2)


def validate_portal_clock(value: str) -> str:
    """Return the `portal_clock` setting, or raise `ConfigurationError` for an unknown value."""
    if value not in PORTAL_CLOCKS:
        raise ConfigurationError(f"invalid portal_clock {value!r}: use 'system' (the default) or 'simulator' (against the simulator only)")
    return value
