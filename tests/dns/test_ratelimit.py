from __future__ import annotations

from tenanttls.dns.ratelimit import WarningLimiter


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_line_passes_repeats_held():
    clock = _Clock()
    limiter = WarningLimiter(interval=60, clock=clock)

    first = limiter.check("peer-a")
    repeats = [limiter.check("peer-a") for _ in range(3)]

    assert first == 0
    assert repeats == [None, None, None]


def test_next_interval_reports_held_count():
    clock = _Clock()
    limiter = WarningLimiter(interval=60, clock=clock)
    limiter.check("peer-a")
    limiter.check("peer-a")
    limiter.check("peer-a")

    clock.now += 60

    assert limiter.check("peer-a") == 2
    assert limiter.check("peer-a") is None


def test_keys_limited_separately():
    limiter = WarningLimiter(interval=60, clock=_Clock())
    limiter.check("peer-a")

    assert limiter.check("peer-b") == 0


def test_key_count_bounded():
    clock = _Clock()
    limiter = WarningLimiter(interval=60, max_keys=3, clock=clock)
    for key in range(5):
        limiter.check(key)

    assert len(limiter._entries) <= 3
    assert limiter.check(0) == 0
