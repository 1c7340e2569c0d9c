"""The worker: claims due tenants with leases and runs their steps, N tenants at a time.

Each claimed tenant runs in a thread of the pool: its steps follow one another
while they are due at once (identity, then domain, ...), and the lease is released
when the tenant has to wait or is finished. A worker that crashes leaves its
leases behind; another worker takes those tenants once the leases expire.
`stop()` (SIGTERM in ``tenanttls worker``) lets running steps finish, starts no
new ones, releases the leases and returns. While the store cannot be reached (a
database restart or fail-over), the worker logs it, waits and tries again. Leases
of steps cut off by the outage are released once the store can be reached again, so those
tenants do not wait for their leases to expire.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.exc import DBAPIError

from tenanttls.metrics import observe_step
from tenanttls.migration.context import EngineContext, default_owner
from tenanttls.migration.runner import StepReport, run_step
from tenanttls.store.db import driver_message
from tenanttls.store.upgrades import LeaseLost, claim_due, next_claimable_at, release_lease
from tenanttls.transport.retry import backoff_delay

logger = logging.getLogger(__name__)

# Seconds between attempts to reach the store after it failed: at least the base, then
# doubling with jitter up to the cap, so a restored database is noticed within about 30 s.
STORE_RETRY_BASE = 1.0
STORE_RETRY_CAP = 30.0


@dataclass
class WorkerStats:
    """Counts of what a worker did, for reports and benchmarks."""

    steps: int = 0
    advances: int = 0
    waits: int = 0
    retries: int = 0
    stops: int = 0
    leases_lost: int = 0
    api_calls: int = 0
    # CPU seconds of this process spent in each state's step (thread time of the step).
    cpu_by_state: dict[str, float] = field(default_factory=dict)
    steps_by_state: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, report: StepReport, cpu_seconds: float) -> None:
        with self.lock:
            self.steps += 1
            self.api_calls += report.api_calls
            attribute = {"advance": "advances", "wait": "waits", "retry": "retries", "stop": "stops"}.get(report.kind)
            if attribute:
                setattr(self, attribute, getattr(self, attribute) + 1)
            state = report.state_before.value
            self.cpu_by_state[state] = self.cpu_by_state.get(state, 0.0) + cpu_seconds
            self.steps_by_state[state] = self.steps_by_state.get(state, 0) + 1


@dataclass(frozen=True)
class PeriodicTask:
    """A job the worker runs every `interval` seconds in a thread of its own, such as the drift check.

    `run` receives the worker's stop event and should return soon after it is set.
    """

    name: str
    interval: float
    run: Callable[[threading.Event], object]


class Worker:
    """Runs due upgrades from the store until stopped (or until `until()` is true)."""

    def __init__(
        self,
        context: EngineContext,
        *,
        concurrency: int = 4,
        poll_interval: float = 1.0,
        owner: str | None = None,
        max_steps_per_claim: int = 50,
        periodic: tuple[PeriodicTask, ...] = (),
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"invalid worker concurrency {concurrency}: use 1 or more")
        self.context = context
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.owner = owner or default_owner()
        self.max_steps_per_claim = max_steps_per_claim
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._running: dict[str, Future] = {}
        self._lock = threading.Lock()
        self.periodic = periodic
        self._store_failures = 0
        # Tenants whose lease this worker still holds although no step of theirs runs: their
        # step was cut off by a store outage. Guarded by _lock.
        self._unreleased: set[str] = set()

    def stop(self) -> None:
        """Ask the worker to finish: running steps complete, no new step starts."""
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        """Look for due tenants now instead of at the next poll (after an upgrade request)."""
        self._wake.set()

    def run(self, until: Callable[[], bool] | None = None) -> WorkerStats:
        """Claim and run due tenants until `stop()` is called or `until()` returns True.

        `until` is called only while no tenant is running, so it reads settled states.
        """
        logger.info("worker started: owner=%s concurrency=%d", self.owner, self.concurrency)
        threads = [self._start_periodic(task) for task in self.periodic]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="tenanttls-worker") as pool:
            while not self._stop.is_set():
                try:
                    claimed = self._claim(pool)
                    if not claimed and self._idle() and until is not None and until():
                        break
                    if not claimed:
                        self._wait()
                except DBAPIError as error:
                    self._store_unreachable(error)
                    continue
                self._store_reachable()
                self._release_unreleased()
            self._drain()
            self._release_unreleased()
        self._stop.set()
        for thread in threads:
            thread.join()
        logger.info(
            "worker stopped: owner=%s steps=%d advances=%d retries=%d stops=%d",
            self.owner,
            self.stats.steps,
            self.stats.advances,
            self.stats.retries,
            self.stats.stops,
        )
        return self.stats

    def _start_periodic(self, task: PeriodicTask) -> threading.Thread:
        """Start a thread that runs `task` every `task.interval` seconds until the worker stops."""

        def loop() -> None:
            while not self._stop.wait(task.interval):
                try:
                    task.run(self._stop)
                except DBAPIError as error:
                    logger.warning(
                        "periodic task failed, store unreachable: task=%s owner=%s error=%s; the next interval tries again",
                        task.name, self.owner, driver_message(error),
                    )
                except Exception:
                    # A failed pass must not end the loop: the next interval tries again.
                    logger.exception("periodic task failed: task=%s owner=%s", task.name, self.owner)

        thread = threading.Thread(target=loop, name=f"tenanttls-{task.name}", daemon=True)
        thread.start()
        logger.info("periodic task started: task=%s interval=%.0fs", task.name, task.interval)
        return thread

    def _store_unreachable(self, error: DBAPIError) -> None:
        """Log that the store failed and wait before the next attempt (or until stopped)."""
        self._store_failures += 1
        delay = STORE_RETRY_BASE + backoff_delay(self._store_failures, base=STORE_RETRY_BASE, cap=STORE_RETRY_CAP)
        logger.warning(
            "store unreachable: owner=%s attempt=%d error=%s; trying again in %.0fs",
            self.owner, self._store_failures, driver_message(error), delay,
        )
        self._stop.wait(delay)

    def _store_reachable(self) -> None:
        if self._store_failures:
            # A warning, as the failures were, so that a log read at the default level shows the recovery.
            logger.warning("store reachable again: owner=%s failed_attempts=%d", self.owner, self._store_failures)
            self._store_failures = 0

    def _release_unreleased(self) -> None:
        """Release the leases left by steps that a store outage cut off, unless the tenant runs again."""
        with self._lock:
            tenant_ids = [tenant_id for tenant_id in self._unreleased if tenant_id not in self._running]
            self._unreleased.difference_update(tenant_ids)
        for tenant_id in tenant_ids:
            self._release(tenant_id)

    def _idle(self) -> bool:
        with self._lock:
            return not self._running

    def _claim(self, pool: ThreadPoolExecutor) -> int:
        with self._lock:
            free = self.concurrency - len(self._running)
        if free <= 0:
            return 0

        now = self.context.clock.now()
        upgrades = claim_due(self.context.store, self.owner, now, self.context.options.lease, free)
        for upgrade in upgrades:
            future = pool.submit(self._run_tenant, upgrade.tenant_id)
            with self._lock:
                self._running[upgrade.tenant_id] = future
            future.add_done_callback(lambda _, tenant_id=upgrade.tenant_id: self._finished(tenant_id))
        return len(upgrades)

    def _finished(self, tenant_id: str) -> None:
        with self._lock:
            self._running.pop(tenant_id, None)
        self._wake.set()

    def _wait(self) -> None:
        """Sleep until the next due time, a finished tenant, a wake-up or the poll interval.

        With every slot taken, no tenant can be claimed before a running one finishes,
        so the worker then waits for that or the poll interval. Reading the next due time
        there would return a past time and make the loop spin.
        """
        timeout = self.poll_interval
        if not self._full():
            with self.context.store.engine.connect() as connection:
                due = next_claimable_at(connection, self.context.clock.now())
            if due is not None:
                seconds = (due - self.context.clock.now()).total_seconds()
                timeout = max(0.0, min(timeout, seconds))
        self._wake.wait(timeout)
        self._wake.clear()

    def _full(self) -> bool:
        with self._lock:
            return len(self._running) >= self.concurrency

    def _drain(self) -> None:
        with self._lock:
            futures = list(self._running.values())
        for future in futures:
            future.result()

    def _run_tenant(self, tenant_id: str) -> None:
        """Run the tenant's steps while they are due at once, then release its lease."""
        try:
            for _ in range(self.max_steps_per_claim):
                if self._stop.is_set():
                    break
                start = _thread_cpu()
                started = time.monotonic()
                report = run_step(self.context, tenant_id, self.owner)
                self.stats.add(report, _thread_cpu() - start)
                if report.kind != "skip":
                    observe_step(report.state_before.value, report.kind, time.monotonic() - started)
                if not report.due_now:
                    break
        except LeaseLost as error:
            # Either another worker took the tenant, and the release below does nothing, or an
            # operator changed its state (rollback). Releasing lets the next claim start at once.
            with self.stats.lock:
                self.stats.leases_lost += 1
            logger.warning("lease lost: tenant=%s owner=%s error=%s", tenant_id, self.owner, error)
        except DBAPIError as error:
            logger.warning(
                "step interrupted, store unreachable: tenant=%s owner=%s error=%s; its lease is released once the store can be reached",
                tenant_id, self.owner, driver_message(error),
            )
            with self._lock:
                self._unreleased.add(tenant_id)
            return
        except Exception:
            logger.exception("step failed unexpectedly: tenant=%s owner=%s; it is retried when the lease expires", tenant_id, self.owner)
            return
        self._release(tenant_id)

    def _release(self, tenant_id: str) -> None:
        try:
            with self.context.store.write() as connection:
                release_lease(connection, tenant_id, self.owner)
        except DBAPIError as error:
            logger.warning(
                "lease not released, store unreachable: tenant=%s owner=%s error=%s; it is released once the store can be reached",
                tenant_id, self.owner, driver_message(error),
            )
            with self._lock:
                self._unreleased.add(tenant_id)


def _thread_cpu() -> float:
    return time.thread_time()
