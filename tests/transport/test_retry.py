from datetime import datetime, timezone
import random

from tenanttls.transport.retry import Deadline, backoff_delay, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_retry_after_seconds():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5


def test_retry_after_http_date():
    assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now=NOW) == 30.0


def test_retry_after_past_or_negative_is_zero():
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=NOW) == 0.0
    assert parse_retry_after("-5") == 0.0


def test_retry_after_absent_or_invalid():
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


def test_backoff_within_full_jitter_ceiling():
    rng = random.Random(1)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (20, 30.0)):
        for _ in range(50):
            delay = backoff_delay(attempt, base=1.0, cap=30.0, rng=rng)
            assert 0.0 <= delay <= ceiling


def test_backoff_spreads_delays():
    rng = random.Random(2)
    delays = {round(backoff_delay(4, base=1.0, cap=30.0, rng=rng), 3) for _ in range(20)}
    assert len(delays) > 10


def test_deadline_counts_skipped_sleep():
    now = [100.0]
    deadline = Deadline(10.0, monotonic=lambda: now[0])

    now[0] += 3.0
    deadline.add_skipped(4.0)

    assert deadline.elapsed() == 7.0
    assert deadline.remaining() == 3.0
    assert not deadline.expired()


def test_deadline_expires():
    now = [0.0]
    deadline = Deadline(1.0, monotonic=lambda: now[0])
    now[0] = 1.5

    assert deadline.remaining() == 0.0
    assert deadline.expired()
