"""Compare ``tenanttls relay`` with Postfix presenting a client certificate per sender domain.

Run it from the repository root as root, because Postfix's master process starts as root
and drops to the ``postfix`` user. It needs Debian's Postfix (``apt-get install postfix``).
The system's own Postfix instance is not used and need not run:

    .venv/bin/python benchmarks/postfix_bench.py [--tenants 20] [--messages 600] [--senders 4]
        [--latency-rate 40] [--latency-messages 200] [--repeat 3]

``tenanttls relay`` runs as its own process with a settings file, as an operator runs
it, with its durable queue (fsync on). It and two Postfix instances (Postfix's defaults,
and tuned) get the same messages from the same senders and deliver to the same
simulator SMTP front door on 127.0.0.1, which checks the client certificate and
attributes each message to a tenant. The senders and the front door share this
benchmark's process. Each round runs every relay in turn, so that load from other
processes hits all alike, and in two phases:

1. flood: `--messages` messages as fast as the relay accepts them. This gives deliveries
   per second. A relay that accepts faster than it delivers builds a backlog, so the
   latency of this phase is mostly time in the relay's queue and grows with `--messages`;
2. paced: `--latency-messages` messages at `--latency-rate` per second, below what every
   relay delivers, so that latency (accepted by the relay until accepted by the front
   door) is the time one message takes.

It prints the median of `--repeat` rounds, the ratios tenanttls / Postfix, and for each
Postfix instance the median ``delays=a/b/c/d`` of its maillog lines per phase with the
number of deliveries on a reused connection, which show where Postfix's time goes.

The Postfix set-up is the one a provider would build without tenanttls: a private
instance (its own ``main.cf``, ``master.cf`` and queue in a temporary folder, started
with ``postfix -c DIR start``) listening on 127.0.0.1, with one ``smtp`` transport per
tenant in ``master.cf`` that overrides ``smtp_tls_cert_file`` and ``smtp_tls_key_file``
with ``-o``, and ``sender_dependent_default_transport_maps`` choosing the transport by
the envelope sender's domain (postconf(5) of Postfix 3.7). The tuned instance also
reuses TLS connections to the smart host (`PostfixInstance`). Mail with an empty envelope
sender (automatic replies, NDRs) has no sender domain, so that map cannot route it; the
benchmark therefore sends ordinary messages only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiosmtplib  # noqa: E402

from benchdata import add_keep_data_option, data_folder  # noqa: E402
from relay_bench import Fleet  # noqa: E402
from tenanttls.certificates.keystore import KeyStore  # noqa: E402
from tenanttls.certificates.local_ca import LocalCaIssuer  # noqa: E402
from tenanttls.relay import StoreKeyPairs  # noqa: E402
from tenanttls.relay.demo_pki import RelayPki  # noqa: E402
from tenanttls.relay.mailflow import outbound_message  # noqa: E402
from tenanttls.simulator.smtp import FrontDoor  # noqa: E402
from tenanttls.store.db import open_store  # noqa: E402

POSTFIX = Path("/usr/sbin/postfix")

# The services a relay-only Postfix needs, from Debian's default master.cf, without chroot
# (a chroot would need copies of /etc files inside the private queue folder).
MASTER_SERVICES = """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class KeptKeyFleet(Fleet):
    """relay_bench's tenants, with the key-encryption key kept so that a relay process can read their keys."""

    def __init__(self, folder: Path, count: int) -> None:
        self.key_encryption_key = os.urandom(32)
        self.store = open_store(f"sqlite:///{folder / 'tenanttls.db'}", create=True)
        self.keystore = KeyStore(self.key_encryption_key)
        self.issuer = LocalCaIssuer(folder / "ca")
        self.tenants = []
        self.unique_names = {}
        self._add(count)


