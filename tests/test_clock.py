from datetime import datetime, timedelta, timezone

import pytest

from tenanttls.clock import ManualClock, OffsetClock


def test_manual_clock_advances_only_when_told():
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))

    clock.advance(timedelta(hours=24))
    clock.sleep(30)

    assert clock.now() == datetime(2026, 1, 2, 0, 0, 30, tzinfo=timezone.utc)


def test_manual_clock_rejects_backwards_and_naive():
    clock = ManualClock()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 1, 1))


def test_offset_clock_jumps_ahead():
    clock = OffsetClock()
    before = clock.now()

    clock.advance(3600)

    assert clock.now() - before >= timedelta(hours=1)
    assert clock.offset == timedelta(hours=1)
