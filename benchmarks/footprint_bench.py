"""Start-up time and memory of ``tenanttls worker``, ``relay`` and ``portal`` with a large store.

Run from the repository root:

    .venv/bin/python benchmarks/footprint_bench.py [--tenants 0,100000] [--backend postgresql]

For each tenant count the store (a PostgreSQL 15 server started for the run, or a
SQLite file) is filled with that many tenants, each with its upgrade row and a legacy
relay assignment. Then each component starts as its own process with ``--metrics-port 0``.
Start-up time runs from the process start until it prints its listening line (the relay
and portal) or its metrics address (the worker, printed once the engine is built). The
resident memory (VmRSS) is read after the first ``/metrics`` scrape, which counts the
tenants per state in the store (worker, portal), and again 5 s later. The simulator
runs in this process only so that the settings name reachable HTTPS endpoints; no
component calls it at start.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from benchdata import add_keep_data_option, data_folder  # noqa: E402
from pgserver import PostgresServer  # noqa: E402
from tenanttls.migration.credentials import write_app_credentials, write_key_encryption_key  # noqa: E402
from tenanttls.relay.demo_pki import RelayPki  # noqa: E402
from tenanttls.simulator import Simulator  # noqa: E402
from tenanttls.store.db import open_store  # noqa: E402
from tenanttls.store.schema import relay_assignments, tenants, upgrades  # noqa: E402

LEGACY_NAME = "*.crossware.co.nz"
BATCH = 5000

COMMANDS = {
    "worker": (["worker", "--poll", "1", "--drift-interval", "0"], r"worker: metrics at (http://\S+)"),
    "relay": (["relay", "--listen", "127.0.0.1:0"], r"relay listening on"),
    "portal": (["portal", "--port", "0"], r"portal: listening on"),
}


def fill_store(url: str, count: int) -> float:
    """Insert `count` tenants with upgrade rows and legacy assignments; return the seconds taken."""
    store = open_store(url, create=True)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        ids = [str(uuid.UUID(int=number + 1)) for number in range(first, min(first + BATCH, count))]
        with store.write() as connection:
            connection.execute(insert(tenants), [
                {"tenant_id": tenant_id, "initial_domain": f"t{tenant_id[-12:]}.onmicrosoft.com", "display_name": "Tenant",
                 "smart_host": None, "created_at": now} for tenant_id in ids])
            connection.execute(insert(upgrades), [
                {"tenant_id": tenant_id, "state": "awaiting_consent", "requested": False, "attempts": 0, "overrides": {},
                 "api_calls": 0, "state_entered_at": now, "updated_at": now, "version": 0} for tenant_id in ids])
            connection.execute(insert(relay_assignments), [
                {"tenant_id": tenant_id, "mode": "legacy", "certificate_name": LEGACY_NAME, "certificate_id": None,
                 "changed_at": now, "version": 0} for tenant_id in ids])
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def write_config(folder: Path, url: str, simulator: Simulator, pki: RelayPki) -> Path:
    credentials = write_app_credentials(folder / "app")
    settings = {
        "data_dir": folder, "database_url": url, "login_url": simulator.base_url, "graph_url": simulator.base_url,
        "exchange_url": simulator.base_url, "client_id": credentials.client_id,
        "client_certificate": credentials.certificate_path, "client_key": f"file:{credentials.key_path}",
        "microsoft_ca_bundle": simulator.ca_path, "key_encryption_key": write_key_encryption_key(folder / "kek"),
        "relay_tls_certificate": pki.server_certificate, "relay_tls_key": pki.server_key,
        "legacy_certificate": pki.legacy_certificate, "legacy_key": pki.legacy_key,
        "relay_queue_dir": folder / "relay-queue",
    }
    path = folder / "tenanttls.toml"
    path.write_text("[tenanttls]\n" + "".join(f'{key} = "{value}"\n' for key, value in settings.items()))
    return path


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"VmRSS not found for process {pid}")


def measure(component: str, config: Path) -> dict:
    """Start one component; return its start-up seconds and memory after the first scrape and 5 s later."""
    arguments, ready = COMMANDS[component]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", *arguments, "--config", str(config), "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        metrics_url = None
        startup = None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (startup is None or metrics_url is None):
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                raise SystemExit(f"{component} exited with {process.returncode}: {''.join(lines)[-2000:]}")
            lines.append(line)
            if startup is None and re.search(ready, line):
                startup = time.perf_counter() - started
            found = re.search(r"metrics at (http://\S+)", line)
            if found:
                metrics_url = found.group(1)
        if startup is None or metrics_url is None:
            raise SystemExit(f"{component} did not start within 120 s: {''.join(lines)[-2000:]}")

        scrape = httpx.get(metrics_url, timeout=60)
        scraped = rss_mib(process.pid)
        time.sleep(5)
        return {"startup_seconds": startup, "rss_after_scrape_mib": scraped, "rss_after_5s_mib": rss_mib(process.pid),
                "scrape_bytes": len(scrape.content)}
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", default="0,100000", help="comma-separated tenant counts (default 0,100000)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    counts = [int(value) for value in arguments.tenants.split(",")]

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"Python {platform.python_version()}; store: {arguments.backend}")
    postgres = PostgresServer().start() if arguments.backend == "postgresql" else None
    finished = False
    with data_folder("tenanttls-footprint-bench-", keep=arguments.keep_data) as folder:
        simulator = Simulator(folder / "simulator").start()
        pki = RelayPki(folder / "relay-pki")
        try:
            for count in counts:
                data = folder / f"data-{count}"
                data.mkdir()
                url = postgres.create_database(f"footprint{count}") if postgres else f"sqlite:///{data / 'tenanttls.db'}"
                seconds = fill_store(url, count)
                config = write_config(data, url, simulator, pki)
                print(f"{count} tenants in the store (inserted in {seconds:.1f} s):")
                for component in COMMANDS:
                    figures = measure(component, config)
                    print(f"  {component:<7} start-up {figures['startup_seconds']:5.2f} s, RSS {figures['rss_after_scrape_mib']:6.1f} MiB "
                          f"after the first /metrics scrape, {figures['rss_after_5s_mib']:6.1f} MiB 5 s later")
            finished = True
        finally:
            simulator.stop()
            if postgres:
                postgres.stop(keep=arguments.keep_data, failed=not finished)


if __name__ == "__main__":
    main()
