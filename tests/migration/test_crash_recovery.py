"""Crash recovery: a worker process killed at every step boundary, then restarted, converges.

The worker runs as a child process (``tenanttls worker``) against a real SQLite file,
the built-in DNS server and the simulator, which live in the test process. The
``TENANTTLS_CRASH_AT`` hook makes each run SIGKILL itself at its first boundary of
one kind, so consecutive runs stop after every change (``change``: applied in
Microsoft 365, state not yet committed) or every committed step (``step``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests.fixtures.simulator import legacy_connector, make_tenant

from tenanttls.clock import SystemClock
from tenanttls.store.snapshots import list_snapshots
from tenanttls.store.upgrades import get_upgrade

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MAX_RUNS = 40


def _write_config(harness, path):
    settings = harness.settings
    keys = ("login_url", "graph_url", "exchange_url", "client_id", "client_certificate", "client_key",
            "microsoft_ca_bundle", "key_encryption_key", "dns_server")
    lines = ["[tenanttls]", f'data_dir = "{settings.data_dir}"', 'grace = "1s"', 'lease = "3s"', "max_attempts = 20"]
    lines += [f'{key} = "{getattr(settings, key)}"' for key in keys]
    if settings.database_url:
        lines.append(f'database_url = "{settings.database_url}"')
    path.write_text("\n".join(lines) + "\n")


def _run_worker(config, crash_at: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    if crash_at:
        env["TENANTTLS_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", "worker", "--config", str(config),
         "--exit-when-idle", "--poll", "0.2", "--concurrency", "2"],
        capture_output=True, text=True, timeout=120, env=env,
    )


@pytest.fixture
def store_backend() -> str:
    """SQLite only: test_multi_worker.py kills and restarts workers on PostgreSQL, and CI time is short."""
    return "sqlite"


@pytest.fixture
def crash_harness(engine_factory, tmp_path):
    original = legacy_connector()
    original["Comment"] = "Crossware email signatures"
    tenants = [make_tenant(inbound_connectors=[dict(original)]) for _ in range(2)]
    harness = engine_factory(tenants)
    # The child worker uses the wall clock; move the shared ManualClock to now so both agree.
    harness.clock.set(datetime.now(timezone.utc))
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])
    config = tmp_path / "worker.toml"
    _write_config(harness, config)
    return harness, config, [tenant["tenant_id"] for tenant in tenants], original


def _converge(harness, config, kind: str) -> int:
    """Run workers that crash at their first `kind` boundary until one exits normally; return the crashes."""
    crashes = 0
    for _ in range(MAX_RUNS):
        harness.clock.set(SystemClock().now())
        result = _run_worker(config, f"{kind}:1")
        if result.returncode == -signal.SIGKILL:
            crashes += 1
            continue
        assert result.returncode == 0, result.stderr[-3000:]
        return crashes
    raise AssertionError(f"the worker still crashed after {MAX_RUNS} runs")


def _assert_converged(harness, tenant_ids, original):
    for tenant_id in tenant_ids:
        with harness.store.engine.connect() as connection:
            upgrade = get_upgrade(connection, tenant_id)
            snapshots = list_snapshots(connection, tenant_id)
        assert upgrade.state == "completed", upgrade.last_error

        connectors = harness.context.exchange.get_inbound_connectors(tenant_id)
        names = [connector.name for connector in connectors]
        assert sorted(names) == ["CrosswareInboundConnector", "CrosswareInboundConnector-BACKUP"]
        unique = harness.context.identities.get(tenant_id).name
        assert [c.name for c in connectors if c.tls_sender_certificate_name == unique] == ["CrosswareInboundConnector"]

        [snapshot] = [item for item in snapshots if item.reason == "before-rename"]
        for key in ("Name", "TlsSenderCertificateName", "RequireTls", "RestrictDomainsToCertificate", "Comment", "Enabled"):
            assert snapshot.connector[key] == original[key], key


def test_crash_after_every_change(crash_harness):
    harness, config, tenant_ids, original = crash_harness

    crashes = _converge(harness, config, "change")

    # 6 changes per tenant (allocate, add, TXT, verify, rename, create). Two tenants run at
    # once, so a kill can also cut the other tenant's request short, and some changes
    # then happen unrecorded in a run that crashed for the other tenant.
    assert crashes >= 6
    _assert_converged(harness, tenant_ids, original)


def test_crash_after_every_step(crash_harness):
    harness, config, tenant_ids, original = crash_harness

    crashes = _converge(harness, config, "step")

    assert crashes >= 9  # 9 state changes per tenant, two tenants at once (see above)
    _assert_converged(harness, tenant_ids, original)


def test_crash_during_rollback(crash_harness):
    from tenanttls.migration.service import request_rollback

    harness, config, tenant_ids, original = crash_harness
    _converge(harness, config, "step")
    for tenant_id in tenant_ids:
        request_rollback(harness.store, tenant_id, now=SystemClock().now() - timedelta(seconds=1), actor="test")

    _converge(harness, config, "change")

    for tenant_id in tenant_ids:
        with harness.store.engine.connect() as connection:
            assert get_upgrade(connection, tenant_id).state == "rolled_back"
        connectors = harness.context.exchange.get_inbound_connectors(tenant_id)
        assert [c.name for c in connectors] == ["CrosswareInboundConnector"]
        assert connectors[0].tls_sender_certificate_name == "*.crossware.co.nz"