class RelayProcess:
    """``tenanttls relay`` in its own process, configured as an operator would, on 127.0.0.1."""

    def __init__(self, folder: Path, fleet: KeptKeyFleet, pki: RelayPki, door_port: int) -> None:
        folder.mkdir()
        key_file = folder / "kek"
        key_file.write_bytes(base64.b64encode(fleet.key_encryption_key) + b"\n")
        key_file.chmod(0o600)
        settings = {
            "data_dir": folder, "database_url": fleet.store.url, "key_encryption_key": f"file:{key_file}",
            "relay_listen": "127.0.0.1:0", "relay_tls_certificate": pki.server_certificate, "relay_tls_key": pki.server_key,
            "legacy_certificate": pki.legacy_certificate, "legacy_key": pki.legacy_key,
            "relay_queue_dir": folder / "queue", "relay_smart_host": f"127.0.0.1:{door_port}",
            "relay_smart_host_ca": pki.ca_path,
        }
        self.config = folder / "tenanttls.toml"
        self.config.write_text("[tenanttls]\n" + "".join(f'{key} = "{value}"\n' for key, value in settings.items()))
        self.port_file = folder / "port"
        self.log = folder / "relay.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from tenanttls.cli import main; main()", "relay", "--config", str(self.config),
                 "--port-file", str(self.port_file), "--retry", "0.5"],
                stdout=subprocess.DEVNULL, stderr=log,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.port_file.exists():
            if self.process.poll() is not None:
                raise SystemExit(f"tenanttls relay exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


def process_running(pid: int) -> bool:
    """Return whether process `pid` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostfixInstance:
    """A private Postfix instance on 127.0.0.1 with one client certificate per tenant's sender domain.

    With `tuned` off it keeps Postfix's defaults for queueing and connections: every
    delivery opens its own TCP and TLS connection, because without
    ``smtp_tls_connection_reuse`` the connection cache (scache) keeps plaintext connections
    only. With `tuned` on it sets what a provider relaying to one smart host would set,
    as postconf(5) of Postfix 3.7 describes them. These are ``smtp_tls_connection_reuse =
    yes``, the smart host in ``smtp_connection_cache_destinations`` (connections are then
    kept even without a backlog), and the TLS session cache that Debian's configured
    main.cf also sets. TLS connection reuse goes through tlsproxy(8), so every tenant gets
    its own tlsproxy service that loads the tenant's key as root, like its ``smtp``
    transport does. One shared tlsproxy would read each key after dropping privileges and
    fail on key files readable by root only.
    """

    def __init__(self, folder: Path, fleet: Fleet, pki: RelayPki, door_port: int, tuned: bool = False) -> None:
        if not POSTFIX.exists():
            raise SystemExit("Postfix is not installed; install it with: apt-get install postfix")
        if os.geteuid() != 0:
            raise SystemExit("run as root: Postfix's master process starts as root")
        self.folder = folder
        self.tuned = tuned
        self.config_dir = folder / "etc"
        self.port = free_port()
        self.config_dir.mkdir(parents=True)
        self._write_keys(fleet)
        self._write_main(pki, door_port)
        self._write_master(fleet, door_port)

    def _write_keys(self, fleet: Fleet) -> None:
        """Write each tenant's unique certificate and key as PEM files that Postfix reads."""
        keys = StoreKeyPairs(fleet.store.engine, fleet.keystore)
        self.certificates: dict[str, tuple[Path, Path]] = {}
        folder = self.folder / "tenant-certificates"
        folder.mkdir(mode=0o700)
        for index, tenant in enumerate(fleet.tenants):
            chain, key = keys.load_key_pair(fleet.unique_names[tenant.tenant_id][1])
            chain_path, key_path = folder / f"t{index}.pem", folder / f"t{index}.key"
            chain_path.write_bytes(chain)
            key_path.write_bytes(key)
            key_path.chmod(0o600)
            self.certificates[tenant.domain] = (chain_path, key_path)

    def _write_main(self, pki: RelayPki, door_port: int) -> None:
        transports = self.config_dir / "sender_transport"
        transports.write_text("".join(f"@{domain} t{index}:[127.0.0.1]:{door_port}\n"
                                      for index, domain in enumerate(self.certificates)))
        (self.folder / "queue").mkdir()
        (self.folder / "data").mkdir()
        shutil.chown(self.folder / "data", "postfix", "postfix")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.folder / "queue",
            "data_directory": self.folder / "data",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix-bench.localdomain",
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            # Millisecond delays=a/b/c/d in the maillog; this changes the logging only.
            "delay_logging_resolution_limit": 3,
            "smtputf8_enable": "no",
            "maillog_file": self.folder / "maillog",
            # Postfix writes its log only under these prefixes (default: /var, /dev/stdout).
            "maillog_file_prefixes": self.folder,
            "smtpd_tls_cert_file": pki.server_certificate,
            "smtpd_tls_key_file": pki.server_key,
            "smtpd_tls_security_level": "may",
            # TLS is required towards the front door; like the relay, verify its certificate with one CA.
            "smtp_tls_security_level": "encrypt",
            "smtp_tls_CAfile": pki.ca_path,
            "sender_dependent_default_transport_maps": f"texthash:{transports}",
            "default_transport": "error:no transport for this sender domain",
        }
        if self.tuned:
            settings["smtp_tls_connection_reuse"] = "yes"
            # Cache connections to the smart host always, not only while a transport has a backlog.
            settings["smtp_connection_cache_destinations"] = "127.0.0.1"
            settings["smtp_tls_session_cache_database"] = "btree:${data_directory}/smtp_scache"
        (self.config_dir / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))

    def _write_master(self, fleet: Fleet, door_port: int) -> None:
        lines = [f"127.0.0.1:{self.port} inet n - n - - smtpd\n", MASTER_SERVICES]
        for index, (chain, key) in enumerate(self.certificates.values()):
            lines.append(f"t{index} unix - - n - - smtp\n  -o smtp_tls_cert_file={chain}\n  -o smtp_tls_key_file={key}\n")
            if self.tuned:
                # tlsproxy(8) compares its own client settings with the smtp client's request.
                lines.append(f"  -o tlsproxy_service_name=t{index}-tlsproxy\n"
                             f"t{index}-tlsproxy unix - - n - 0 tlsproxy\n"
                             f"  -o tlsproxy_client_cert_file={chain}\n  -o tlsproxy_client_key_file={key}\n")
        (self.config_dir / "master.cf").write_text("".join(lines))

    def start(self) -> None:
        result = subprocess.run([str(POSTFIX), "-c", str(self.config_dir), "start"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise SystemExit(f"postfix start failed: {result.stderr.strip()}; its log: {self.maillog()[-2000:]}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"Postfix did not listen on 127.0.0.1:{self.port} within 30 s: {self.maillog()[-2000:]}")

    def stop(self) -> None:
        """Stop the instance and wait until its master process has exited."""
        pid_file = self.folder / "queue" / "pid" / "master.pid"
        master = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run([str(POSTFIX), "-c", str(self.config_dir), "stop"], capture_output=True, text=True, timeout=60)
        deadline = time.monotonic() + 30
        while master is not None and process_running(master):
            if time.monotonic() > deadline:
                raise SystemExit(f"Postfix master process {master} of {self.config_dir} still runs 30 s after "
                                 f"'postfix -c {self.config_dir} stop'; stop it with: kill {master}")
            time.sleep(0.1)

    def maillog(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliveries(self, start: int, count: int) -> tuple[int, list[Delivery]]:
        """Wait up to 10 s for `count` delivery lines after offset `start` of the maillog.

        Return the offset after the lines read and the deliveries they log.

        postlogd(8) writes the line after the smtp client has read the front door's reply, so
        it can trail the front door's record of the message.
        """
        deadline = time.monotonic() + 10
        while True:
            text = self.maillog()[start:]
            found = [Delivery.parse(line) for line in text.splitlines() if " status=sent " in line]
            if len(found) >= count or time.monotonic() > deadline:
                return start + len(text), found
            time.sleep(0.1)


@dataclass(frozen=True)
class Delivery:
    """The timing of one delivery from its maillog line: ``delays=a/b/c/d`` in seconds and ``conn_use``.

    As postconf(5) of Postfix 3.7 defines them: a is the time from arrival until the message
    last entered the active queue, b until the connection setup began, c the connection setup
    (DNS, EHLO and STARTTLS), d the message transmission. The smtp client logs ``conn_use=N``
    when the delivery was the Nth on a reused connection, and nothing on a new one.
    """

    delays: tuple[float, float, float, float]
    connection_use: int

    @classmethod
    def parse(cls, line: str) -> Delivery:
        delays = re.search(r" delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+),", line)
        if delays is None:
            raise SystemExit(f"no delays=a/b/c/d in this maillog line: {line}")
        use = re.search(r" conn_use=(\d+),", line)
        return cls(tuple(float(value) for value in delays.groups()), int(use.group(1)) if use else 1)


async def submit(port: int, ca: Path, batches: list[list[tuple[str, str, bytes, str]]], interval: float) -> dict[str, float]:
    """Send the batches over STARTTLS, one connection per batch; return each Message-ID's acceptance time.

    With `interval` 0 every sender sends as fast as the relay accepts. With `interval` > 0
    message n of the plan (batch n % len(batches)) is sent no earlier than n * `interval`
    seconds after the start, so the relay gets a steady rate of 1 / `interval` per second.
    """
    context = ssl.create_default_context(cafile=str(ca))
    accepted: dict[str, float] = {}
    started = time.monotonic()

    async def sender(index: int, batch: list[tuple[str, str, bytes, str]]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=context)
        await client.connect()
        for count, (mail_from, recipient, data, message_id) in enumerate(batch, 1):
            if count % 50 == 0:  # stay under the tenanttls relay's messages-per-connection limit
                await client.quit()
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=context)
                await client.connect()
            due = started + ((count - 1) * len(batches) + index) * interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await client.sendmail(mail_from, [recipient], data)
            accepted[message_id] = time.time()
        await client.quit()

    await asyncio.gather(*(sender(index, batch) for index, batch in enumerate(batches)))
    return accepted


def measure(name: str, port: int, fleet: Fleet, pki: RelayPki, door: FrontDoor, messages: int, senders: int,
            run: str, rate: float = 0.0) -> dict:
    """Send `messages` through the relay on `port`, at `rate` per second or (0) as fast as it accepts them.

    Return deliveries per second, submissions per second (until the relay accepted the last
    message), latencies and attribution counts.
    """
    door.clear()
    plan = []
    for number in range(messages):
        tenant = fleet.tenants[number % len(fleet.tenants)]
        message_id = f"<bench-{name}-{run}-{number}@{tenant.domain}>"
        mail_from, recipient, data = outbound_message(tenant, "normal-inside", message_id, number)
        plan.append((mail_from, recipient, data, message_id))
    batches = [plan[index::senders] for index in range(senders)]

    started = time.perf_counter()
    accepted = asyncio.run(submit(port, pki.ca_path, batches, 1 / rate if rate else 0.0))
    submitted = time.perf_counter() - started
    deadline = time.monotonic() + 300
    while len(door.messages()) < messages and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started

    received = door.messages()
    if len(received) < messages:
        raise SystemExit(f"{name}: the front door received {len(received)} of {messages} messages within 300 s")
    expected = {tenant.tenant_id: fleet.unique_names[tenant.tenant_id][0] for tenant in fleet.tenants}
    # The front door names the tenant; count the messages that presented that tenant's own certificate.
    by_certificate = sum(
        1 for message in received
        if message.certificate is not None and expected.get(message.tenant_id or "") in message.certificate.names
    )
    latencies = sorted(
        (message.received_at.timestamp() - accepted[message.message_id]) * 1000
        for message in received if message.message_id in accepted
    )
    return {
        "rate": messages / elapsed,
        "accept_rate": messages / submitted,
        "latency_median_ms": statistics.median(latencies),
        "latency_p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "attributed_by_certificate": by_certificate,
    }


LABELS = {
    "tenanttls": "tenanttls relay",
    "postfix": "Postfix, defaults",
    "postfix-tuned": "Postfix, tuned",
}


def run_relays(arguments: argparse.Namespace, folder: Path) -> tuple[dict[str, list[dict]], dict[str, dict[str, list[Delivery]]]]:
    """Start the front door and the three relays, run them in turn `--repeat` times and stop them.

    Return each relay's runs and each Postfix instance's deliveries from its maillog by phase
    (``flood``, ``paced``).
    """
    pki = RelayPki(folder / "relay-pki")
    fleet = KeptKeyFleet(folder / "fleet", arguments.tenants)
    fleet.assign("unique")
    door = FrontDoor(fleet.views, certificate=pki.server_certificate, key=pki.server_key,
                     trusted_cas=[pki.ca_path, folder / "fleet" / "ca" / "ca.pem"])
    door.start()
    postfixes = {
        "postfix": PostfixInstance(folder / "postfix", fleet, pki, door.port),
        "postfix-tuned": PostfixInstance(folder / "postfix-tuned", fleet, pki, door.port, tuned=True),
    }
    for path in (folder / "fleet" / "ca", pki.directory):
        os.chmod(path, 0o755)
    relay = RelayProcess(folder / "relay", fleet, pki, door.port)
    results: dict[str, list[dict]] = {name: [] for name in LABELS}
    deliveries: dict[str, dict[str, list[Delivery]]] = {name: {"flood": [], "paced": []} for name in postfixes}
    log_offsets = dict.fromkeys(postfixes, 0)
    try:
        for postfix in postfixes.values():
            postfix.start()
        relay.start()
        ports = {"tenanttls": relay.port} | {name: postfix.port for name, postfix in postfixes.items()}
        for run in range(arguments.repeat):
            for name, port in ports.items():
                flood = measure(name, port, fleet, pki, door, arguments.messages, arguments.senders, f"{run}-flood")
                if name in postfixes:
                    log_offsets[name], found = postfixes[name].deliveries(log_offsets[name], arguments.messages)
                    deliveries[name]["flood"] += found
                paced = measure(name, port, fleet, pki, door, arguments.latency_messages, arguments.senders,
                                f"{run}-paced", rate=arguments.latency_rate)
                if name in postfixes:
                    log_offsets[name], found = postfixes[name].deliveries(log_offsets[name], arguments.latency_messages)
                    deliveries[name]["paced"] += found
                results[name].append({
                    "rate": flood["rate"],
                    "accept_rate": flood["accept_rate"],
                    "flood_latency_median_ms": flood["latency_median_ms"],
                    "latency_median_ms": paced["latency_median_ms"],
                    "latency_p95_ms": paced["latency_p95_ms"],
                    "attributed_by_certificate": flood["attributed_by_certificate"] + paced["attributed_by_certificate"],
                })
    finally:
        relay.stop()
        for postfix in postfixes.values():
            postfix.stop()
        door.stop()
    return results, deliveries


def describe_deliveries(found: list[Delivery]) -> str:
    """Summarize Postfix's deliveries: median of each delays=a/b/c/d field and the share on reused connections."""
    medians = "/".join(f"{statistics.median(delivery.delays[field] for delivery in found) * 1000:.0f}" for field in range(4))
    reused = sum(1 for delivery in found if delivery.connection_use > 1)
    return f"delays a/b/c/d median {medians} ms, {reused} of {len(found)} on a reused connection"


def report(arguments: argparse.Namespace, results: dict[str, list[dict]], deliveries: dict[str, dict[str, list[Delivery]]]) -> None:
    """Print the median of the runs per relay, where Postfix's time went, and the ratios."""
    total = (arguments.messages + arguments.latency_messages)
    medians = {}
    for name, runs in results.items():
        medians[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        rates = ", ".join(f"{run['rate']:.0f}" for run in runs)
        figures = medians[name]
        print(f"  {LABELS[name]:<30} {figures['rate']:6.1f} deliveries/s (runs: {rates}), accepted "
              f"{figures['accept_rate']:.0f}/s, latency median {figures['flood_latency_median_ms']:.0f} ms | "
              f"paced: latency median {figures['latency_median_ms']:.0f} ms, p95 {figures['latency_p95_ms']:.0f} ms | "
              f"attributed by certificate {figures['attributed_by_certificate']:.0f}/{total}")
    for name, phases in deliveries.items():
        for phase, found in phases.items():
            print(f"  {LABELS[name]}, {phase}: {describe_deliveries(found)}")
    for name in deliveries:
        print(f"  ratio tenanttls / {LABELS[name]}: throughput {medians['tenanttls']['rate'] / medians[name]['rate']:.2f}, "
              f"paced median latency {medians['tenanttls']['latency_median_ms'] / medians[name]['latency_median_ms']:.2f}")
    slowest = min(figures["rate"] for figures in medians.values())
    if arguments.latency_rate > 0.8 * slowest:
        print(f"  NOTE: --latency-rate {arguments.latency_rate:g}/s is above 80% of the slowest relay's "
              f"{slowest:.0f} deliveries/s, so the paced latency includes queueing; use a lower rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20, help="tenants (sender domains), each with its own certificate")
    parser.add_argument("--messages", type=int, default=600, help="messages per flood run, sent as fast as the relay accepts them")
    parser.add_argument("--senders", type=int, default=4, help="parallel connections submitting to the relay")
    parser.add_argument("--latency-rate", type=float, default=40.0,
                        help="messages per second of the paced runs that measure latency")
    parser.add_argument("--latency-messages", type=int, default=200, help="messages per paced run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per relay; the median is printed")
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    version = subprocess.run([str(POSTFIX.parent / "postconf"), "-d", "mail_version"], capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{ssl.OPENSSL_VERSION}, Postfix {version.split('=')[-1].strip()}")
    print(f"started {started}, load average {load} (1, 5, 15 min)")
    with data_folder("tenanttls-postfix-bench-", keep=arguments.keep_data) as folder:
        os.chmod(folder, 0o755)  # the postfix user reads the configuration and certificates below it
        results, deliveries = run_relays(arguments, folder)

    print(f"{arguments.tenants} tenants, {arguments.senders} senders, median of {arguments.repeat} rounds; each round "
          f"runs every relay in turn: {arguments.messages} messages as fast as it accepts them (flood), then "
          f"{arguments.latency_messages} at {arguments.latency_rate:g}/s (paced)")
    report(arguments, results, deliveries)


if __name__ == "__main__":
    main()
