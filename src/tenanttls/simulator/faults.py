"""Call counting, injected faults and the per-tenant concurrency limit, applied around every Microsoft request.

`RequestGuard.run` wraps a handler. It counts the call, enforces Exchange's per-tenant
limit on requests in flight and adds latency. At the configured rates it injects throttling
(429 with Retry-After), outages (503) and hung requests (held, then 504). It turns any
exception of the handler into the service's 500 error, so a request never crashes the
simulator.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter, defaultdict
from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from tenanttls.clock import Clock
from tenanttls.simulator.responses import fault_response
from tenanttls.simulator.state import SimulatorState

logger = logging.getLogger(__name__)

RATE_KEYS = ("throttle_rate", "unavailable_rate", "hang_rate")


class CallCounter:
    """Counts of Microsoft requests per endpoint and per tenant, and of injected faults. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Set every count to zero."""
        with self._lock:
            self._by_endpoint: Counter[str] = Counter()
            self._by_tenant: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._faults: Counter[str] = Counter()

    def record(self, endpoint: str, tenant_id: str | None) -> None:
        """Count one request to `endpoint` for `tenant_id` (None when the tenant is unknown)."""
        with self._lock:
            self._by_endpoint[endpoint] += 1
            self._by_tenant[tenant_id or "unknown"][endpoint] += 1

    def record_fault(self, kind: str) -> None:
        """Count one injected fault of `kind`."""
        with self._lock:
            self._faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return the counts as JSON-ready dicts."""
        with self._lock:
            return {
                "total": sum(self._by_endpoint.values()),
                "by_endpoint": dict(self._by_endpoint),
                "by_tenant": {tenant: dict(counts) for tenant, counts in self._by_tenant.items()},
                "faults": dict(self._faults),
            }


class ConcurrencyLimiter:
    """Requests in flight per tenant. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()

    def acquire(self, tenant_id: str, limit: int) -> bool:
        """Take a slot for `tenant_id` unless `limit` requests are already in flight."""
        with self._lock:
            if self._in_flight[tenant_id] >= limit:
                return False
            self._in_flight[tenant_id] += 1
            return True

    def release(self, tenant_id: str) -> None:
        """Give back a slot taken with `acquire`."""
        with self._lock:
            self._in_flight[tenant_id] -= 1
            if self._in_flight[tenant_id] <= 0:
                del self._in_flight[tenant_id]

    def in_flight(self) -> dict[str, int]:
        """Return the number of requests in flight per tenant."""
        with self._lock:
            return dict(self._in_flight)


class RequestGuard:
    """Applies counting, the concurrency limit and fault injection around a request handler."""

    def __init__(self, state: SimulatorState, clock: Clock, calls: CallCounter, rng: random.Random | None = None) -> None:
        self._state = state
        self._clock = clock
        self.calls = calls
        self.limiter = ConcurrencyLimiter()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._injected: Counter[str] = Counter()

    def reset_fault_counts(self) -> None:
        """Restart the `max_faults` budgets, as after the fault settings changed."""
        with self._lock:
            self._injected.clear()

    async def run(
        self,
        request: Request,
        *,
        surface: str,
        endpoint: str,
        tenant_id: str | None,
        handler: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Return `handler`'s response, or the fault response the settings call for."""
        self.calls.record(endpoint, tenant_id)
        faults, overridden = self._state.faults(tenant_id)

        limit = faults.get("max_concurrent_requests") if surface == "exchange" and tenant_id else None
        if limit is not None and not self.limiter.acquire(tenant_id, limit):  # type: ignore[arg-type]
            self.calls.record_fault("concurrency")
            logger.info("simulator fault: tenant=%s endpoint=%s kind=concurrency limit=%s", tenant_id, endpoint, limit)
            return fault_response(surface, "concurrency", request, self._clock.now())

        try:
            return await self._run_with_faults(request, surface, endpoint, tenant_id, faults, overridden, handler)
        finally:
            if limit is not None:
                self.limiter.release(tenant_id)  # type: ignore[arg-type]

    async def _run_with_faults(
        self,
        request: Request,
        surface: str,
        endpoint: str,
        tenant_id: str | None,
        faults: dict[str, Any],
        overridden: set[str],
        handler: Callable[[], Awaitable[Response]],
    ) -> Response:
        applies = surface in faults["surfaces"]
        if applies and faults["latency_seconds"]:
            await asyncio.sleep(faults["latency_seconds"])

        kind = self._choose_fault(tenant_id, faults, overridden) if applies else None
        if kind is not None:
            self.calls.record_fault(kind)
            logger.info("simulator fault: tenant=%s endpoint=%s kind=%s", tenant_id, endpoint, kind)
        if kind == "throttle":
            return fault_response(surface, "throttle", request, self._clock.now(), int(faults["retry_after_seconds"]))
        if kind == "unavailable":
            return fault_response(surface, "unavailable", request, self._clock.now())
        if kind == "hang":
            await asyncio.sleep(faults["hang_seconds"])
            return fault_response(surface, "timeout", request, self._clock.now())

        try:
            return await handler()
        except Exception:
            logger.exception("simulator error: tenant=%s endpoint=%s handler failed; responding with 500", tenant_id, endpoint)
            return fault_response(surface, "internal", request, self._clock.now())

    def _choose_fault(self, tenant_id: str | None, faults: dict[str, Any], overridden: set[str]) -> str | None:
        """Return "throttle", "unavailable", "hang" or None, drawing once against the cumulative rates."""
        scope = tenant_id if tenant_id and overridden & {*RATE_KEYS, "max_faults"} else "global"
        with self._lock:
            budget = faults.get("max_faults")
            if budget is not None and self._injected[scope] >= budget:
                return None

            roll = self._rng.random()
            for kind, key in (("throttle", "throttle_rate"), ("unavailable", "unavailable_rate"), ("hang", "hang_rate")):
                rate = faults[key] or 0.0
                if roll < rate:
                    self._injected[scope] += 1
                    return kind
                roll -= rate
        return None
