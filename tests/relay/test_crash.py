"""The relay killed (SIGKILL) while messages are queued and being delivered, then restarted.

After the restart every message the relay accepted is delivered exactly once, or is
listed as a possible duplicate in the relay's outcomes.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tenanttls.simulator.smtp import FrontDoor
from tests.fixtures.smtp import LEGACY_NAME, add_tenant, outbound_message, submit, wait_for

TENANT_A = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
TENANT_B = "5c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
MESSAGES = 60


class RelayProcess:
    """`tenanttls relay` in a child process, started and killed by its PID."""

    def __init__(self, workdir: Path, arguments: list[str], environment: dict[str, str]) -> None:
        self.workdir = workdir
        self.arguments = arguments
        self.environment = environment
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    def start(self) -> RelayProcess:
        self.starts += 1
        port_file = self.workdir / f"port-{self.starts}"
        log = open(self.workdir / f"relay-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from tenanttls.cli import main; main()", "-v", "relay", *self.arguments,
             "--port-file", str(port_file)],
            env=self.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert wait_for(lambda: port_file.exists() and port_file.read_text().strip() != "" or self.process.poll() is not None, timeout=30)
        assert self.process.poll() is None, (self.workdir / f"relay-{self.starts}.log").read_text()
        self.port = int(port_file.read_text())
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def relay_process(tmp_path, store, store_url, smtp_pki, server_pair, legacy_pair):
    processes: list[RelayProcess] = []

    def build(smart_host_port: int) -> RelayProcess:
        key = os.urandom(32)
        environment = dict(os.environ)
        environment.update(
            TENANTTLS_DATABASE_URL=store_url,
            TENANTTLS_KEY_ENCRYPTION_KEY="env:TEST_RELAY_KEK",
            TEST_RELAY_KEK=base64.b64encode(key).decode(),
            TENANTTLS_LEGACY_CERTIFICATE_NAME=LEGACY_NAME,
        )
        arguments = [
            "--data", str(tmp_path / "data"),
            "--listen", "127.0.0.1:0",
            "--smart-host", f"127.0.0.1:{smart_host_port}",
            "--smart-host-ca", str(smtp_pki.ca_path),
            "--queue-dir", str(tmp_path / "queue"),
            "--tls-certificate", str(server_pair.certificate),
            "--tls-key", str(server_pair.key),
            "--legacy-certificate", str(legacy_pair.certificate),
            "--legacy-key", str(legacy_pair.key),
            "--retry", "0.3",
        ]
        process = RelayProcess(tmp_path, arguments, environment)
        processes.append(process)
        return process

    yield build
    for process in processes:
        process.terminate()


def queued_files(queue_dir: Path) -> list[Path]:
    return list((queue_dir / "messages").glob("*.json"))


async def test_kill_while_queued_and_delivering(relay_process, store, mail_views, smtp_pki, server_pair, tmp_path):
    add_tenant(store, TENANT_A, "contoso.onmicrosoft.com")
    add_tenant(store, TENANT_B, "fabrikam.onmicrosoft.com")
    mail_views.add_tenant(TENANT_A, ["contoso.com"])
    mail_views.add_tenant(TENANT_B, ["fabrikam.com"])

    # The smart host is down at first, so every message waits in the queue.
    door = FrontDoor(mail_views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path])
    door.start()
    port = door.port
    door.stop()
    relay = relay_process(port).start()

    sent = []
    for number in range(MESSAGES):
        tenant, domain = (TENANT_A, "contoso.com") if number % 2 else (TENANT_B, "fabrikam.com")
        message_id = f"<crash-{number}@{domain}>"
        await submit(relay.port, smtp_pki, f"user{number}@{domain}", [f"rcpt{number}@{domain}"],
                     outbound_message(tenant, f"user{number}@{domain}", f"rcpt{number}@{domain}", message_id))
        sent.append(message_id)
    assert len(queued_files(tmp_path / "queue")) == MESSAGES

    # 1. Kill while everything is queued and nothing was delivered.
    relay.kill()
    relay.start()

    # 2. The smart host comes back; kill the relay in the middle of delivering.
    door = FrontDoor(mail_views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path], port=port)
    door.start()
    try:
        assert wait_for(lambda: len(door.messages()) >= MESSAGES // 3, timeout=60)
        relay.kill()
        delivered_before_restart = len(door.messages())
        relay.start()

        assert wait_for(lambda: not queued_files(tmp_path / "queue"), timeout=60)
        received = Counter(message.message_id for message in door.messages())
    finally:
        relay.terminate()
        door.stop()

    from tenanttls.relay.queue import MessageQueue

    outcomes = MessageQueue(tmp_path / "queue").outcomes()
    reported = {line["message_id"] for line in outcomes if line["outcome"] == "possible-duplicate"}
    missing = [message_id for message_id in sent if received[message_id] == 0]
    unreported_duplicates = [message_id for message_id, count in received.items() if count > 1 and message_id not in reported]

    assert delivered_before_restart < MESSAGES
    assert missing == []
    assert unreported_duplicates == []
    assert set(received) == set(sent)
    assert all(count <= 2 for count in received.values())
