"""The worker while PostgreSQL cannot be reached: it waits and goes on, and never exits."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest

from tests.fixtures.simulator import make_tenant

from tenanttls.migration.worker import Worker
from tenanttls.store.upgrades import list_upgrades


@pytest.fixture
def store_backend() -> str:
    """PostgreSQL only: the outage is a database that refuses connections."""
    return "postgresql"


def _eventually(check, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _states(harness) -> set[str]:
    with harness.store.engine.connect() as connection:
        return {upgrade.state for upgrade in list_upgrades(connection)}


def test_worker_waits_out_outage(engine_factory, database_outage, caplog):
    block, allow = database_outage
    tenants = [make_tenant() for _ in range(2)]
    harness = engine_factory(tenants, grace=timedelta(0))
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])
    url = harness.settings.database_url
    caplog.set_level(logging.INFO, logger="tenanttls.migration.worker")
    worker = Worker(harness.context, concurrency=2, poll_interval=0.05)
    block(url)

    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert _eventually(lambda: "store unreachable" in caplog.text)
        time.sleep(1.5)
        assert thread.is_alive()
        allow(url)

        assert _eventually(lambda: _states(harness) == {"completed"}, timeout=60)
    finally:
        allow(url)
        worker.stop()
        thread.join(30)

    assert not thread.is_alive()
    assert "store reachable again" in caplog.text
    assert "Traceback" not in caplog.text
    assert "password" not in caplog.text.lower()


def _lease_owners(harness) -> set[str | None]:
    with harness.store.engine.connect() as connection:
        return {upgrade.lease_owner for upgrade in list_upgrades(connection)}


def test_cut_off_step_lease_released(engine_factory, database_outage, caplog):
    """A step cut off by the outage gives its lease back once the store can be reached, long before it expires."""
    block, allow = database_outage
    tenant = make_tenant()
    # Slow requests keep a step running while the database goes away.
    harness = engine_factory([tenant], grace=timedelta(0), settings={"faults": {"latency_seconds": 0.5}})
    harness.enrol(tenant["tenant_id"])
    url = harness.settings.database_url
    caplog.set_level(logging.INFO, logger="tenanttls.migration.worker")
    worker = Worker(harness.context, concurrency=1, poll_interval=0.05)

    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert _eventually(lambda: _lease_owners(harness) == {worker.owner})
        block(url)
        assert _eventually(lambda: "step interrupted, store unreachable" in caplog.text)
        allow(url)

        # The harness's clock does not move, so the 5-minute lease never expires on its own.
        assert _eventually(lambda: _states(harness) == {"completed"}, timeout=90)
    finally:
        allow(url)
        worker.stop()
        thread.join(30)

    assert _lease_owners(harness) == {None}
    assert harness.context.options.lease == timedelta(minutes=5)
