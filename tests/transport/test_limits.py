import threading

import pytest

from tenanttls.errors import ConfigurationError, Throttled
from tenanttls.transport.limits import TenantLimiter, TokenBucket
from tenanttls.transport.policy import TransportPolicy
from tenanttls.transport.retry import Deadline


class FakeTime:
    """Monotonic time that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_bucket_burst_passes_without_waiting():
    time = FakeTime()
    bucket = TokenBucket(2.0, 3, monotonic=time.monotonic, sleep=time.sleep)

    waits = [bucket.acquire() for _ in range(3)]

    assert waits == [0.0, 0.0, 0.0]
    assert time.sleeps == []


def test_bucket_waits_for_refill():
    time = FakeTime()
    bucket = TokenBucket(2.0, 1, monotonic=time.monotonic, sleep=time.sleep)

    bucket.acquire()
    wait = bucket.acquire()

    assert wait == pytest.approx(0.5)
    assert time.sleeps == [pytest.approx(0.5)]


def test_bucket_refills_up_to_burst():
    time = FakeTime()
    bucket = TokenBucket(10.0, 2, monotonic=time.monotonic, sleep=time.sleep)
    bucket.acquire()
    bucket.acquire()

    time.now += 100.0
    waits = [bucket.acquire() for _ in range(3)]

    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(0.1)


def test_bucket_rejects_wait_past_deadline():
    time = FakeTime()
    bucket = TokenBucket(0.1, 1, monotonic=time.monotonic, sleep=time.sleep)
    bucket.acquire()
    deadline = Deadline(5.0, monotonic=time.monotonic)

    with pytest.raises(Throttled) as caught:
        bucket.acquire(deadline, tenant="contoso.onmicrosoft.com", operation="Get-AcceptedDomain")

    assert caught.value.retry_after == pytest.approx(10.0)
    assert caught.value.tenant == "contoso.onmicrosoft.com"
    assert time.sleeps == []


def test_bucket_rejected_caller_takes_nothing():
    time = FakeTime()
    bucket = TokenBucket(1.0, 1, monotonic=time.monotonic, sleep=time.sleep)
    bucket.acquire()
    with pytest.raises(Throttled):
        bucket.acquire(Deadline(0.5, monotonic=time.monotonic))

    assert bucket.acquire() == pytest.approx(1.0)


def test_limiter_blocks_third_request_of_tenant():
    limiter = TenantLimiter(2)
    release = threading.Event()
    entered = threading.Barrier(3)

    def hold():
        with limiter.slot("Tenant-A"):
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    entered.wait()

    try:
        with pytest.raises(Throttled, match="tenant tenant-a"):
            with limiter.slot("tenant-a", Deadline(0.05)):
                pass
        assert limiter.in_flight("TENANT-A") == 2

        with limiter.slot("tenant-b", Deadline(0.05)):
            assert limiter.in_flight("tenant-b") == 1
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert limiter.in_flight("tenant-a") == 0


def test_policy_rejects_nonsense():
    with pytest.raises(ConfigurationError, match="tenant_concurrency"):
        TransportPolicy(tenant_concurrency=0)
    with pytest.raises(ConfigurationError, match="deadline"):
        TransportPolicy(deadline=-1)


def test_policy_from_options():
    assert TransportPolicy.from_options(None) == TransportPolicy()
    assert TransportPolicy.from_options({"burst": 5}).burst == 5
    with pytest.raises(ConfigurationError, match="unknown transport option"):
        TransportPolicy.from_options({"bursts": 5})
