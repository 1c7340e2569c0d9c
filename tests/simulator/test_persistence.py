"""State, keys, TLS files and the clock survive a restart on the same data folder."""

from __future__ import annotations

import logging

from tenanttls.clock import OffsetClock
from tenanttls.simulator import Simulator, SimulatorState
from tenanttls.simulator.seed import build_tenant
from tests.fixtures.simulator import make_app_credentials, make_tenant
from tests.simulator.helpers import access_token, graph_token, https_client, invoke

NEW_CONNECTOR = {
    "Name": "CrosswareInboundConnector-Unique",
    "ConnectorType": "OnPremises",
    "SenderDomains": "*",
    "RestrictDomainsToCertificate": True,
    "TlsSenderCertificateName": "unique.crosswaretls.example",
}


def _names(http, tenant_id, token, cmdlet):
    response = invoke(http, tenant_id, token, cmdlet)
    assert response.status_code == 200, response.text
    return [item["Name"] for item in response.json()["value"]]


def test_restart_keeps_state(simulator_factory, app_credentials, tmp_path):
    tenant = make_tenant(accepted_domains=["contoso.com"])
    tenant_id = tenant["tenant_id"]
    data = tmp_path / "data"

    first = simulator_factory({"tenants": [tenant]}, data_dir=data)
    with https_client(first) as http:
        token = access_token(first, app_credentials, tenant_id)
        graph = graph_token(first, app_credentials, tenant_id)
        invoke(http, tenant_id, token, "Set-InboundConnector", {"Identity": "CrosswareInboundConnector", "Name": "CrosswareInboundConnector-BACKUP"})
        invoke(http, tenant_id, token, "New-InboundConnector", NEW_CONNECTOR)
        http.post("/v1.0/domains", json={"id": "relay.contoso.com"}, headers={"Authorization": f"Bearer {graph}"})
        http.patch("/_simulator/settings", json={"page_size": 5, "delays": {"connector_seconds": 60}})
        http.post("/_simulator/clock/advance", json={"seconds": 3600})
        clock_before = http.get("/_simulator/clock").json()
        mutations_before = http.get("/_simulator/mutations").json()["mutations"]
    ca_before = first.ca_path.read_bytes()
    certificate_before = (data / "tls" / "server.pem").read_bytes()
    first.stop()

    # Restart with the same seed: existing tenants are kept as they are.
    second = simulator_factory({"tenants": [tenant]}, data_dir=data)
    with https_client(second) as http:
        connectors = _names(http, tenant_id, token, "Get-InboundConnector")
        domains = _names(http, tenant_id, token, "Get-AcceptedDomain")
        settings = http.get("/_simulator/settings").json()
        clock_after = http.get("/_simulator/clock").json()
        mutations_after = http.get("/_simulator/mutations").json()["mutations"]

    assert connectors == ["CrosswareInboundConnector-BACKUP", "CrosswareInboundConnector-Unique"]
    assert "relay.contoso.com" in domains
    assert settings["page_size"] == 5
    assert settings["delays"]["connector_seconds"] == 60
    assert clock_before["offset_seconds"] == 3600
    assert clock_after["offset_seconds"] == 3600
    assert clock_after["now"] >= clock_before["now"]
    assert mutations_after[: len(mutations_before)] == mutations_before
    assert second.ca_path.read_bytes() == ca_before
    assert (data / "tls" / "server.pem").read_bytes() == certificate_before


def test_restart_keeps_signing_key(simulator_factory, app_credentials, tmp_path):
    tenant = make_tenant()
    data = tmp_path / "data"
    first = simulator_factory({"tenants": [tenant]}, data_dir=data)
    token = access_token(first, app_credentials, tenant["tenant_id"])
    first.stop()

    second = simulator_factory(data_dir=data)
    with https_client(second) as http:
        response = invoke(http, tenant["tenant_id"], token, "Get-InboundConnector")

    assert response.status_code == 200


def test_mail_view_delays_survive_restart(simulator_factory, app_credentials, tmp_path):
    tenant = make_tenant(delays={"connector_seconds": 600})
    tenant_id = tenant["tenant_id"]
    data = tmp_path / "data"
    first = simulator_factory({"tenants": [tenant]}, data_dir=data)
    with https_client(first) as http:
        invoke(http, tenant_id, access_token(first, app_credentials, tenant_id), "New-InboundConnector", NEW_CONNECTOR)
    first.stop()

    second = simulator_factory(data_dir=data)
    [early] = second.state.mail_view(second.clock.now(), [tenant_id])
    with https_client(second) as http:
        http.post("/_simulator/clock/advance", json={"seconds": 600})
    [late] = second.state.mail_view(second.clock.now(), [tenant_id])

    assert [item["Name"] for item in early.inbound_connectors] == ["CrosswareInboundConnector"]
    assert [item["Name"] for item in late.inbound_connectors] == ["CrosswareInboundConnector", "CrosswareInboundConnector-Unique"]


