"""Deadlines, backoff delays and `Retry-After` parsing for the retry loop."""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable


class Deadline:
    """The time left for one client operation, across all of its requests and waits.

    Time is measured with a monotonic counter. When an injected clock's `sleep` returns
    early (a `ManualClock` only advances its own time), `add_skipped` counts the time
    that the sleep stood for, so that a test clock still uses up the deadline.
    """

    def __init__(self, seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._monotonic = monotonic
        self._start = monotonic()
        self._skipped = 0.0

    def elapsed(self) -> float:
        """Return the seconds used so far, skipped sleep time included."""
        return self._monotonic() - self._start + self._skipped

    def remaining(self) -> float:
        """Return the seconds left, never below zero."""
        return max(0.0, self.seconds - self.elapsed())

    def expired(self) -> bool:
        """Return True when no time is left."""
        return self.remaining() <= 0

    def add_skipped(self, seconds: float) -> None:
        """Count `seconds` of sleep time that did not pass on the monotonic counter."""
        if seconds > 0:
            self._skipped += seconds


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Return the wait before retry number `attempt` (1 for the first retry), with full jitter.

    The wait is uniform in [0, min(cap, base * 2**(attempt - 1))], the "full jitter"
    scheme, which spreads the retries of many clients that failed at the same moment.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds that a `Retry-After` header value requests, or None if it is absent or invalid.

    RFC 9110 section 10.2.3 allows a number of seconds or an HTTP-date. A date in the
    past gives 0. `now` is the current time for the date form (default: the system time).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()

    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is invalid

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (moment - current).total_seconds())
