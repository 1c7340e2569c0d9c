"""Injectable time, so that tests and the demo can pass 24-hour delays without sleeping.

Components take a `Clock` and never call `time.time()` or `datetime.now()` for
decisions. `SystemClock` is the default; `ManualClock` moves only when `advance` or `set` is called.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """A source of the current time in UTC."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when `advance` or `set` is called.

    `sleep` advances the clock instead of blocking, so code that waits on it
    finishes at once. Thread-safe.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by `delta` (a timedelta or seconds) and return the new time."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError(f"cannot move a clock backwards (delta {delta})")

        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        """Set the clock to `moment`, which must be timezone-aware."""
        if moment.tzinfo is None:
            raise ValueError(f"clock time must be timezone-aware, got {moment!r}")
        with self._lock:
            self._now = moment.astimezone(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


class OffsetClock:
    """Wall-clock time plus an offset that can be moved forward.

    The simulator and the demo use it: time runs normally, and a test or an
    operator can jump ahead (past a propagation delay or a grace period) at once.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, delta: timedelta | float) -> datetime:
        """Jump forward by `delta` (a timedelta or seconds) and return the new time."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError(f"cannot move a clock backwards (delta {delta})")

        with self._lock:
            self._offset += delta
        return self.now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
