"""Fleet benchmark: N simulated tenants through the whole upgrade, against the simulator on 127.0.0.1.

Prints (and with --json writes) tenants per minute, Microsoft API calls per tenant
against the minimum the plan needs, and the worker's CPU time per step.

    .venv/bin/python benchmarks/fleet_bench.py --tenants 2000 --concurrency 16

The simulator, the built-in DNS server and the store (SQLite) run in this process;
the worker's CPU is measured per step with the step thread's CPU clock, so the
simulator's own work is not counted in it. The grace period is 1 s and the clients'
rate budget is raised (the simulator is local), so the figures show the engine's
own cost, not Microsoft's propagation delays or throttling.

With ``--workers N`` the tenants are upgraded by N ``tenanttls worker`` processes on
one store (``--backend sqlite`` or ``postgresql``, a PostgreSQL 15 server started for
the run), all drawing from the store's shared request budget (``--budget`` requests
per second). It then also prints the share of that budget used and the throttling
responses the simulator sent: it rejects Exchange requests above 3 in flight per tenant.

    .venv/bin/python benchmarks/fleet_bench.py --tenants 1000 --workers 4 --backend postgresql --concurrency 16

With ``--matrix`` it runs several such configurations one after the other in one
invocation, each on a fresh simulator and store, and prints one table:

    .venv/bin/python benchmarks/fleet_bench.py --tenants 10000 --matrix 1:sqlite,1:postgresql,2:postgresql,4:postgresql
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchdata import add_keep_data_option, finish, new_folder, print_note  # noqa: E402
from pgserver import PostgresServer  # noqa: E402

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


class Bench:
    """The simulator, the built-in DNS server and a store of `backend`, with the fleet imported and consented.

    Without `data` it works in a new temporary folder, which `close` removes unless
    `keep_data`. A `data` folder belongs to the user and is never removed.
    """

    def __init__(self, tenants: int, backend: str, data: Path | None, budget: tuple[float, int] | None,
                 scope: str = "store", keep_data: bool = False) -> None:
        if data is not None:
            print_note(f"data folder (given): {data}")
        self.keep_data = keep_data
        self.temporary_data = data is None
        self.data_dir = prepare_data_dir(data or new_folder("tenanttls-fleet-bench-"))
        self.clock = OffsetClock()
        self.fleet = generate_fleet(tenants, awkward=False, seed=7)
        self.postgres = PostgresServer().start() if backend == "postgresql" else None
        url = self.postgres.create_database("tenanttls") if self.postgres else f"sqlite:///{(self.data_dir / 'tenanttls.db').resolve()}"
        credentials = write_app_credentials(self.data_dir / "app")
        self.store = open_store(url, create=True)
        self.dns_server = BuiltinDnsServer(self.store.engine, "crosswaretls.com", host="127.0.0.1", port=0, clock=self.clock).start()
        seed = {
            "app": {"client_id": credentials.client_id, "certificates": [credentials.certificate_pem]},
            "tenants": [tenant.seed for tenant in self.fleet],
            # Exchange rejects requests above a per-tenant limit on requests in flight; 3 is an
            # estimate (Microsoft does not state the number). Each rejection counts as throttling.
            "settings": {"faults": {"max_concurrent_requests": 3}},
        }
        self.simulator = Simulator(self.data_dir / "simulator", seed=seed, dns_nameserver=f"127.0.0.1:{self.dns_server.port}",
                                   clock=self.clock).start()
        rate, burst = budget or (2000.0, 200)
        self.settings = Settings(
            data_dir=self.data_dir, database_url=url if self.postgres else "", login_url=self.simulator.base_url,
            graph_url=self.simulator.base_url, exchange_url=self.simulator.base_url,
            client_id=credentials.client_id, client_certificate=str(credentials.certificate_path),
            client_key=f"file:{credentials.key_path}", microsoft_ca_bundle=str(self.simulator.ca_path),
            key_encryption_key=write_key_encryption_key(self.data_dir / "kek"), dns_server=f"127.0.0.1:{self.dns_server.port}",
            requests_per_second=rate, request_burst=burst, request_budget=scope if budget else "process",
        )

        now = self.clock.now()
        with self.store.write() as connection:
            for tenant in self.fleet:
                add_tenant(connection, TenantRecord(tenant.tenant_id, tenant.initial_domain, tenant.display_name),
                           legacy_certificate_name=self.settings.legacy_certificate_name, now=now, actor="bench")
        with self.http() as client:
            for tenant in self.fleet:
                client.post(f"/_simulator/tenants/{tenant.tenant_id}/consent", json={"granted": True}).raise_for_status()

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.simulator.base_url, verify=str(self.simulator.ca_path), timeout=60)

    def counts(self) -> dict[str, int]:
        with self.store.engine.connect() as connection:
            return count_by_state(connection)

    def finished(self) -> bool:
        return all(UpgradeState(state) in TERMINAL for state in self.counts())

    def close(self, *, failed: bool = False) -> None:
        """Stop the servers, then remove the data folders unless they are kept or the run failed."""
        self.simulator.stop()
        self.dns_server.stop()
        self.store.close()
        if self.postgres:
            self.postgres.stop(keep=self.keep_data, failed=failed)
        if self.temporary_data:
            finish(self.data_dir, keep=self.keep_data, failed=failed)


def _progress(bench: Bench, started: float, every: float) -> threading.Event:
    stop = threading.Event()

    def print_progress() -> None:
        while not stop.wait(every):
            line = "  ".join(f"{state} {count}" for state, count in sorted(bench.counts().items()))
            print(f"progress after {time.monotonic() - started:.0f} s: {line}", file=sys.stderr, flush=True)

    threading.Thread(target=print_progress, daemon=True).start()
    return stop


def run(tenants: int, concurrency: int, data: Path | None, progress_every: float, keep_data: bool = False) -> dict:
    """Run one worker in this process (the first version of this benchmark), on SQLite."""
    bench = Bench(tenants, "sqlite", data, None, keep_data=keep_data)
    completed = False
    try:
        options = EngineOptions(grace=timedelta(seconds=1), lease=timedelta(minutes=2), retry_base=timedelta(milliseconds=200),
                                retry_cap=timedelta(seconds=2), consent_poll=timedelta(seconds=1),
                                accepted_poll=timedelta(milliseconds=500), dns_visible_timeout=10.0)
        context = build_context(bench.settings, store=bench.store, clock=bench.clock, options=options,
                                transport_options={"requests_per_second": 2000.0, "burst": 200, "tenant_concurrency": 3})
        context.version = "bench"

        started = time.monotonic()
        cpu_started = time.process_time()
        request_upgrades(bench.store, None, now=bench.clock.now(), actor="bench")
        worker = Worker(context, concurrency=concurrency, poll_interval=0.2, owner="bench")
        stop_progress = _progress(bench, started, progress_every)
        try:
            stats = worker.run(until=bench.finished)
        finally:
            stop_progress.set()
        wall = time.monotonic() - started
        process_cpu = time.process_time() - cpu_started
        report = fleet_report(bench.store, bench.clock.now(), wall)
        context.close()
        calls_seen = _simulator_calls(bench)
        completed = True
    finally:
        bench.close(failed=not completed)

    result = _figures(bench, report, wall, calls_seen, None)
    result.update({
        "concurrency": concurrency,
        "worker_cpu_ms_per_step": {
            state: round(stats.cpu_by_state[state] / stats.steps_by_state[state] * 1000, 2)
            for state in sorted(stats.steps_by_state)
        },
        "steps_by_state": dict(sorted(stats.steps_by_state.items())),
        "retries": stats.retries,
        "process_cpu_seconds": round(process_cpu, 1),
    })
    return result


def run_processes(tenants: int, workers: int, concurrency: int, backend: str, budget: tuple[float, int],
                  data: Path | None, progress_every: float, scope: str = "store", max_seconds: float | None = None,
                  keep_data: bool = False) -> dict:
    """Run `workers` ``tenanttls worker`` processes on one store.

    With `scope` "store" they all draw from the store's request budget. With "process"
    each has its own bucket of the same rate, as before the budget was shared. With
    `max_seconds` the run stops then, finished or not, and the figures count the
    tenants completed by that time.
    """
    bench = Bench(tenants, backend, data, budget, scope, keep_data)
    processes: list[subprocess.Popen] = []
    cpu_seconds = 0.0
    completed = False
    try:
        config = bench.data_dir / "worker.toml"
        _write_worker_config(bench.settings, config)
        started = time.monotonic()
        request_upgrades(bench.store, None, now=bench.clock.now(), actor="bench")
        env = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        for index in range(workers):
            with (bench.data_dir / f"worker-{index}.log").open("w") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, "-c", "from tenanttls.cli import main; main()", "worker", "--config", str(config),
                     "--concurrency", str(concurrency), "--poll", "0.2", "--grace", "1s", "--drift-interval", "0"],
                    stdout=subprocess.DEVNULL, stderr=log, env=env,
                ))
        stop_progress = _progress(bench, started, progress_every)
        try:
            while not bench.finished():
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    print(f"stopping the run after {max_seconds:.0f} s, the --max-minutes limit", file=sys.stderr, flush=True)
                    break
                if any(process.poll() is not None for process in processes):
                    raise SystemExit(f"a worker exited early: {_last_error(bench.data_dir)} (logs: {bench.data_dir}/worker-*.log)")
                time.sleep(0.5)
        finally:
            stop_progress.set()
        wall = time.monotonic() - started
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = 0  # reaped above; keeps Popen from waiting again
            cpu_seconds += usage.ru_utime + usage.ru_stime
        report = fleet_report(bench.store, bench.clock.now(), wall)
        calls_seen = _simulator_calls(bench)
        completed = True
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
        bench.close(failed=not completed)

    result = _figures(bench, report, wall, calls_seen, budget)
    result["request_budget"]["scope"] = scope
    result.update({"workers": workers, "concurrency_per_worker": concurrency, "backend": backend,
                   "worker_cpu_seconds": round(cpu_seconds, 1)})
    return result


def _last_error(data_dir: Path) -> str:
    """Return the last line starting with "error:" in the worker logs, or a note that there is none."""
    for log in sorted(data_dir.glob("worker-*.log")):
        errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]
        if errors:
            return errors[-1]
    return "no error line in its log"


def _write_worker_config(settings: Settings, path: Path) -> None:
    keys = ("database_url", "login_url", "graph_url", "exchange_url", "client_id", "client_certificate", "client_key",
            "microsoft_ca_bundle", "key_encryption_key", "dns_server", "request_budget")
    lines = ["[tenanttls]", f'data_dir = "{settings.data_dir}"', 'lease = "2m"', "max_attempts = 20",
             f"requests_per_second = {settings.requests_per_second}", f"request_burst = {settings.request_burst}"]
    lines += [f'{key} = "{getattr(settings, key)}"' for key in keys if getattr(settings, key)]
    path.write_text("\n".join(lines) + "\n")


def _simulator_calls(bench: Bench) -> dict:
    with bench.http() as client:
        return client.get("/_simulator/calls").json()


def _figures(bench: Bench, report, wall: float, calls_seen: dict, budget: tuple[float, int] | None) -> dict:
    completed = [tenant for tenant in report.tenants if tenant.state == UpgradeState.COMPLETED.value]
    calls = sorted(tenant.api_calls for tenant in completed)
    by_endpoint = calls_seen.get("by_endpoint", {})
    # Token requests go to the identity platform through MSAL, outside the request budget.
    budgeted = sum(count for endpoint, count in by_endpoint.items() if not endpoint.startswith("identity"))
    result = {
        "tenants": len(bench.fleet),
        "completed": len(completed),
        "states": report.counts(),
        "wall_seconds": round(wall, 1),
        "tenants_per_minute": round(len(completed) / wall * 60, 1),
        "api_calls_per_tenant": {
            "mean": round(sum(calls) / len(calls), 2) if calls else None,
            "min": calls[0] if calls else None,
            "max": calls[-1] if calls else None,
            "plan_minimum": minimum_calls(bench.fleet[0].seed, bench.settings.provider_zone),
        },
        "simulator_requests": {"total": calls_seen.get("total"), "graph_and_exchange": budgeted, "by_endpoint": by_endpoint},
        "throttling_responses": calls_seen.get("faults", {}),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
    }
    if budget:
        rate, burst = budget
        result["request_budget"] = {
            "requests_per_second": rate, "burst": burst,
            "used_requests_per_second": round(budgeted / wall, 1),
            "share_used": round(budgeted / (rate * wall + burst), 3),
        }
    return result


def parse_matrix(text: str) -> list[tuple[int, str]]:
    """Return the (workers, backend) pairs of a matrix such as ``1:sqlite,2:postgresql``.

    Raises ValueError naming the entry that is not of that form.
    """
    pairs = []
    for item in text.split(","):
        workers, _, backend = item.strip().partition(":")
        if not workers.isdigit() or int(workers) < 1 or backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"invalid --matrix entry {item!r}: write WORKERS:BACKEND with WORKERS 1 or more and BACKEND "
                "sqlite or postgresql, for example 2:postgresql"
            )
        pairs.append((int(workers), backend))
    return pairs


def _max_seconds(arguments: argparse.Namespace) -> float | None:
    """Return the --max-minutes limit in seconds, or None for no limit."""
    return arguments.max_minutes * 60 if arguments.max_minutes else None


def run_matrix(pairs: list[tuple[int, str]], arguments: argparse.Namespace) -> list[dict]:
    """Run each (workers, backend) configuration in turn and print the figures of each run as it finishes."""
    results = []
    for workers, backend in pairs:
        load = os.getloadavg()[0]
        print(f"run {len(results) + 1}/{len(pairs)}: {workers} worker(s) on {backend}, load average {load:.1f}",
              file=sys.stderr, flush=True)
        result = run_processes(arguments.tenants, workers, arguments.concurrency, backend,
                               (arguments.budget, arguments.burst), None, arguments.progress, arguments.budget_scope,
                               _max_seconds(arguments), arguments.keep_data)
        result["load_average_at_start"] = load
        print_summary(result)
        results.append(result)
    return results


def matrix_table(results: list[dict]) -> str:
    """Return the matrix's figures as a Markdown table."""
    lines = [
        "| workers | store | completed | wall time | tenants per minute | API calls per tenant (plan minimum) "
        "| request budget used | throttling responses | worker CPU | load average at start |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        calls, budget = result["api_calls_per_tenant"], result["request_budget"]
        throttled = sum(result["throttling_responses"].values()) if result["throttling_responses"] else 0
        lines.append(
            f"| {result['workers']} | {result['backend']} | {result['completed']}/{result['tenants']} | {result['wall_seconds']:.0f} s "
            f"| {result['tenants_per_minute']:.0f} | {calls['mean']} ({calls['plan_minimum']}) "
            f"| {budget['used_requests_per_second']}/s, {budget['share_used']:.0%} | {throttled} | {result['worker_cpu_seconds']:.0f} s "
            f"| {result['load_average_at_start']:.1f} |"
        )
    return "\n".join(lines)


def print_summary(result: dict) -> None:
    """Print the figures of one run."""
    calls = result["api_calls_per_tenant"]
    shape = (f"{result['workers']} worker process(es) x {result['concurrency_per_worker']} on {result['backend']}"
             if "workers" in result else f"one in-process worker x {result['concurrency']} on sqlite")
    print(f"tenants: {result['completed']}/{result['tenants']} completed in {result['wall_seconds']} s "
          f"with {shape}: {result['tenants_per_minute']} tenants per minute")
    print(f"API calls per tenant: mean {calls['mean']}, min {calls['min']}, max {calls['max']}; "
          f"the plan needs at least {calls['plan_minimum']}")
    print(f"throttling responses from the simulator: {result['throttling_responses'] or 'none'}")
    if "request_budget" in result:
        budget = result["request_budget"]
        print(f"request budget: {budget['requests_per_second']:g}/s ({budget['scope']}), {budget['used_requests_per_second']}/s used "
              f"on average ({budget['share_used']:.0%} of the budget over the run)")
        print(f"worker CPU (all worker processes): {result['worker_cpu_seconds']} s")
    else:
        print("worker CPU per step (ms): " + ", ".join(f"{state} {ms}" for state, ms in result["worker_cpu_ms_per_step"].items()))
        print(f"retries: {result['retries']}; process CPU (worker, simulator, DNS): {result['process_cpu_seconds']} s")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000, help="simulated tenants (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="tenants the worker runs at once (default 16)")
    parser.add_argument("--data", type=Path, default=None,
                        help="empty data folder, kept after the run (default: a new temporary folder, removed after the run)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines on stderr")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes ('tenanttls worker'); 0 runs one worker in this process (default)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="store for --workers: a SQLite file, or a PostgreSQL 15 server started for the run")
    parser.add_argument("--budget", type=float, default=100.0,
                        help="with --workers: the shared request budget in requests per second (default 100)")
    parser.add_argument("--burst", type=int, default=20, help="with --workers: the budget's burst (default 20)")
    parser.add_argument("--budget-scope", choices=("store", "process"), default="store",
                        help="with --workers: one budget in the store for all workers (default), or one per worker process")
    parser.add_argument("--matrix", default=None,
                        help="run several configurations in turn, e.g. 1:sqlite,1:postgresql,2:postgresql,4:postgresql")
    parser.add_argument("--max-minutes", type=float, default=0,
                        help="with --workers or --matrix: stop each run after this many minutes (default: run to the end)")
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    if arguments.tenants < 1:
        parser.error(f"invalid --tenants {arguments.tenants}: give 1 or more")
    if arguments.data is not None and arguments.data.exists() and not arguments.data.is_dir():
        parser.error(f"--data {arguments.data} is a file: give a new or empty folder, or leave --data out")
    if arguments.data is not None and arguments.data.is_dir() and any(arguments.data.iterdir()):
        parser.error(f"--data folder {arguments.data} is not empty: give a new or empty folder, or leave --data out")
    try:
        matrix = parse_matrix(arguments.matrix) if arguments.matrix is not None else []
    except ValueError as error:
        parser.error(str(error))

    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    if matrix:
        results = run_matrix(matrix, arguments)
        print(matrix_table(results))
        if arguments.json:
            arguments.json.write_text(json.dumps(results, indent=2) + "\n")
        return

    if arguments.workers > 0:
        result = run_processes(arguments.tenants, arguments.workers, arguments.concurrency, arguments.backend,
                               (arguments.budget, arguments.burst), arguments.data, arguments.progress,
                               arguments.budget_scope, _max_seconds(arguments), arguments.keep_data)
    elif arguments.backend != "sqlite":
        parser.error("the in-process worker runs on SQLite; give --workers N for PostgreSQL")
    else:
        result = run(arguments.tenants, arguments.concurrency, arguments.data, arguments.progress, arguments.keep_data)

    print_summary(result)
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
