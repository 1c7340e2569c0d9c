"""Fleet benchmark: N simulated tenants through the whole upgrade, against the simulator on 127.0.0.1.

Prints (and with --json writes) tenants per minute, Microsoft API calls per tenant
against the minimum the plan needs, and the worker's CPU time per step.

    .venv/bin/python benchmarks/fleet_bench.py --tenants 2000 --concurrency 16

The simulator, the built-in DNS server and the store (SQLite) run in this process;
the worker's CPU is measured per step with the step thread's CPU clock, so the
simulator's own work is not counted in it. The grace period is 1 s and the clients'
rate budget is raised (the simulator is local), so the figures show the engine's
own cost, not Microsoft's propagation delays or throttling.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx

from tenanttls.clock import OffsetClock
from tenanttls.config import Settings
from tenanttls.dns.server import BuiltinDnsServer
from tenanttls.domain.exchange import InboundConnector
from tenanttls.migration.context import EngineOptions
from tenanttls.migration.credentials import write_app_credentials, write_key_encryption_key
from tenanttls.migration.demo import prepare_data_dir
from tenanttls.migration.fleet import generate_fleet
from tenanttls.migration.planner import Desired, Observation, plan_tenant, stamp_comment
from tenanttls.migration.report import fleet_report
from tenanttls.migration.service import add_tenant, request_upgrades
from tenanttls.migration.states import TERMINAL, UpgradeState
from tenanttls.migration.wiring import build_context
from tenanttls.migration.worker import Worker
from tenanttls.simulator import Simulator
from tenanttls.store.db import open_store
from tenanttls.store.tenants import TenantRecord
from tenanttls.store.upgrades import count_by_state

# Reads no correct plan can skip: the Graph domain, its verification records, the
# accepted domains and the inbound connectors.
MINIMUM_READS = 4


def minimum_calls(seed_tenant: dict, zone: str) -> int:
    """Return the Microsoft calls the plan of a fresh tenant needs: its writes plus `MINIMUM_READS`."""
    observation = Observation(
        tenant_id=seed_tenant["tenant_id"], state="awaiting_consent", has_certificate=False, graph_domain=None,
        accepted_domains=[], connectors=[InboundConnector.from_exchange(raw) for raw in seed_tenant["inbound_connectors"]],
        snapshot=None, relay_mode="legacy", grace_until=None,
    )
    desired = Desired("CrosswareInboundConnector", "*.crossware.co.nz", zone, f"x.{zone}", stamp_comment("bench", "run", _now()))
    plan = plan_tenant(observation, desired)
    return sum(1 for change in plan.changes if change.writes_microsoft) + MINIMUM_READS


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def run(tenants: int, concurrency: int, data: Path | None, progress_every: float) -> dict:
    data_dir = prepare_data_dir(data)
    clock = OffsetClock()
    fleet = generate_fleet(tenants, awkward=False, seed=7)
    credentials = write_app_credentials(data_dir / "app")
    store = open_store(f"sqlite:///{(data_dir / 'tenanttls.db').resolve()}", create=True)
    dns_server = BuiltinDnsServer(store.engine, "crosswaretls.com", host="127.0.0.1", port=0, clock=clock).start()
    seed = {
        "app": {"client_id": credentials.client_id, "certificates": [credentials.certificate_pem]},
        "tenants": [tenant.seed for tenant in fleet],
    }
    simulator = Simulator(data_dir / "simulator", seed=seed, dns_nameserver=f"127.0.0.1:{dns_server.port}", clock=clock).start()
    try:
        settings = Settings(
            data_dir=data_dir, login_url=simulator.base_url, graph_url=simulator.base_url, exchange_url=simulator.base_url,
            client_id=credentials.client_id, client_certificate=str(credentials.certificate_path),
            client_key=f"file:{credentials.key_path}", microsoft_ca_bundle=str(simulator.ca_path),
            key_encryption_key=write_key_encryption_key(data_dir / "kek"), dns_server=f"127.0.0.1:{dns_server.port}",
        )
        options = EngineOptions(grace=timedelta(seconds=1), lease=timedelta(minutes=2), retry_base=timedelta(milliseconds=200),
                                retry_cap=timedelta(seconds=2), consent_poll=timedelta(seconds=1),
                                accepted_poll=timedelta(milliseconds=500), dns_visible_timeout=10.0)
        context = build_context(settings, store=store, clock=clock, options=options,
                                transport_options={"requests_per_second": 2000.0, "burst": 200, "tenant_concurrency": 3})
        context.version = "bench"

        now = clock.now()
        with store.write() as connection:
            for tenant in fleet:
                add_tenant(connection, TenantRecord(tenant.tenant_id, tenant.initial_domain, tenant.display_name),
                           legacy_certificate_name=settings.legacy_certificate_name, now=now, actor="bench")
        with httpx.Client(base_url=simulator.base_url, verify=str(simulator.ca_path), timeout=60) as client:
            for tenant in fleet:
                client.post(f"/_simulator/tenants/{tenant.tenant_id}/consent", json={"granted": True}).raise_for_status()

        started = time.monotonic()
        cpu_started = time.process_time()
        request_upgrades(store, None, now=clock.now(), actor="bench")
        worker = Worker(context, concurrency=concurrency, poll_interval=0.2, owner="bench")
        stop_progress = threading.Event()

        def counts() -> dict[str, int]:
            with store.engine.connect() as connection:
                return count_by_state(connection)

        def print_progress() -> None:
            while not stop_progress.wait(progress_every):
                line = "  ".join(f"{state} {count}" for state, count in sorted(counts().items()))
                print(f"progress after {time.monotonic() - started:.0f} s: {line}", file=sys.stderr, flush=True)

        progress = threading.Thread(target=print_progress, daemon=True)
        progress.start()
        try:
            stats = worker.run(until=lambda: all(UpgradeState(state) in TERMINAL for state in counts()))
        finally:
            stop_progress.set()
        wall = time.monotonic() - started
        process_cpu = time.process_time() - cpu_started
        report = fleet_report(store, clock.now(), wall)
        context.close()
    finally:
        simulator.stop()
        dns_server.stop()
        store.close()

    completed = [tenant for tenant in report.tenants if tenant.state == UpgradeState.COMPLETED.value]
    calls = sorted(tenant.api_calls for tenant in completed)
    return {
        "tenants": tenants,
        "completed": len(completed),
        "states": report.counts(),
        "concurrency": concurrency,
        "wall_seconds": round(wall, 1),
        "tenants_per_minute": round(len(completed) / wall * 60, 1),
        "api_calls_per_tenant": {
            "mean": round(sum(calls) / len(calls), 2) if calls else None,
            "min": calls[0] if calls else None,
            "max": calls[-1] if calls else None,
            "plan_minimum": minimum_calls(fleet[0].seed, settings.provider_zone),
        },
        "worker_cpu_ms_per_step": {
            state: round(stats.cpu_by_state[state] / stats.steps_by_state[state] * 1000, 2)
            for state in sorted(stats.steps_by_state)
        },
        "steps_by_state": dict(sorted(stats.steps_by_state.items())),
        "retries": stats.retries,
        "process_cpu_seconds": round(process_cpu, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000, help="simulated tenants (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="tenants the worker runs at once (default 16)")
    parser.add_argument("--data", type=Path, default=None, help="empty data folder (default: a new temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines on stderr")
    arguments = parser.parse_args()

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    result = run(arguments.tenants, arguments.concurrency, arguments.data, arguments.progress)

    calls = result["api_calls_per_tenant"]
    print(f"tenants: {result['completed']}/{result['tenants']} completed in {result['wall_seconds']} s "
          f"with {result['concurrency']} at once: {result['tenants_per_minute']} tenants per minute")
    print(f"API calls per tenant: mean {calls['mean']}, min {calls['min']}, max {calls['max']}; "
          f"the plan needs at least {calls['plan_minimum']}")
    print("worker CPU per step (ms): " + ", ".join(f"{state} {ms}" for state, ms in result["worker_cpu_ms_per_step"].items()))
    print(f"retries: {result['retries']}; process CPU (worker, simulator, DNS): {result['process_cpu_seconds']} s")
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
