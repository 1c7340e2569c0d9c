"""A Knot DNS server for the domain-verify tests: one zone on 127.0.0.1, open to RFC 2136 updates from loopback.

knotd runs as the ``knot`` user (the root test process drops to it), with its configuration,
zone and database in a fresh folder under /tmp that the knot user can read. The tests
publish the ``MS=`` TXT record with a real dynamic update, as a provider's DNS would get it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.update

START_TIMEOUT = 10.0


class KnotServer:
    """A running knotd: `address` is ``127.0.0.1:PORT``; `publish_txt` and `remove_txt` change the zone."""

    def __init__(self, zone: str, port: int) -> None:
        self.zone = zone
        self.port = port
        self.address = f"127.0.0.1:{port}"

    def _update(self, update: dns.update.UpdateMessage) -> None:
        response = dns.query.tcp(update, "127.0.0.1", port=self.port, timeout=5)
        assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())

    def publish_txt(self, name: str, value: str) -> None:
        """Add a TXT record ``value`` at `name` (a name inside the zone)."""
        update = dns.update.UpdateMessage(self.zone)
        update.add(f"{name}.", 60, "TXT", f'"{value}"')
        self._update(update)

    def remove_txt(self, name: str) -> None:
        """Delete every TXT record at `name`."""
        update = dns.update.UpdateMessage(self.zone)
        update.delete(f"{name}.", "TXT")
        self._update(update)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _configuration(folder: Path, zone: str, port: int) -> str:
    return f"""server:
    rundir: "{folder}/run"
    listen: 127.0.0.1@{port}

log:
  - target: stderr
    any: warning

database:
    storage: "{folder}/db"

control:
    listen: "{folder}/run/knot.sock"

acl:
  - id: loopback-update
    address: 127.0.0.1
    action: update

template:
  - id: default
    storage: "{folder}/zones"
    zonefile-sync: -1
    journal-content: all

zone:
  - domain: {zone}
    file: "{zone}.zone"
    acl: loopback-update
"""


def _zone_file(zone: str) -> str:
    return f"""$ORIGIN {zone}.
$TTL 60
@ SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60
@ NS ns1.{zone}.
ns1 A 127.0.0.1
"""


def _wait_until_serving(process: subprocess.Popen[bytes], zone: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    query = dns.message.make_query(f"{zone}.", "SOA")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"knotd exited with status {process.returncode}")
        try:
            response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=1)
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"knotd did not serve {zone} on 127.0.0.1:{port} within {START_TIMEOUT} s")


@contextmanager
def knot_server(zone: str) -> Iterator[KnotServer]:
    """Run knotd authoritative for `zone` on a free port of 127.0.0.1 and stop it on exit."""
    folder = Path(tempfile.mkdtemp(prefix="tenanttls-knot-"))
    port = _free_port()
    for name in ("run", "db", "zones"):
        (folder / name).mkdir()
    (folder / "knot.conf").write_text(_configuration(folder, zone, port))
    (folder / "zones" / f"{zone}.zone").write_text(_zone_file(zone))
    os.chmod(folder, 0o755)
    shutil.chown(folder, "knot", "knot")
    for path in folder.rglob("*"):
        shutil.chown(path, "knot", "knot")

    # Popen drops to the knot user itself (as runuser would), so the PID is knotd's own.
    process = subprocess.Popen(
        ["knotd", "-c", str(folder / "knot.conf")],
        user="knot",
        group="knot",
        extra_groups=[],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_serving(process, zone, port)
        yield KnotServer(zone, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
