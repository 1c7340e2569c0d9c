"""The scheduled drift check shared by workers: each completed tenant checked once per interval."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest

from tenanttls.audit.drift import DRIFT_DETECTED, check_completed_tenants
from tenanttls.migration.wiring import build_context
from tenanttls.store.audit import list_events
from tenanttls.store.drift_checks import claim_drift_checks

from tests.fixtures.simulator import make_tenant
from tests.simulator.helpers import https_client

CONNECTOR = "CrosswareInboundConnector"
INTERVAL = timedelta(hours=6)


@pytest.fixture
def fleet(engine_factory):
    """Four completed tenants, each with drift, so that every check records ``drift.detected``."""
    tenants = [make_tenant() for _ in range(4)]
    harness = engine_factory(tenants, grace=timedelta(0))
    ids = sorted(tenant["tenant_id"] for tenant in tenants)
    harness.enrol(*ids)
    for tenant_id in ids:
        harness.run_until(tenant_id, "completed")
        harness.context.exchange.set_inbound_connector(tenant_id, CONNECTOR, {"RequireTls": False})
    return harness, ids


@pytest.fixture
def second_worker(fleet):
    """An engine context of a second worker: its own store connections and Microsoft clients."""
    harness, _ = fleet
    settings = dataclasses.replace(harness.settings, database_url=harness.store.url)
    context = build_context(
        settings, clock=harness.clock, options=harness.context.options, transport_options={"max_attempts": 1}
    )
    context.version = "test"
    yield context
    context.close()


def _checks(harness, ids: list[str]) -> dict[str, int]:
    """Return the number of drift checks per tenant, read from the audit trail."""
    with harness.store.engine.connect() as connection:
        return {tenant_id: len(list_events(connection, tenant_id, actions=(DRIFT_DETECTED,))) for tenant_id in ids}


def _connector_reads(harness, ids: list[str]) -> dict[str, int]:
    """Return the Get-InboundConnector requests per tenant that the simulator received."""
    with https_client(harness.simulator) as client:
        by_tenant = client.get("/_simulator/calls").json()["by_tenant"]
    return {tenant_id: by_tenant.get(tenant_id, {}).get("exchange:Get-InboundConnector", 0) for tenant_id in ids}


def _reset_calls(harness) -> None:
    with https_client(harness.simulator) as client:
        assert client.delete("/_simulator/calls").status_code == 204


def _run_together(contexts) -> list:
    """Run one drift pass in each context at once, claiming one tenant at a time, and return the passes."""
    results: list = [None] * len(contexts)
    start = threading.Barrier(len(contexts))

    def run(index: int) -> None:
        start.wait()
        results[index] = check_completed_tenants(contexts[index], interval=INTERVAL, batch=1)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(contexts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_workers_check_once(fleet, second_worker):
    harness, ids = fleet
    _reset_calls(harness)

    passes = _run_together([harness.context, second_worker])

    assert sum(result.checked for result in passes) == 4
    assert sum(result.failed for result in passes) == 0
    assert _checks(harness, ids) == {tenant_id: 1 for tenant_id in ids}
    assert _connector_reads(harness, ids) == {tenant_id: 1 for tenant_id in ids}


def test_two_workers_again_after_interval(fleet, second_worker):
    harness, ids = fleet
    _run_together([harness.context, second_worker])
    _reset_calls(harness)

    harness.clock.advance(INTERVAL.total_seconds() - 1)
    early = _run_together([harness.context, second_worker])
    harness.clock.advance(1)
    due = _run_together([harness.context, second_worker])

    assert sum(result.checked for result in early) == 0
    assert sum(result.checked for result in due) == 4
    assert _checks(harness, ids) == {tenant_id: 2 for tenant_id in ids}
    assert _connector_reads(harness, ids) == {tenant_id: 1 for tenant_id in ids}


def test_pass_skips_claimed(fleet, second_worker):
    harness, ids = fleet
    now = harness.clock.now()
    claimed = claim_drift_checks(harness.store, now - INTERVAL, now, 2)

    result = check_completed_tenants(second_worker, interval=INTERVAL)

    assert [claim.tenant_id for claim in claimed] == ids[:2]
    assert result.checked == 2
    assert _checks(harness, ids) == {ids[0]: 0, ids[1]: 0, ids[2]: 1, ids[3]: 1}


def test_crashed_claim_checked_after_interval(fleet, second_worker):
    harness, ids = fleet
    now = harness.clock.now()
    claim_drift_checks(harness.store, now - INTERVAL, now, 1)  # a worker that crashed before its check
    check_completed_tenants(second_worker, interval=INTERVAL)

    harness.clock.advance(INTERVAL.total_seconds())
    result = check_completed_tenants(second_worker, interval=INTERVAL)

    assert result.checked == 4
    assert _checks(harness, ids) == {ids[0]: 1, ids[1]: 2, ids[2]: 2, ids[3]: 2}


class _StopAfter(threading.Event):
    """A stop event that becomes set once it has been read `reads` times, so a pass stops mid-batch."""

    def __init__(self, reads: int) -> None:
        super().__init__()
        self.reads_left = reads

    def is_set(self) -> bool:
        self.reads_left -= 1
        if self.reads_left < 0:
            self.set()
        return super().is_set()


def test_stopped_pass_restores_claims(fleet):
    harness, ids = fleet

    # Read once before the claim and once before the first check, then set.
    stopped = check_completed_tenants(harness.context, interval=INTERVAL, stop=_StopAfter(2), batch=4)
    rest = check_completed_tenants(harness.context, interval=INTERVAL)

    assert stopped.checked == 1
    assert rest.checked == 3
    assert _checks(harness, ids) == {tenant_id: 1 for tenant_id in ids}
