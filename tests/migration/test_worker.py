"""The worker: runs several tenants at once to the end, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from tests.fixtures.simulator import make_tenant

from tenanttls.migration.worker import Worker
from tenanttls.store.upgrades import list_upgrades


def _states(harness) -> dict[str, str]:
    with harness.store.engine.connect() as connection:
        return {upgrade.tenant_id: upgrade.state for upgrade in list_upgrades(connection)}


def test_worker_completes_fleet(engine_factory):
    tenants = [make_tenant() for _ in range(4)]
    harness = engine_factory(tenants, grace=timedelta(0))
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])
    worker = Worker(harness.context, concurrency=2, poll_interval=0.05)

    stats = worker.run(until=lambda: set(_states(harness).values()) == {"completed"})

    assert set(_states(harness).values()) == {"completed"}
    assert stats.advances == 4 * 9
    assert stats.stops == 0
    assert sum(stats.steps_by_state.values()) == stats.steps


def test_worker_releases_leases(engine_factory):
    tenants = [make_tenant() for _ in range(2)]
    harness = engine_factory(tenants, grace=timedelta(0))
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])

    Worker(harness.context, concurrency=2, poll_interval=0.05).run(until=lambda: set(_states(harness).values()) == {"completed"})

    with harness.store.engine.connect() as connection:
        owners = [upgrade.lease_owner for upgrade in list_upgrades(connection)]
    assert owners == [None, None]


def test_worker_stop_returns(engine_factory):
    tenant = make_tenant(consent=False)
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    worker = Worker(harness.context, concurrency=1, poll_interval=0.05)

    import threading

    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(0.5)
    worker.stop()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert harness.upgrade(tenant["tenant_id"]).lease_owner is None


@pytest.mark.slow
def test_sigterm_stops_worker_process(engine_factory, tmp_path):
    from tests.migration.test_crash_recovery import _write_config

    tenant = make_tenant(consent=False)
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    config = tmp_path / "worker.toml"
    _write_config(harness, config)
    env = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", "-v", "worker", "--config", str(config), "--poll", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and harness.upgrade(tenant["tenant_id"]).attempts == 0 and harness.upgrade(tenant["tenant_id"]).next_attempt_at <= harness.clock.now():
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, stderr[-2000:]
    assert "worker stopping: signal=SIGTERM" in stderr
    assert "worker stopped" in stderr
    assert "step: tenant=" + tenant["tenant_id"] in stderr


@pytest.mark.postgres
def test_workers_on_postgres(engine_factory, postgres_url):
    tenants = [make_tenant() for _ in range(4)]
    harness = engine_factory(tenants, grace=timedelta(0), store_url=postgres_url)
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])
    first = Worker(harness.context, concurrency=2, poll_interval=0.05, owner="pg-1")
    second = Worker(harness.context, concurrency=2, poll_interval=0.05, owner="pg-2")

    import threading

    done = lambda: set(_states(harness).values()) == {"completed"}  # noqa: E731
    thread = threading.Thread(target=second.run, kwargs={"until": done})
    thread.start()
    first.run(until=done)
    thread.join(timeout=60)

    assert set(_states(harness).values()) == {"completed"}
    assert first.stats.leases_lost + second.stats.leases_lost == 0
    for tenant in tenants:
        names = sorted(c.name for c in harness.context.exchange.get_inbound_connectors(tenant["tenant_id"]))
        assert names == ["CrosswareInboundConnector", "CrosswareInboundConnector-BACKUP"]


def test_worker_runs_periodic_task(engine_factory):
    import threading

    from tenanttls.migration.worker import PeriodicTask

    tenant = make_tenant(consent=False)
    harness = engine_factory([tenant])
    harness.enrol(tenant["tenant_id"])
    passes: list[bool] = []
    ran_twice = threading.Event()

    def record(stop: threading.Event) -> None:
        passes.append(stop.is_set())
        if len(passes) == 1:
            raise RuntimeError("a failing pass must not end the schedule")
        ran_twice.set()

    worker = Worker(harness.context, concurrency=1, poll_interval=0.05, periodic=(PeriodicTask("probe", 0.05, record),))
    thread = threading.Thread(target=worker.run)
    thread.start()

    assert ran_twice.wait(10)
    worker.stop()
    thread.join(10)

    assert not thread.is_alive()
    assert len(passes) >= 2
    assert passes[0] is False
