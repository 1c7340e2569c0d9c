"""Prometheus metrics of the worker, the relay and the portal.

Each process serves its metrics at ``/metrics`` on its own port (``--metrics-port``),
apart from the SMTP listener and the portal's public pages. The metrics:

- ``tenanttls_tenants{state}``: upgrades in each state, read from the store at each scrape
  (worker and portal).
- ``tenanttls_step_duration_seconds{state,outcome}``: wall time of each step the worker ran.
- ``tenanttls_microsoft_requests_total{outcome}`` and ``tenanttls_microsoft_retries_total{outcome}``:
  HTTP attempts to Microsoft 365, and retries, by the outcome of the attempt (`attempt_outcome`).
- ``tenanttls_relay_queue_depth``: messages in the relay's queue.
- ``tenanttls_relay_deliveries_total{result}``: recipients by delivery result, counted from
  the queue's outcome file since the relay started.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Iterable

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# From a 5 ms store update to a step that waits 30 s for DNS to become visible.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

STEP_SECONDS = Histogram(
    "tenanttls_step_duration_seconds",
    "Wall time of one upgrade step, by the state it ran in and its outcome (advance, wait, retry, stop).",
    ["state", "outcome"],
    buckets=STEP_BUCKETS,
)
MICROSOFT_REQUESTS = Counter(
    "tenanttls_microsoft_requests",
    "HTTP attempts sent to Microsoft 365, by outcome: ok, client_error, throttled, server_error, network_error.",
    ["outcome"],
)
MICROSOFT_RETRIES = Counter(
    "tenanttls_microsoft_retries",
    "Attempts to Microsoft 365 repeated after a wait, by the outcome of the attempt that was retried.",
    ["outcome"],
)

OUTCOMES_FILE = "outcomes.jsonl"


def attempt_outcome(status: int | None, *, throttled: bool = False) -> str:
    """Return the label of one HTTP attempt: its status class, throttling, or a network error (no status)."""
    if throttled:
        return "throttled"
    if status is None:
        return "network_error"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


def observe_step(state: str, outcome: str, seconds: float) -> None:
    """Record the wall time of one step."""
    STEP_SECONDS.labels(state=state, outcome=outcome).observe(seconds)


class TenantStateCollector(Collector):
    """``tenanttls_tenants{state}``, counted in the store at each scrape, and ``tenanttls_store_up``.

    While the store cannot be read, the scrape still succeeds: ``tenanttls_store_up`` is 0
    and the tenant counts are left out, so the process's other metrics stay visible.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from sqlalchemy.exc import DBAPIError

        from tenanttls.migration.states import UpgradeState
        from tenanttls.store.db import driver_message
        from tenanttls.store.upgrades import count_by_state

        up = GaugeMetricFamily("tenanttls_store_up", "1 if the last scrape could read the store, else 0.")
        try:
            with self.store.engine.connect() as connection:
                counts = count_by_state(connection)
        except DBAPIError as error:
            logger.warning("metrics: store unreachable, tenant counts left out: error=%s", driver_message(error))
            up.add_metric([], 0)
            yield up
            return

        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily("tenanttls_tenants", "Tenants by upgrade state.", labels=["state"])
        # Every state gets a series, 0 included, so that graphs and alerts see no gaps.
        for state in sorted({state.value for state in UpgradeState} | set(counts)):
            family.add_metric([state], counts.get(state, 0))
        yield family


class RelayCollector(Collector):
    """The relay's queue depth, and its deliveries by result from the queue's outcome file.

    The file is read from where the previous scrape stopped, so each line is counted
    once. Counting starts at the file's end when the collector is created, so the
    counters cover this process, as Prometheus expects of a counter.
    """

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self._path = Path(queue.directory) / OUTCOMES_FILE
        self._offset = self._path.stat().st_size if self._path.exists() else 0
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _read_new_lines(self) -> None:
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return
        # Count only whole lines; a line being written now is counted at the next scrape.
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                result = str(json.loads(line).get("outcome", "unknown"))
            except (ValueError, AttributeError):
                continue  # a line cut short by a crash
            self._counts[result] = self._counts.get(result, 0) + 1

    def collect(self) -> Iterable[Any]:
        with self._lock:
            self._read_new_lines()
            counts = dict(self._counts)

        depth = GaugeMetricFamily("tenanttls_relay_queue_depth", "Messages in the relay's queue.")
        depth.add_metric([], len(self.queue))
        yield depth

        deliveries = CounterMetricFamily(
            "tenanttls_relay_deliveries",
            "Recipients by delivery result (delivered, deferred, bounced, dropped, expired, possible-duplicate).",
            labels=["result"],
        )
        for result, count in sorted(counts.items()):
            deliveries.add_metric([result], count)
        yield deliveries


class MetricsServer:
    """A running ``/metrics`` listener: its `port`, and `stop()`."""

    def __init__(self, port: int, host: str, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)
        for collector in self._collectors:
            REGISTRY.register(collector)
        self._server, self._thread = start_http_server(port, addr=host)
        self.host = host
        self.port = self._server.server_port
        logger.info("metrics: listening on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        """Close the listener and unregister the collectors."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        for collector in self._collectors:
            REGISTRY.unregister(collector)


def serve_metrics(port: int, host: str = "127.0.0.1", collectors: Iterable[Collector] = ()) -> MetricsServer:
    """Serve ``/metrics`` on `host`:`port` (0: a free port) in a thread, with `collectors` added.

    The collectors join the process's default registry, next to the counters above.
    """
    return MetricsServer(port, host, collectors)
