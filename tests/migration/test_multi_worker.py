"""Several worker processes on one PostgreSQL store, killed and restarted at random.

500 simulated tenants are upgraded by three ``tenanttls worker`` processes. A seeded
random schedule sends SIGKILL to one of them every few seconds and starts a new one
in its place. Afterwards every tenant must be completed, with one transition to
completed, one new connector and one Graph domain. The workers' logs must show no two
processes running a step of the same tenant at overlapping times, and no live worker
may have lost a lease.

Five seeds run by default, one after the other in one pytest process (their
``xdist_group``), so two fleets never compete for the CPUs. ``TENANTTLS_MULTI_WORKER_SEEDS``
picks others:

    TENANTTLS_MULTI_WORKER_SEEDS=6 .venv/bin/python -m pytest tests/migration/test_multi_worker.py
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fixtures.simulator import make_tenant

from tenanttls.store.schema import audit_events
from tenanttls.store.upgrades import count_by_state, list_upgrades

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900), pytest.mark.xdist_group("multi_worker")]

TENANTS = 500
WORKERS = 3
CONCURRENCY = 8
# Longer than any step takes here, so only a killed worker's tenants change hands.
LEASE_SECONDS = 30
MAX_KILLS = 6
COMPLETION_TIMEOUT = 600.0

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")
STEP_START = re.compile(r"^step: tenant=(\S+) state=(\S+)")
STEP_END = re.compile(r"^step (?:done|stopped, tenant needs attention): tenant=(\S+) state=(\S+)")


def _seeds() -> list[int]:
    value = os.environ.get("TENANTTLS_MULTI_WORKER_SEEDS", "1,2,3,4,5")
    return [int(seed) for seed in value.split(",") if seed.strip()]


@pytest.fixture
def store_backend() -> str:
    """This test is about PostgreSQL, the store for several workers."""
    return "postgresql"


@dataclass
class WorkerRun:
    """One worker process from start to exit (or kill), with its log file."""

    index: int
    log: Path
    process: subprocess.Popen
    killed_at: datetime | None = None


@dataclass
class Fleet:
    """The worker processes of one test: start, kill and replace them by PID."""

    config: Path
    folder: Path
    runs: list[WorkerRun] = field(default_factory=list)

    def start(self, index: int) -> WorkerRun:
        log = self.folder / f"worker-{len(self.runs)}.log"
        env = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        with log.open("w") as stream:
            process = subprocess.Popen(
                [sys.executable, "-c", "from tenanttls.cli import main; main()", "-v", "worker", "--config", str(self.config),
                 "--concurrency", str(CONCURRENCY), "--poll", "0.3", "--drift-interval", "0"],
                stdout=subprocess.DEVNULL, stderr=stream, env=env,
            )
        run = WorkerRun(index, log, process)
        self.runs.append(run)
        return run

    def live(self) -> list[WorkerRun]:
        return [run for run in self.runs if run.process.poll() is None]

    def kill(self, run: WorkerRun) -> None:
        run.process.send_signal(signal.SIGKILL)
        run.process.wait(timeout=30)
        run.killed_at = datetime.now()

    def stop_all(self) -> None:
        for run in self.live():
            run.process.send_signal(signal.SIGTERM)
        for run in self.runs:
            try:
                run.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait(timeout=10)


def _write_config(harness, path: Path) -> None:
    settings = harness.settings
    keys = ("database_url", "login_url", "graph_url", "exchange_url", "client_id", "client_certificate", "client_key",
            "microsoft_ca_bundle", "key_encryption_key", "dns_server")
    lines = ["[tenanttls]", f'data_dir = "{settings.data_dir}"', 'grace = "1s"', f'lease = "{LEASE_SECONDS}s"',
             "max_attempts = 20", "requests_per_second = 400", "request_burst = 100"]
    lines += [f'{key} = "{getattr(settings, key)}"' for key in keys]
    path.write_text("\n".join(lines) + "\n")


def _states(harness) -> dict[str, int]:
    with harness.store.engine.connect() as connection:
        return count_by_state(connection)


def _step_intervals(run: WorkerRun) -> list[tuple[str, str, datetime, datetime]]:
    """Return (tenant, state, start, end) of each step the run's log shows; a killed step ends at the kill."""
    open_steps: dict[str, tuple[str, datetime]] = {}
    intervals = []
    for line in run.log.read_text(errors="replace").splitlines():
        parsed = LOG_LINE.match(line)
        if parsed is None:
            continue
        at = datetime.strptime(parsed.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if start := STEP_START.match(parsed.group(2)):
            open_steps[start.group(1)] = (start.group(2), at)
        elif end := STEP_END.match(parsed.group(2)):
            state, started = open_steps.pop(end.group(1))
            intervals.append((end.group(1), state, started, at))

    if open_steps:
        assert run.killed_at is not None, f"worker run {run.log.name} left steps without an end: {sorted(open_steps)}"
    for tenant_id, (state, started) in open_steps.items():
        intervals.append((tenant_id, state, started, run.killed_at))
    return intervals


@pytest.mark.parametrize("seed", _seeds())
def test_killed_workers_complete_fleet(engine_factory, postgres_url, tmp_path, seed):
    tenants = [make_tenant() for _ in range(TENANTS)]
    harness = engine_factory(tenants, wall_clock=True, store_url=postgres_url)
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])
    config = tmp_path / "worker.toml"
    _write_config(harness, config)
    fleet = Fleet(config, tmp_path)
    rng = random.Random(seed)

    try:
        for index in range(WORKERS):
            fleet.start(index)
        kills = 0
        deadline = time.monotonic() + COMPLETION_TIMEOUT
        while _states(harness) != {"completed": TENANTS} and time.monotonic() < deadline:
            time.sleep(rng.uniform(2.0, 6.0))
            if kills < MAX_KILLS:
                victim = rng.choice(fleet.live())
                fleet.kill(victim)
                kills += 1
                time.sleep(rng.uniform(0.0, 1.0))
                fleet.start(victim.index)
    finally:
        fleet.stop_all()

    assert kills == MAX_KILLS
    assert _states(harness) == {"completed": TENANTS}

    with harness.store.engine.connect() as connection:
        assert {upgrade.lease_owner for upgrade in list_upgrades(connection)} == {None}
        completions = connection.execute(
            select(audit_events.c.tenant_id, audit_events.c.after).where(audit_events.c.action == "state")
        ).all()
    completed = [tenant_id for tenant_id, after in completions if (after or {}).get("state") == "completed"]
    assert sorted(completed) == sorted(tenant["tenant_id"] for tenant in tenants)

    for tenant in tenants:
        operations = [mutation["operation"] for mutation in harness.simulator.state.mutations(tenant["tenant_id"])]
        assert operations.count("New-InboundConnector") == 1, (tenant["tenant_id"], operations)
        assert operations.count("add-domain") == 1, (tenant["tenant_id"], operations)

    intervals = [interval for run in fleet.runs for interval in [(run, *step) for step in _step_intervals(run)]]
    by_tenant: dict[str, list] = {}
    for run, tenant_id, state, started, ended in intervals:
        by_tenant.setdefault(tenant_id, []).append((started, ended, run.log.name, state))
    assert set(by_tenant) == {tenant["tenant_id"] for tenant in tenants}
    for tenant_id, steps in by_tenant.items():
        steps.sort()
        for earlier, later in zip(steps, steps[1:]):
            assert later[0] >= earlier[1], f"tenant {tenant_id}: step {later} started before step {earlier} ended"

    logs = "".join(run.log.read_text(errors="replace") for run in fleet.runs)
    assert "lease lost" not in logs
    assert "step failed unexpectedly" not in logs
    assert "Traceback" not in logs
