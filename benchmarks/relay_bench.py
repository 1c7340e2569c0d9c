"""Measure the relay: deliveries per second and memory per tenant certificate.

Run from the repository root:

    .venv/bin/python benchmarks/relay_bench.py [--tenants 20] [--messages 600] [--senders 4] [--memory-tenants 10000]

Everything runs in this one process on 127.0.0.1: the simulator's SMTP front door as
the smart host, the relay with its durable queue (fsync on), and senders that submit
messages to the relay over STARTTLS. It measures:

1. deliveries per second, from the first submission until the front door accepted the
   last message. Every tenant presents its own certificate (``unique``), or all present
   one shared certificate (``shared``), each with connection reuse on and off. The ratio
   unique / shared follows;
2. the cost of one TLS client context by how it verifies the smart host: the system's
   CA bundle file, the system's hashed CA folder, or a file with one CA;
3. the relay's resident memory (RSS) with the client contexts of `--memory-tenants`
   tenants' certificates loaded, as the relay verifies Exchange Online with the system CAs.

The figures depend on the machine, and the senders, the relay and the front door share
one Python process (one GIL); print them with the machine's description when you record them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import platform
import statistics
import ssl
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY / "src"))

import aiosmtplib  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from benchdata import add_keep_data_option, data_folder  # noqa: E402
from tenanttls.certificates.keystore import KeyStore  # noqa: E402
from tenanttls.certificates.local_ca import LocalCaIssuer  # noqa: E402
from tenanttls.relay import Relay, RelaySettings, RelayThread, StoreKeyPairs  # noqa: E402
from tenanttls.relay.assignments import AssignmentReader  # noqa: E402
from tenanttls.relay.certificates import ClientContexts  # noqa: E402
from tenanttls.relay.demo_pki import RelayPki  # noqa: E402
from tenanttls.relay.mailflow import FlowTenant, outbound_message  # noqa: E402
from tenanttls.simulator.smtp import FrontDoor, TenantMailView  # noqa: E402
from tenanttls.store.db import open_store  # noqa: E402
from tenanttls.store.relay_assignments import assign_legacy, assign_unique, ensure_legacy_assignment  # noqa: E402
from tenanttls.store.schema import certificates  # noqa: E402
from tenanttls.store.tenants import TenantRecord, save_tenant  # noqa: E402

LEGACY_NAME = "*.crossware.co.nz"
ZONE = "crosswaretls.com"


def rss_kib() -> int:
    """Return this process's resident memory in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found in /proc/self/status")


class Fleet:
    """Tenants in a SQLite store, each with a unique certificate from a local CA."""

    def __init__(self, folder: Path, count: int) -> None:
        self.store = open_store(f"sqlite:///{folder / 'tenanttls.db'}", create=True)
        self.keystore = KeyStore(os.urandom(32))
        self.issuer = LocalCaIssuer(folder / "ca")
        self.tenants: list[FlowTenant] = []
        self.unique_names: dict[str, tuple[str, int]] = {}
        self._add(count)

    def _add(self, count: int) -> None:
        now = datetime.now(timezone.utc)
        with self.store.write() as connection:
            for number in range(count):
                tenant_id = str(uuid.uuid4())
                domain = f"tenant{number}.example"
                save_tenant(connection, TenantRecord(tenant_id, f"tenant{number}.onmicrosoft.com", f"Tenant {number}"), now)
                ensure_legacy_assignment(connection, tenant_id, LEGACY_NAME, now)
                issued = self.issuer.issue(f"{uuid.uuid4().hex[:26]}.{ZONE}")
                certificate_id = connection.execute(
                    insert(certificates).values(
                        tenant_id=tenant_id, name=issued.name, chain_pem=issued.chain_pem,
                        key_ciphertext=self.keystore.encrypt(issued.key_pem.encode("ascii"), issued.name.encode()),
                        serial=issued.serial, not_before=issued.not_before, not_after=issued.not_after,
                        backend=issued.backend, status="active", created_at=now,
                    )
                ).inserted_primary_key[0]
                self.tenants.append(FlowTenant(tenant_id, domain))
                self.unique_names[tenant_id] = (issued.name, int(certificate_id))

    def assign(self, mode: str) -> None:
        now = datetime.now(timezone.utc)
        with self.store.write() as connection:
            for tenant in self.tenants:
                if mode == "unique":
                    name, certificate_id = self.unique_names[tenant.tenant_id]
                    assign_unique(connection, tenant.tenant_id, name, certificate_id, now)
                else:
                    assign_legacy(connection, tenant.tenant_id, LEGACY_NAME, now)

    def views(self, now):
        """Return each tenant's mail view: its domain and unique name accepted, connectors for both certificates."""
        return [
            TenantMailView(
                tenant.tenant_id,
                (tenant.domain, self.unique_names[tenant.tenant_id][0]),
                (
                    {"Name": "Legacy", "Enabled": True, "ConnectorType": "OnPremises", "TlsSenderCertificateName": LEGACY_NAME},
                    {"Name": "Unique", "Enabled": True, "ConnectorType": "OnPremises",
                     "TlsSenderCertificateName": self.unique_names[tenant.tenant_id][0]},
                ),
            )
            for tenant in self.tenants
        ]


