"""Compare ``tenanttls relay`` with Postfix presenting a client certificate per sender domain.

Run it from the repository root as root, because Postfix's master process starts as root
and drops to the ``postfix`` user. It needs Debian's Postfix (``apt-get install postfix``).
The system's own Postfix instance is not used and need not run:

    .venv/bin/python benchmarks/postfix_bench.py [--tenants 20] [--messages 600] [--senders 4] [--repeat 3]

``tenanttls relay`` runs as its own process with a settings file, as an operator runs
it, with its durable queue (fsync on). Both relays get the same messages from the same
senders and deliver to the same simulator SMTP front door on 127.0.0.1, which checks the
client certificate and attributes each message to a tenant. The senders and the front
door share this benchmark's process. Runs alternate (tenanttls, Postfix, tenanttls, …)
so that load from other processes hits both alike. The benchmark prints the median of
`--repeat` runs: deliveries per second, per-message latency (accepted by the relay until
accepted by the front door) and the ratio tenanttls / Postfix.

The Postfix set-up is the one a provider would build without tenanttls: a private
instance (its own ``main.cf``, ``master.cf`` and queue in a temporary folder, started
with ``postfix -c DIR start``) listening on 127.0.0.1, with one ``smtp`` transport per
tenant in ``master.cf`` that overrides ``smtp_tls_cert_file`` and ``smtp_tls_key_file``
with ``-o``, and ``sender_dependent_default_transport_maps`` choosing the transport by
the envelope sender's domain (postconf(5) of Postfix 3.7). Mail with an empty envelope
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
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import time
from datetime import datetime
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostfixInstance:
    """A private Postfix instance on 127.0.0.1 with one client certificate per tenant's sender domain."""

    def __init__(self, folder: Path, fleet: Fleet, pki: RelayPki, door_port: int) -> None:
        if not POSTFIX.exists():
            raise SystemExit("Postfix is not installed; install it with: apt-get install postfix")
        if os.geteuid() != 0:
            raise SystemExit("run as root: Postfix's master process starts as root")
        self.folder = folder
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
        (self.config_dir / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))

    def _write_master(self, fleet: Fleet, door_port: int) -> None:
        lines = [f"127.0.0.1:{self.port} inet n - n - - smtpd\n", MASTER_SERVICES]
        for index, (chain, key) in enumerate(self.certificates.values()):
            lines.append(f"t{index} unix - - n - - smtp\n  -o smtp_tls_cert_file={chain}\n  -o smtp_tls_key_file={key}\n")
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
        subprocess.run([str(POSTFIX), "-c", str(self.config_dir), "stop"], capture_output=True, text=True, timeout=60)

    def maillog(self) -> str:
        path = self.folder / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


async def submit(port: int, ca: Path, batches: list[list[tuple[str, str, bytes, str]]]) -> dict[str, float]:
    """Send the batches over STARTTLS, one connection per batch; return each Message-ID's acceptance time."""
    context = ssl.create_default_context(cafile=str(ca))
    accepted: dict[str, float] = {}

    async def sender(batch: list[tuple[str, str, bytes, str]]) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=context)
        await client.connect()
        for count, (mail_from, recipient, data, message_id) in enumerate(batch, 1):
            if count % 50 == 0:  # stay under the tenanttls relay's messages-per-connection limit
                await client.quit()
                client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True, tls_context=context)
                await client.connect()
            await client.sendmail(mail_from, [recipient], data)
            accepted[message_id] = time.time()
        await client.quit()

    await asyncio.gather(*(sender(batch) for batch in batches))
    return accepted


def measure(name: str, port: int, fleet: Fleet, pki: RelayPki, door: FrontDoor, messages: int, senders: int, run: int) -> dict:
    """Send `messages` through the relay on `port`; return rate, latencies and attribution counts."""
    door.clear()
    plan = []
    for number in range(messages):
        tenant = fleet.tenants[number % len(fleet.tenants)]
        message_id = f"<bench-{name}-{run}-{number}@{tenant.domain}>"
        mail_from, recipient, data = outbound_message(tenant, "normal-inside", message_id, number)
        plan.append((mail_from, recipient, data, message_id))
    batches = [plan[index::senders] for index in range(senders)]

    started = time.perf_counter()
    accepted = asyncio.run(submit(port, pki.ca_path, batches))
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
        "latency_median_ms": statistics.median(latencies),
        "latency_p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "attributed_by_certificate": by_certificate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20, help="tenants (sender domains), each with its own certificate")
    parser.add_argument("--messages", type=int, default=600, help="messages per run")
    parser.add_argument("--senders", type=int, default=4, help="parallel connections submitting to the relay")
    parser.add_argument("--repeat", type=int, default=3, help="runs per relay; the median is printed")
    add_keep_data_option(parser)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    version = subprocess.run([str(POSTFIX.parent / "postconf"), "-d", "mail_version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, Python "
          f"{platform.python_version()}, {ssl.OPENSSL_VERSION}, Postfix {version.split('=')[-1].strip()}")
    with data_folder("tenanttls-postfix-bench-", keep=arguments.keep_data) as folder:
        os.chmod(folder, 0o755)  # the postfix user reads the configuration and certificates below it
        pki = RelayPki(folder / "relay-pki")
        fleet = KeptKeyFleet(folder / "fleet", arguments.tenants)
        fleet.assign("unique")
        door = FrontDoor(fleet.views, certificate=pki.server_certificate, key=pki.server_key,
                         trusted_cas=[pki.ca_path, folder / "fleet" / "ca" / "ca.pem"])
        door.start()
        postfix = PostfixInstance(folder / "postfix", fleet, pki, door.port)
        for path in (folder / "fleet" / "ca", pki.directory):
            os.chmod(path, 0o755)
        postfix.start()
        relay = RelayProcess(folder / "relay", fleet, pki, door.port)
        relay.start()
        try:
            results: dict[str, list[dict]] = {"tenanttls": [], "postfix": []}
            for run in range(arguments.repeat):
                results["tenanttls"].append(measure("tenanttls", relay.port, fleet, pki, door, arguments.messages, arguments.senders, run))
                results["postfix"].append(measure("postfix", postfix.port, fleet, pki, door, arguments.messages, arguments.senders, run))
        finally:
            relay.stop()
            postfix.stop()
            door.stop()

    print(f"{arguments.messages} messages per run, {arguments.tenants} tenants, {arguments.senders} senders, "
          f"median of {arguments.repeat} alternating runs; started {datetime.now().isoformat(timespec='seconds')}")
    medians = {}
    for name, runs in results.items():
        medians[name] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        rates = ", ".join(f"{run['rate']:.0f}" for run in runs)
        print(f"  {name:<9} {medians[name]['rate']:7.1f} deliveries/s (runs: {rates}); latency median "
              f"{medians[name]['latency_median_ms']:.0f} ms, p95 {medians[name]['latency_p95_ms']:.0f} ms; "
              f"attributed by certificate {medians[name]['attributed_by_certificate']:.0f}/{arguments.messages}")
    print(f"  ratio tenanttls / Postfix: throughput {medians['tenanttls']['rate'] / medians['postfix']['rate']:.2f}, "
          f"median latency {medians['tenanttls']['latency_median_ms'] / medians['postfix']['latency_median_ms']:.2f}")


if __name__ == "__main__":
    main()
