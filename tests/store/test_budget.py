"""The request budget in the store: one token bucket that several processes draw from."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tenanttls.errors import Throttled
from tenanttls.store.budget import StoreTokenBucket
from tenanttls.transport.retry import Deadline

# Each child process opens the store, waits for the common start time, then takes
# tokens as the transport does (reserve, sleep until due) and prints each due time.
DRAW = """
import sys, time
from tenanttls.store.db import open_store
from tenanttls.store.budget import StoreTokenBucket

url, rate, burst, count, start = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
store = open_store(url)
bucket = StoreTokenBucket(store.engine, rate, burst, name="shared")
time.sleep(max(0.0, start - time.time()))
for _ in range(count):
    reservation = bucket.reserve()
    print(repr(reservation.due_at), flush=True)
    time.sleep(reservation.wait)
store.close()
"""


def test_burst_then_wait(store):
    bucket = StoreTokenBucket(store.engine, 0.1, 3, sleep=lambda seconds: None)

    waits = [bucket.acquire() for _ in range(4)]

    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.0 < waits[3] <= 10.0


def test_deadline_takes_nothing(store):
    bucket = StoreTokenBucket(store.engine, 0.1, 1, sleep=lambda seconds: None)
    bucket.acquire()

    with pytest.raises(Throttled) as error:
        bucket.acquire(Deadline(0.0), tenant="contoso.onmicrosoft.com", operation="Get-AcceptedDomain")

    assert error.value.retry_after > 5.0
    assert "shared request budget" in str(error.value)
    assert bucket.reserve().wait <= 10.0  # the rejected call reserved nothing


def test_second_bucket_keeps_tokens(store):
    first = StoreTokenBucket(store.engine, 0.1, 2, sleep=lambda seconds: None)
    first.acquire()
    first.acquire()

    second = StoreTokenBucket(store.engine, 0.1, 2, sleep=lambda seconds: None)

    assert second.reserve().wait > 5.0


@pytest.mark.slow
def test_processes_share_budget(store):
    rate, burst, per_process, processes = 100.0, 5, 40, 4
    start = time.time() + 3.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", DRAW, store.url, str(rate), str(burst), str(per_process), repr(start)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    due: list[float] = []
    for child in children:
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr[-2000:]
        due += [float(line) for line in stdout.split()]

    due.sort()
    assert len(due) == processes * per_process
    # Token bucket: within any window of w seconds at most burst + rate * w tokens fall due.
    for first in range(len(due)):
        for last in range(first, len(due)):
            allowed = burst + rate * (due[last] - due[first]) + 1e-3  # float rounding of epoch seconds
            assert last - first + 1 <= allowed, (first, last, due[first], due[last])
