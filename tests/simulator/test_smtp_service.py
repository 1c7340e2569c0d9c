"""The front door started by the simulator itself, reading the simulated tenants, with the relay in front."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx

from tenanttls.clock import ManualClock
from tests.fixtures.simulator import DEFAULT_INITIAL_DOMAIN, DEFAULT_TENANT_ID, make_tenant
from tests.fixtures.smtp import add_tenant, outbound_message, submit, wait_for


def test_simulator_starts_front_door(simulator_factory, simulator_tenant):
    simulator = simulator_factory({"tenants": [simulator_tenant]}, smtp_port=0)

    assert simulator.smtp_port not in (None, 0)


def test_no_front_door_without_smtp_port(simulator):
    context = ssl.create_default_context(cafile=simulator.ca_path)
    response = httpx.get(f"{simulator.base_url}/_simulator/messages", verify=context)
    health = httpx.get(f"{simulator.base_url}/_simulator/health", verify=context)

    assert response.status_code == 404
    assert "smtp" not in health.json()


def test_health_shows_front_door(simulator_factory, simulator_tenant):
    simulator = simulator_factory({"tenants": [simulator_tenant]}, smtp_port=0)

    health = httpx.get(f"{simulator.base_url}/_simulator/health", verify=ssl.create_default_context(cafile=simulator.ca_path))

    assert health.json()["smtp"] == f"127.0.0.1:{simulator.smtp_port}"


def test_serve_prints_front_door(tmp_path):
    command = [str(Path(sys.executable).with_name("tenanttls")), "simulator", "serve", "--data", str(tmp_path), "--smtp-port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(4)]
        port = int(lines[3].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            greeting = connection.makefile("rb").readline()
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)

    assert lines[0].startswith("simulator listening: https://127.0.0.1:")
    assert lines[3] == f"SMTP front door: 127.0.0.1:{port}"
    assert greeting.startswith(b"220 ")


async def test_relay_through_simulator(simulator_factory, relay_factory, store, smtp_pki, legacy_pair):
    tenant = make_tenant(DEFAULT_TENANT_ID, DEFAULT_INITIAL_DOMAIN, accepted_domains=["contoso.com"])
    simulator = simulator_factory({"tenants": [tenant]}, smtp_port=0, clock=ManualClock(datetime.now(timezone.utc)))
    api = httpx.Client(base_url=simulator.base_url, verify=ssl.create_default_context(cafile=simulator.ca_path))
    trusted = api.post("/_simulator/smtp/trusted-cas", content=smtp_pki.ca_path.read_bytes())
    add_tenant(store, DEFAULT_TENANT_ID, DEFAULT_INITIAL_DOMAIN)
    relay = relay_factory(f"127.0.0.1:{simulator.smtp_port}", smart_host_ca=simulator.ca_path)

    await submit(relay.port, smtp_pki, "alice@contoso.com", ["x@outside.example"],
                 outbound_message(DEFAULT_TENANT_ID, "alice@contoso.com", "x@outside.example", "<sim-1@contoso.com>"))
    await submit(relay.port, smtp_pki, "", ["x@outside.example"],
                 outbound_message(DEFAULT_TENANT_ID, "", "x@outside.example", "<sim-2@contoso.com>"))

    assert trusted.status_code == 200
    assert wait_for(lambda: any(d["code"] == 550 for d in api.get("/_simulator/messages").json()["decisions"]))
    listing = api.get("/_simulator/messages").json()
    [accepted] = listing["messages"]
    assert accepted["message_id"] == "<sim-1@contoso.com>"
    assert accepted["tenant_id"] == DEFAULT_TENANT_ID
    assert accepted["connector"] == "CrosswareInboundConnector"
    assert accepted["certificate"]["names"] == ["*.crossware.co.nz"]
    rejected = [d for d in listing["decisions"] if d["code"] == 550]
    assert rejected[0]["mail_from"] == ""
    assert rejected[0]["reply"] == "550 5.7.64 TenantAttribution; Relay Access Denied"
