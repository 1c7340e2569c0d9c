"""Client-side limits: a global token bucket and a concurrency limit per tenant.

Both wait at most until the operation's deadline. When the wait would pass it, they
raise `Throttled` without sending anything, so that the caller can schedule the
tenant for later instead of provoking throttling at Microsoft.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from tenanttls.errors import Throttled
from tenanttls.transport.retry import Deadline


class TokenBucket:
    """A token bucket shared by all threads: `rate` tokens per second, at most `burst` stored.

    A caller takes a token before each request. When the bucket is empty, the caller
    reserves the next token and sleeps until it is due. Reservations are made under a
    lock, so callers are served in the order they arrive. Thread-safe.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"invalid token bucket: rate={rate} burst={burst}; use rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = monotonic()
        self._lock = threading.Lock()

    def acquire(self, deadline: Deadline | None = None, *, tenant: str | None = None, operation: str | None = None) -> float:
        """Take one token, sleeping until it is due, and return the seconds waited.

        Raises `Throttled` (with the wait as `retry_after`) and takes nothing when the
        token would be due after `deadline`.
        """
        with self._lock:
            now = self._monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = max(0.0, (1.0 - self._tokens) / self.rate)

            if deadline is not None and wait > deadline.remaining():
                raise Throttled(
                    f"the global request budget of {self.rate:g} requests per second is used up for the next "
                    f"{wait:.1f}s, which is past the operation's deadline; retry the operation later",
                    retry_after=wait,
                    tenant=tenant,
                    operation=operation,
                )
            self._tokens -= 1.0

        if wait > 0:
            self._sleep(wait)
        return wait


class TenantLimiter:
    """At most `limit` requests in flight per tenant at once. Thread-safe.

    Tenants are keyed by the reference the caller passes (a GUID or an
    ``.onmicrosoft.com`` name), lower-cased.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"invalid tenant concurrency limit {limit}: use 1 or more")
        self.limit = limit
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def _semaphore(self, tenant: str) -> threading.BoundedSemaphore:
        with self._lock:
            semaphore = self._semaphores.get(tenant)
            if semaphore is None:
                semaphore = self._semaphores[tenant] = threading.BoundedSemaphore(self.limit)
            return semaphore

    def in_flight(self, tenant: str) -> int:
        """Return the number of requests now in flight for `tenant`."""
        with self._lock:
            return self._in_flight.get(tenant.lower(), 0)

    @contextmanager
    def slot(self, tenant: str, deadline: Deadline | None = None, *, operation: str | None = None) -> Iterator[None]:
        """Hold one of the tenant's slots for the body of the `with` block.

        Raises `Throttled` when no slot frees up before `deadline`.
        """
        key = tenant.lower()
        semaphore = self._semaphore(key)
        timeout = None if deadline is None else deadline.remaining()

        if not semaphore.acquire(timeout=timeout):
            raise Throttled(
                f"all {self.limit} request slots for tenant {tenant} stayed busy until the operation's "
                "deadline; retry the operation later or raise tenant_concurrency",
                tenant=tenant,
                operation=operation,
            )
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

        try:
            yield
        finally:
            with self._lock:
                self._in_flight[key] -= 1
            semaphore.release()