async def _submit_all(port: int, ca: Path, batches: list[list[tuple[str, str, bytes]]]) -> None:
    context = ssl.create_default_context(cafile=str(ca))

    async def sender(batch: list[tuple[str, str, bytes]]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=context)
        await client.connect()
        for count, (mail_from, recipient, data) in enumerate(batch, 1):
            if count % 50 == 0:  # stay under the relay's messages-per-connection limit
                await client.quit()
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=context)
                await client.connect()
            await client.sendmail(mail_from, [recipient], data)
        await client.quit()

    await asyncio.gather(*(sender(batch) for batch in batches))


def measure_throughput(folder: Path, fleet: Fleet, pki: RelayPki, door: FrontDoor, mode: str, reuse: bool, messages: int,
                       senders: int, run: int = 0) -> float:
    """Return deliveries per second for one mode ("unique" or "shared") and reuse setting."""
    fleet.assign("unique" if mode == "unique" else "legacy")
    door.clear()
    settings = RelaySettings(
        queue_dir=folder / f"queue-{mode}-{reuse}-{run}",
        legacy=pki.legacy,
        tls_certificate=pki.server_certificate,
        tls_key=pki.server_key,
        listen_port=0,
        smart_host=f"127.0.0.1:{door.port}",
        smart_host_ca=pki.ca_path,
        reuse_connections=reuse,
        retry_schedule=(0.5,),
    )
    relay = RelayThread(Relay(settings, engine=fleet.store.engine, key_pairs=StoreKeyPairs(fleet.store.engine, fleet.keystore))).start()
    try:
        plan = []
        for number in range(messages):
            tenant = fleet.tenants[number % len(fleet.tenants)]
            plan.append(outbound_message(tenant, "normal-inside", f"<bench-{mode}-{reuse}-{run}-{number}@{tenant.domain}>", number))
        batches = [plan[index::senders] for index in range(senders)]

        started = time.perf_counter()
        asyncio.run(_submit_all(relay.port, pki.ca_path, batches))
        while len(door.messages()) < messages:
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        relay.stop()
    return messages / elapsed


CONTEXT_WAYS = ("system CA bundle file", "system hashed CA folder", "one CA file")


def measure_context_cost(way: str, pki_ca: Path, count: int = 300) -> tuple[float, float]:
    """Return KiB and milliseconds per client context built with one way of verifying the smart host."""
    system = ssl.get_default_verify_paths()
    arguments = {
        "system CA bundle file": dict(cafile=system.cafile or system.openssl_cafile),
        "system hashed CA folder": dict(capath=system.capath or system.openssl_capath),
        "one CA file": dict(cafile=str(pki_ca)),
    }[way]
    contexts = []
    before, started = rss_kib(), time.perf_counter()
    for _ in range(count):
        contexts.append(ssl.create_default_context(**arguments))
    return (rss_kib() - before) / count, (time.perf_counter() - started) * 1000 / count