def test_server_certificate_renewed_for_new_host(tmp_path):
    data = tmp_path / "data"
    with Simulator(data, host="127.0.0.1"):
        pass
    ca_before = (data / "tls" / "ca.pem").read_bytes()
    certificate_before = (data / "tls" / "server.pem").read_bytes()

    with Simulator(data, host="127.0.0.2") as simulator:
        with https_client(simulator) as http:
            other_host = http.get("/_simulator/health")

    assert simulator.base_url.startswith("https://127.0.0.2:")
    assert other_host.status_code == 200
    assert (data / "tls" / "ca.pem").read_bytes() == ca_before
    assert (data / "tls" / "server.pem").read_bytes() != certificate_before


def test_private_keys_not_world_readable(simulator):
    data = simulator.data_dir

    for path in (data / "tls" / "ca.key", data / "tls" / "server.key", data / "keys" / "token-signing.key"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_offset_beyond_latest_time_dropped(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # A data folder written before the clock had a limit may hold such an offset.
    old_state = SimulatorState(data / "state.sqlite3", OffsetClock())
    old_state.set_clock_offset_seconds(1e12)
    old_state.close()

    with Simulator(data) as simulator:
        with https_client(simulator) as http:
            clock = http.get("/_simulator/clock")

    assert clock.status_code == 200
    assert clock.json()["offset_seconds"] == 0


def test_restart_keeps_changed_settings(simulator_factory, app_credentials, tmp_path, caplog):
    first_tenant = make_tenant()
    seed = {"tenants": [first_tenant], "settings": {"page_size": 1000, "delays": {"connector_seconds": 0}}}
    data = tmp_path / "data"
    first = simulator_factory(seed, data_dir=data)
    with https_client(first) as http:
        http.patch("/_simulator/settings", json={"page_size": 5, "delays": {"connector_seconds": 60}})
        mutations_before = len(http.get("/_simulator/mutations").json()["mutations"])
    first.stop()

    # The same seed file with one more tenant, as an operator restarts `serve --seed`.
    new_tenant = make_tenant()
    caplog.set_level(logging.INFO, logger="tenanttls.simulator")
    second = simulator_factory({**seed, "tenants": [first_tenant, new_tenant]}, data_dir=data)
    with https_client(second) as http:
        settings = http.get("/_simulator/settings").json()
        mutations = http.get("/_simulator/mutations").json()["mutations"][mutations_before:]

    assert settings["page_size"] == 5
    assert settings["delays"]["connector_seconds"] == 60
    assert [item["operation"] for item in mutations] == ["seed-tenant"]
    assert mutations[0]["tenant_id"] == new_tenant["tenant_id"]
    assert "simulator seed settings not applied" in caplog.text
    assert "tenants_added=1 tenants_kept=1 app=kept-stored settings=kept-stored" in caplog.text


def test_restart_keeps_stored_app(simulator_factory, app_credentials, tmp_path, caplog):
    tenant = make_tenant()
    data = tmp_path / "data"
    simulator_factory({"tenants": [tenant]}, data_dir=data).stop()

    other_app = make_app_credentials()
    caplog.set_level(logging.INFO, logger="tenanttls.simulator")
    second = simulator_factory({"app": other_app.seed_app(), "tenants": [tenant]}, data_dir=data)

    assert second.state.app["client_id"] == app_credentials.client_id
    assert f"simulator seed app not applied: client_id={other_app.client_id}" in caplog.text
    assert access_token(second, app_credentials, tenant["tenant_id"])


def test_first_start_applies_seed_settings(simulator_factory, tmp_path):
    simulator = simulator_factory({"tenants": [], "settings": {"page_size": 7}}, data_dir=tmp_path / "data")

    assert simulator.state.settings["page_size"] == 7


def test_verification_code_index_follows_edits(tmp_path):
    spec = make_tenant(accepted_domains=["contoso.com"])
    state = SimulatorState(tmp_path / "state.sqlite3", OffsetClock())
    state.add_tenant(build_tenant(spec, now=OffsetClock().now(), app_permissions=[], codes_taken=set(), position=0))
    tenant_id = spec["tenant_id"]
    code = state.tenant(tenant_id)["domains"]["contoso.com"]["verificationCode"]
    assert state.verification_code_owner(code) == (tenant_id, "contoso.com")

    with state.edit(tenant_id, "remove-domain") as draft:
        del draft["domains"]["contoso.com"]
    assert state.verification_code_owner(code) is None
    state.close()

    reopened = SimulatorState(tmp_path / "state.sqlite3", OffsetClock())
    initial = reopened.tenant(tenant_id)["initial_domain"]
    initial_code = reopened.tenant(tenant_id)["domains"][initial]["verificationCode"]
    assert reopened.verification_code_owner(initial_code) == (tenant_id, initial)
    assert reopened.verification_code_owner(code) is None
    reopened.close()
