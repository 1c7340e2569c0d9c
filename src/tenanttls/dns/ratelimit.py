"""`WarningLimiter`: at most one log line per key and interval, so a flood of bad requests stays readable."""

from __future__ import annotations

import threading
import time
from typing import Callable, Hashable


class WarningLimiter:
    """Let one log line per key through each `interval` seconds and count the ones held back.

    A peer that sends the same rejected request many times then costs one line per
    interval, and the next line that gets through reports how many were held back.
    Lines held back after the last one that got through are never reported.
    """

    def __init__(self, interval: float = 60.0, max_keys: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [time the last line got through, lines held back since]
        self._entries: dict[Hashable, list[float]] = {}

    def check(self, key: Hashable) -> int | None:
        """Return None when the line for `key` is to be held back, else how many were held back before it."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self._interval:
                entry[1] += 1
                return None

            held_back = int(entry[1]) if entry is not None else 0
            self._entries[key] = [now, 0]
            if len(self._entries) > self._max_keys:
                self._forget_old(now)
            return held_back

    def _forget_old(self, now: float) -> None:
        """Drop the keys whose interval has passed; drop all when that is not enough, to bound memory."""
        self._entries = {key: entry for key, entry in self._entries.items() if now - entry[0] < self._interval}
        if len(self._entries) > self._max_keys:
            self._entries.clear()
