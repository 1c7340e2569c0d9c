"""Prometheus metrics: the collectors, and ``tenanttls worker --metrics-port`` scraped over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.fixtures.simulator import make_tenant

from tenanttls.metrics import RelayCollector, TenantStateCollector, attempt_outcome, serve_metrics
from tenanttls.relay.queue import MessageQueue
from tenanttls.store.tenants import TenantRecord, save_tenant
from tenanttls.store.upgrades import create_upgrade

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("status", "throttled", "expected"),
    [(200, False, "ok"), (404, False, "client_error"), (429, True, "throttled"), (503, False, "server_error"), (None, False, "network_error")],
)
def test_attempt_outcome_labels(status, throttled, expected):
    assert attempt_outcome(status, throttled=throttled) == expected


def test_tenant_states_scraped(store):
    with store.write() as connection:
        for index in range(2):
            tenant_id = f"00000000-0000-4000-8000-{index:012d}"
            save_tenant(connection, TenantRecord(tenant_id, f"t{index}.onmicrosoft.com", "T"), NOW)
            create_upgrade(connection, tenant_id, NOW)
    server = serve_metrics(0, collectors=[TenantStateCollector(store)])
    try:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    finally:
        server.stop()

    assert 'tenanttls_tenants{state="awaiting_consent"} 2.0' in text
    assert 'tenanttls_tenants{state="needs_attention"} 0.0' in text


def _families(collector) -> dict[str, dict[tuple, float]]:
    return {
        family.name: {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}
        for family in collector.collect()
    }


def test_relay_deliveries_counted_once(tmp_path):
    queue = MessageQueue(tmp_path / "queue")
    outcomes = tmp_path / "queue" / "outcomes.jsonl"
    outcomes.write_text(json.dumps({"outcome": "delivered"}) + "\n")  # before the relay started: not counted
    collector = RelayCollector(queue)
    with outcomes.open("a") as handle:
        handle.write("\n".join(json.dumps({"outcome": result}) for result in ("delivered", "deferred", "delivered")) + "\n")
        handle.write('{"outcome": "bou')  # a line still being written

    first = _families(collector)
    with outcomes.open("a") as handle:
        handle.write('nced"}\n')
    second = _families(collector)

    assert first["tenanttls_relay_queue_depth"] == {(): 0}
    assert first["tenanttls_relay_deliveries"] == {(("result", "deferred"),): 1, (("result", "delivered"),): 2}
    assert second["tenanttls_relay_deliveries"][(("result", "bounced"),)] == 1
    assert second["tenanttls_relay_deliveries"][(("result", "delivered"),)] == 2


@pytest.mark.slow
def test_worker_serves_metrics(engine_factory, tmp_path):
    from tests.migration.test_crash_recovery import _write_config

    tenant = make_tenant()
    harness = engine_factory([tenant], wall_clock=True)
    harness.enrol(tenant["tenant_id"])
    config = tmp_path / "worker.toml"
    _write_config(harness, config)
    env = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    process = subprocess.Popen(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", "worker", "--config", str(config),
         "--poll", "0.2", "--metrics-port", "0", "--drift-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        address = None
        for _ in range(20):  # warnings such as the local CA's come first
            address = re.search(r"worker: metrics at (http://\S+)", process.stderr.readline())
            if address is not None:
                break
        assert address is not None
        text = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and 'tenanttls_tenants{state="completed"} 1.0' not in text:
            time.sleep(0.5)
            text = httpx.get(address.group(1)).text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)

    assert 'tenanttls_tenants{state="completed"} 1.0' in text
    assert re.search(r'tenanttls_step_duration_seconds_count\{outcome="advance",state="identity"\} [1-9]', text)
    assert re.search(r'tenanttls_microsoft_requests_total\{outcome="ok"\} [1-9]', text)


@pytest.mark.slow
def test_portal_serves_metrics(engine_factory, tmp_path):
    from tests.migration.test_crash_recovery import _write_config

    tenant = make_tenant()
    harness = engine_factory([tenant], wall_clock=True)
    harness.enrol(tenant["tenant_id"])
    config = tmp_path / "portal.toml"
    _write_config(harness, config)
    process = subprocess.Popen(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", "portal", "--config", str(config),
         "--port", "0", "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        address = None
        for _ in range(20):
            address = re.search(r"portal: metrics at (http://\S+)", process.stderr.readline())
            if address is not None:
                break
        assert address is not None
        text = httpx.get(address.group(1)).text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)

    assert 'tenanttls_tenants{state="awaiting_consent"} 1.0' in text


@pytest.mark.parametrize("store_backend", ["postgresql"])
def test_store_outage_scraped_as_down(store, store_url, database_outage):
    block, allow = database_outage
    collector = TenantStateCollector(store)
    before = _families(collector)

    block(store_url)
    during = _families(collector)
    allow(store_url)
    after = _families(collector)

    assert before["tenanttls_store_up"] == {(): 1.0}
    assert during == {"tenanttls_store_up": {(): 0.0}}
    assert after["tenanttls_store_up"] == {(): 1.0}
    assert "tenanttls_tenants" in after