def measure_memory(folder: Path, count: int, pki: RelayPki) -> tuple[int, int, float]:
    """Load `count` tenants' contexts as the relay does; return RSS before and after (KiB) and seconds."""
    fleet = Fleet(folder, count)
    fleet.assign("unique")
    reader = AssignmentReader(fleet.store.engine, max_age=3600)
    reader.load_all()
    contexts = ClientContexts(pki.legacy, StoreKeyPairs(fleet.store.engine, fleet.keystore), server_ca=None, max_contexts=count)
    gc.collect()
    before = rss_kib()
    started = time.perf_counter()
    for tenant in fleet.tenants:
        contexts.context_for(reader.get(tenant.tenant_id))
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_kib()
    assert len(contexts) == count
    contexts.close()
    return before, after, seconds


def run_in_child(*arguments: str) -> str:
    """Run this script with `arguments` in a new process, so that memory figures start from a clean heap."""
    result = subprocess.run([sys.executable, __file__, "--child", *arguments], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20, help="tenants in the throughput runs")
    parser.add_argument("--messages", type=int, default=600, help="messages per throughput run")
    parser.add_argument("--senders", type=int, default=4, help="parallel connections submitting to the relay")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the median is printed")
    parser.add_argument("--memory-tenants", type=int, default=10_000, help="tenant certificates loaded for the memory figure")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if arguments.child:
        print(child(arguments.child))
        return

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {ssl.OPENSSL_VERSION}")
    with data_folder("tenanttls-relay-bench-", keep=arguments.keep_data) as folder:
        pki = RelayPki(folder / "relay-pki")
        fleet = Fleet(folder / "throughput", arguments.tenants)
        door = FrontDoor(fleet.views, certificate=pki.server_certificate, key=pki.server_key,
                         trusted_cas=[pki.ca_path, folder / "throughput" / "ca" / "ca.pem"])
        door.start()
        try:
            print(f"\n1. deliveries per second: {arguments.messages} messages, {arguments.tenants} tenants, "
                  f"{arguments.senders} senders, durable queue")
            for reuse in (True, False):
                runs: dict[str, list[float]] = {"shared": [], "unique": []}
                for run in range(arguments.repeat):
                    for mode in ("shared", "unique"):  # interleaved, so load from other processes hits both alike
                        runs[mode].append(measure_throughput(folder, fleet, pki, door, mode, reuse, arguments.messages,
                                                             arguments.senders, run))
                rates = {mode: statistics.median(values) for mode, values in runs.items()}
                spread = ", ".join(f"{mode} {min(values):.0f}-{max(values):.0f}" for mode, values in runs.items())
                print(f"   reuse {'on ' if reuse else 'off'}: shared certificate {rates['shared']:7.1f}/s, "
                      f"per-tenant certificates {rates['unique']:7.1f}/s, ratio {rates['unique'] / rates['shared']:.2f} "
                      f"(median of {arguments.repeat}; range {spread})")
        finally:
            door.stop()

        print("\n2. one TLS client context, by how it verifies the smart host (300 contexts, fresh process each):")
        for way in CONTEXT_WAYS:
            print(f"   {way:<26} {run_in_child('context', way, str(pki.ca_path))}")

        print(f"\n3. relay memory with {arguments.memory_tenants} tenant certificates loaded (system CA folder, fresh process):")
        print("   " + run_in_child("memory", str(arguments.memory_tenants), str(folder / "memory"), str(folder / "relay-pki")))


def child(task: list[str]) -> str:
    """Run one memory measurement in this (fresh) process and return its line."""
    if task[0] == "context":
        kib, milliseconds = measure_context_cost(task[1], Path(task[2]))
        return f"{kib:8.1f} KiB, {milliseconds:6.2f} ms to build"

    count, folder, pki_folder = int(task[1]), Path(task[2]), Path(task[3])
    before, after, seconds = measure_memory(folder, count, RelayPki(pki_folder))
    return (f"RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB: {(after - before) / 1024:.1f} MiB for "
            f"{count} contexts, {(after - before) / count:.1f} KiB per tenant; loaded in {seconds:.1f} s "
            f"({seconds * 1000 / count:.1f} ms per tenant)")


if __name__ == "__main__":
    main()
