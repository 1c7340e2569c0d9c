"""The simulated Graph /v1.0/domains API over HTTPS, with domain verification against a real Knot server."""

from __future__ import annotations

import re
import shutil
import socket
from datetime import datetime, timezone

import pytest

from tenanttls.clock import ManualClock
from tenanttls.errors import InvalidInput
from tenanttls.simulator.seed import build_tenant
from tests.fixtures.simulator import DEFAULT_INITIAL_DOMAIN, DEFAULT_TENANT_ID, make_tenant
from tests.simulator.helpers import access_token, graph_token, https_client, invoke
from tests.simulator.knot import knot_server

ZONE = "crosswaretls.example"
UNIQUE_NAME = f"7k2m9q4x8w1c5v3b6n0z2r4t8y.{ZONE}"


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _graph_error(response):
    error = response.json()["error"]
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])
    return error["code"], error["message"]


def _add(client, token, name):
    return client.post("/v1.0/domains", json={"id": name}, headers=_auth(token))


def _records(client, token, name):
    response = client.get(f"/v1.0/domains/{name}/verificationDnsRecords", headers=_auth(token))
    assert response.status_code == 200, response.text
    return response.json()["value"]


def _proof(client, token, name):
    [txt] = [record for record in _records(client, token, name) if record["recordType"] == "Txt"]
    return txt["text"]


# --- reading ------------------------------------------------------------------------------------------


def test_list_domains(client, domains_token):
    response = client.get("/v1.0/domains", headers=_auth(domains_token))

    assert response.status_code == 200
    initial, custom = response.json()["value"]
    assert initial["id"] == DEFAULT_INITIAL_DOMAIN
    assert initial["isInitial"] is True
    assert initial["isDefault"] is True
    assert initial["isVerified"] is True
    assert custom["id"] == "contoso.com"
    assert custom["isInitial"] is False
    assert custom["authenticationType"] == "Managed"


def test_seeded_default_is_only_default(simulator_factory, app_credentials):
    tenant = make_tenant(accepted_domains=[{"DomainName": "contoso.com", "Default": True}, "fabrikam.com"])
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, tenant["tenant_id"])
        domains = http.get("/v1.0/domains", headers=_auth(token)).json()["value"]

    defaults = [domain["id"] for domain in domains if domain["isDefault"]]
    assert defaults == ["contoso.com"]
    assert len(domains) == 3


def test_seed_with_two_defaults_rejected():
    tenant = make_tenant(
        accepted_domains=[{"DomainName": "contoso.com", "Default": True}, {"DomainName": "fabrikam.com", "Default": True}]
    )

    with pytest.raises(InvalidInput, match="marks 2 accepted domains Default \\(contoso.com, fabrikam.com\\)"):
        build_tenant(tenant, now=datetime.now(timezone.utc), app_permissions=[])


def test_saved_state_with_two_defaults(simulator_factory, app_credentials):
    tenant = make_tenant(accepted_domains=[{"DomainName": "contoso.com", "Default": True}])
    simulator = simulator_factory({"tenants": [tenant]})
    # A state saved by an older seed marked the initial domain default as well.
    with simulator.state.edit(tenant["tenant_id"], "test-mark-initial-default", {}) as draft:
        draft["domains"][tenant["initial_domain"]]["isDefault"] = True

    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, tenant["tenant_id"])
        domains = http.get("/v1.0/domains", headers=_auth(token)).json()["value"]
        exchange_token = access_token(simulator, app_credentials, tenant["tenant_id"])
        accepted = invoke(http, tenant["tenant_id"], exchange_token, "Get-AcceptedDomain").json()["value"]

    assert [domain["id"] for domain in domains if domain["isDefault"]] == ["contoso.com"]
    assert [domain["DomainName"] for domain in accepted if domain["Default"]] == ["contoso.com"]


@pytest.mark.parametrize("name", ["contoso.com", "CONTOSO.com"])
def test_get_domain(client, domains_token, name):
    response = client.get(f"/v1.0/domains/{name}", headers=_auth(domains_token))

    assert response.status_code == 200
    assert response.json()["id"] == "contoso.com"
    assert response.json()["@odata.context"].endswith("/v1.0/$metadata#domains/$entity")


def test_get_unknown_domain(client, domains_token):
    response = client.get("/v1.0/domains/fabrikam.com", headers=_auth(domains_token))

    assert response.status_code == 404
    code, message = _graph_error(response)
    assert code == "Request_ResourceNotFound"
    assert message.startswith("Resource 'fabrikam.com' does not exist")


def test_select_domain_properties(client, domains_token):
    one = client.get("/v1.0/domains/contoso.com", params={"$select": "id,isVerified"}, headers=_auth(domains_token))
    listed = client.get("/v1.0/domains", params={"$select": "id"}, headers=_auth(domains_token))
    unknown = client.get("/v1.0/domains", params={"$select": "id,colour"}, headers=_auth(domains_token))

    assert {key for key in one.json() if not key.startswith("@")} == {"id", "isVerified"}
    assert listed.json()["value"] == [{"id": DEFAULT_INITIAL_DOMAIN}, {"id": "contoso.com"}]
    assert unknown.status_code == 400


# --- adding ------------------------------------------------------------------------------------------------


def test_add_domain(client, domains_token):
    response = _add(client, domains_token, UNIQUE_NAME.upper())
    mutations = client.get("/_simulator/mutations", params={"tenant": DEFAULT_TENANT_ID}).json()["mutations"]

    assert response.status_code == 201
    body = response.json()
    assert body["id"] == UNIQUE_NAME
    assert body["isVerified"] is False
    assert body["isRoot"] is True
    assert body["isInitial"] is False
    assert body["supportedServices"] == []
    assert response.headers["location"].endswith(f"/v1.0/domains('{UNIQUE_NAME}')")
    assert mutations[-1]["operation"] == "add-domain"


def test_add_existing_domain(client, domains_token):
    response = _add(client, domains_token, "contoso.com")

    assert response.status_code == 400
    assert _graph_error(response) == ("Request_BadRequest", "Another object with the same value for property id already exists.")


@pytest.mark.parametrize(
    "body",
    [
        {"id": ""},
        {"id": "*.contoso.net"},
        {"id": "contoso"},
        {"id": "bad name.com"},
        {"id": "quote'\".com"},
        {"id": "x" * 10_240 + ".com"},
        {"id": 42},
        {},
        ["contoso.net"],
        {"id": "contoso.net", "isVerified": True},
    ],
)
def test_add_invalid_domain(client, domains_token, body):
    before = client.get("/v1.0/domains", headers=_auth(domains_token)).json()["value"]

    response = client.post("/v1.0/domains", json=body, headers=_auth(domains_token))

    assert response.status_code == 400
    assert _graph_error(response)[0] == "Request_BadRequest"
    assert client.get("/v1.0/domains", headers=_auth(domains_token)).json()["value"] == before


def test_add_domain_malformed_json(client, domains_token):
    response = client.post("/v1.0/domains", content=b'{"id": ', headers={**_auth(domains_token), "Content-Type": "application/json"})

    assert response.status_code == 400
    assert _graph_error(response)[0] == "BadRequest"


def test_add_domain_deeply_nested_json(client, domains_token):
    body = b"[" * 100_000 + b"]" * 100_000

    response = client.post("/v1.0/domains", content=body, headers={**_auth(domains_token), "Content-Type": "application/json"})

    assert response.status_code == 400
    assert _graph_error(response)[0] == "BadRequest"


def test_add_microsoft_managed_name(client, domains_token):
    response = _add(client, domains_token, "other.onmicrosoft.com")

    assert response.status_code == 400


def test_add_domain_verified_in_other_tenant(simulator_factory, app_credentials):
    first = make_tenant(accepted_domains=["fabrikam.com"])
    second = make_tenant()
    simulator = simulator_factory({"tenants": [first, second]})

    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, second["tenant_id"])
        taken = _add(http, token, "fabrikam.com")
        initial = _add(http, token, first["initial_domain"])

    assert taken.status_code == 400
    assert "already verified in another tenant" in taken.json()["error"]["message"]
    assert initial.status_code == 400


def test_subdomain_of_verified_domain_is_verified(client, domains_token):
    response = _add(client, domains_token, "relay.contoso.com")

    assert response.status_code == 201
    assert response.json()["isVerified"] is True
    assert response.json()["isRoot"] is False
    assert response.json()["supportedServices"] == ["Email"]


def test_supported_services_of_seeded_domains(client, domains_token):
    domains = {item["id"]: item for item in client.get("/v1.0/domains", headers=_auth(domains_token)).json()["value"]}

    assert domains["contoso.com"]["supportedServices"] == ["Email"]
    assert domains["contoso.onmicrosoft.com"]["supportedServices"] == ["Email", "OfficeCommunicationsOnline"]


# --- verification records --------------------------------------------------------------------------------


def test_verification_records(client, domains_token):
    _add(client, domains_token, UNIQUE_NAME)

    txt, mx = _records(client, domains_token, UNIQUE_NAME)

    assert txt["recordType"] == "Txt"
    assert re.fullmatch(r"MS=ms\d{8}", txt["text"])
    assert txt["label"] == UNIQUE_NAME
    assert txt["ttl"] == 3600
    assert txt["isOptional"] is False
    assert txt["supportedService"] == "Email"
    assert txt["@odata.type"] == "#microsoft.graph.domainDnsTxtRecord"
    assert mx["recordType"] == "Mx"
    assert mx["mailExchange"] == f"{txt['text'][3:]}.msv1.invalid"


def test_verification_code_unique_per_tenant_and_domain(simulator_factory, app_credentials):
    first, second = make_tenant(), make_tenant()
    simulator = simulator_factory({"tenants": [first, second]})

    with https_client(simulator) as http:
        token_one = graph_token(simulator, app_credentials, first["tenant_id"])
        token_two = graph_token(simulator, app_credentials, second["tenant_id"])
        for token in (token_one, token_two):
            _add(http, token, "a." + ZONE)
            _add(http, token, "b." + ZONE)
        codes = [_proof(http, token, name) for token in (token_one, token_two) for name in ("a." + ZONE, "b." + ZONE)]

    assert len(set(codes)) == 4


def test_verification_code_same_after_readding(client, domains_token):
    _add(client, domains_token, UNIQUE_NAME)
    before = _proof(client, domains_token, UNIQUE_NAME)
    client.delete(f"/v1.0/domains/{UNIQUE_NAME}", headers=_auth(domains_token))
    _add(client, domains_token, UNIQUE_NAME)

    assert _proof(client, domains_token, UNIQUE_NAME) == before


def test_verification_records_unknown_domain(client, domains_token):
    response = client.get("/v1.0/domains/unknown.example/verificationDnsRecords", headers=_auth(domains_token))

    assert response.status_code == 404


# --- verify against a real DNS server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def knot():
    if shutil.which("knotd") is None:
        pytest.skip("knotd is not installed; install the Debian package knot")
    with knot_server(ZONE) as server:
        yield server


@pytest.fixture
def verifying_simulator(simulator_factory, simulator_tenant, knot):
    """A simulator whose verify queries the Knot server, with a 10-minute accepted-domain delay, on a ManualClock."""
    clock = ManualClock(datetime.now(timezone.utc))
    return simulator_factory(
        {"tenants": [simulator_tenant], "settings": {"delays": {"accepted_domain_seconds": 600}}},
        clock=clock,
        dns_nameserver=knot.address,
    )


@pytest.mark.knot
def test_verify_after_publishing_record(verifying_simulator, app_credentials, knot):
    simulator = verifying_simulator
    name = "verify-ok." + ZONE
    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, DEFAULT_TENANT_ID)
        exchange = access_token(simulator, app_credentials, DEFAULT_TENANT_ID)
        _add(http, token, name)
        missing = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(token))
        unverified = http.get(f"/v1.0/domains/{name}", headers=_auth(token)).json()

        knot.publish_txt(name, _proof(http, token, name))
        verified = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(token))
        again = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(token))

        listed_early = [item["Name"] for item in invoke(http, DEFAULT_TENANT_ID, exchange, "Get-AcceptedDomain").json()["value"]]
        simulator.clock.advance(600)
        listed_late = [item["Name"] for item in invoke(http, DEFAULT_TENANT_ID, exchange, "Get-AcceptedDomain").json()["value"]]

    assert missing.status_code == 400
    assert _graph_error(missing)[0] == "Request_BadRequest"
    assert "was not found" in missing.json()["error"]["message"]
    assert unverified["isVerified"] is False
    assert verified.status_code == 200
    assert verified.json()["isVerified"] is True
    assert verified.json()["supportedServices"] == ["Email"]
    assert again.status_code == 400
    assert name not in listed_early
    assert name in listed_late


@pytest.mark.knot
def test_verify_with_select(verifying_simulator, app_credentials, knot):
    simulator = verifying_simulator
    name = "verify-select." + ZONE
    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, DEFAULT_TENANT_ID)
        _add(http, token, name)
        knot.publish_txt(name, _proof(http, token, name))
        verified = http.post(f"/v1.0/domains/{name}/verify", params={"$select": "id,isVerified"}, headers=_auth(token))

    assert verified.status_code == 200
    assert {key for key in verified.json() if not key.startswith("@")} == {"id", "isVerified"}
    assert verified.json()["isVerified"] is True


def test_verify_rejects_unknown_select_first(client, domains_token):
    _add(client, domains_token, "unverified.example.org")

    response = client.post("/v1.0/domains/unverified.example.org/verify", params={"$select": "colour"}, headers=_auth(domains_token))
    domain = client.get("/v1.0/domains/unverified.example.org", headers=_auth(domains_token)).json()

    assert response.status_code == 400
    assert _graph_error(response)[0] == "BadRequest"
    assert domain["isVerified"] is False


@pytest.mark.knot
def test_verify_with_wrong_value(verifying_simulator, app_credentials, knot):
    simulator = verifying_simulator
    name = "verify-wrong." + ZONE
    knot.publish_txt(name, "MS=ms00000000")
    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, DEFAULT_TENANT_ID)
        _add(http, token, name)
        response = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(token))
        domain = http.get(f"/v1.0/domains/{name}", headers=_auth(token)).json()

    assert response.status_code == 400
    assert domain["isVerified"] is False


@pytest.mark.knot
def test_verify_refused_when_other_tenant_verified_first(simulator_factory, app_credentials, knot):
    first, second = make_tenant(), make_tenant()
    simulator = simulator_factory({"tenants": [first, second]}, dns_nameserver=knot.address)
    name = "contested." + ZONE

    with https_client(simulator) as http:
        token_one = graph_token(simulator, app_credentials, first["tenant_id"])
        token_two = graph_token(simulator, app_credentials, second["tenant_id"])
        _add(http, token_one, name)
        _add(http, token_two, name)
        knot.publish_txt(name, _proof(http, token_one, name))
        knot.publish_txt(name, _proof(http, token_two, name))
        winner = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(token_one))
        loser = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(token_two))

    assert winner.status_code == 200
    assert loser.status_code == 400
    assert "already verified in another tenant" in loser.json()["error"]["message"]


@pytest.mark.knot
def test_subdomain_of_other_tenants_domain(simulator_factory, app_credentials, knot):
    # Microsoft 365's Domains FAQ: a subdomain of a domain added to one organization can be
    # added to another, which proves it with its own TXT record.
    parent = "divisions." + ZONE
    owner = make_tenant(accepted_domains=[parent])
    other = make_tenant()
    simulator = simulator_factory({"tenants": [owner, other]}, dns_nameserver=knot.address)
    name = "other." + parent

    with https_client(simulator) as http:
        other_token = graph_token(simulator, app_credentials, other["tenant_id"])
        owner_token = graph_token(simulator, app_credentials, owner["tenant_id"])
        added = _add(http, other_token, name)
        unproven = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(other_token))
        knot.publish_txt(name, _proof(http, other_token, name))
        verified = http.post(f"/v1.0/domains/{name}/verify", headers=_auth(other_token))
        owner_adds = _add(http, owner_token, name)
        owner_sibling = _add(http, owner_token, "sibling." + parent)

    assert added.status_code == 201
    assert added.json()["isVerified"] is False
    assert added.json()["isRoot"] is True
    assert unproven.status_code == 400
    assert verified.status_code == 200
    assert verified.json()["isVerified"] is True
    assert owner_adds.status_code == 400
    assert "already verified in another tenant" in owner_adds.json()["error"]["message"]
    assert owner_sibling.json()["isVerified"] is True


def test_verify_when_nameserver_does_not_answer(simulator_factory, simulator_tenant, app_credentials):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        # A bound UDP socket that never replies: the query times out.
        silent.bind(("127.0.0.1", 0))
        simulator = simulator_factory({"tenants": [simulator_tenant]}, dns_nameserver=f"127.0.0.1:{silent.getsockname()[1]}")
        with https_client(simulator) as http:
            token = graph_token(simulator, app_credentials, DEFAULT_TENANT_ID)
            _add(http, token, UNIQUE_NAME)
            response = http.post(f"/v1.0/domains/{UNIQUE_NAME}/verify", headers=_auth(token))

    assert response.status_code == 400
    assert "DNS query" in response.json()["error"]["message"]


def test_verify_unknown_domain(client, domains_token):
    response = client.post("/v1.0/domains/unknown.example/verify", headers=_auth(domains_token))

    assert response.status_code == 404


# --- accepted-domain propagation --------------------------------------------------------------------------------


def test_accepted_domain_appears_after_delay(simulator_factory, app_credentials):
    clock = ManualClock(datetime.now(timezone.utc))
    tenant = make_tenant(accepted_domains=["contoso.com"], delays={"accepted_domain_seconds": "30m"})
    simulator = simulator_factory({"tenants": [tenant]}, clock=clock)
    tenant_id = tenant["tenant_id"]

    def listed(http, token):
        return [item["Name"] for item in invoke(http, tenant_id, token, "Get-AcceptedDomain").json()["value"]]

    with https_client(simulator) as http:
        graph = graph_token(simulator, app_credentials, tenant_id)
        exchange = access_token(simulator, app_credentials, tenant_id)
        _add(http, graph, "relay.contoso.com")
        before = listed(http, exchange)
        clock.advance(1799)
        almost = listed(http, exchange)
        clock.advance(1)
        after = listed(http, exchange)
        [view] = simulator.state.mail_view(clock.now(), [tenant_id])

    assert "relay.contoso.com" not in before
    assert "relay.contoso.com" not in almost
    assert "relay.contoso.com" in after
    assert "relay.contoso.com" in view.accepted_domains


# --- deleting ------------------------------------------------------------------------------------------------------


def test_delete_domain(client, domains_token, exchange_token):
    response = client.delete("/v1.0/domains/contoso.com", headers=_auth(domains_token))
    after = client.get("/v1.0/domains/contoso.com", headers=_auth(domains_token))
    accepted = [item["Name"] for item in invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain").json()["value"]]

    assert response.status_code == 204
    assert after.status_code == 404
    assert accepted == [DEFAULT_INITIAL_DOMAIN]


@pytest.mark.parametrize(("name", "status"), [(DEFAULT_INITIAL_DOMAIN, 400), ("unknown.example", 404)])
def test_delete_errors(client, domains_token, name, status):
    response = client.delete(f"/v1.0/domains/{name}", headers=_auth(domains_token))

    assert response.status_code == status


def test_delete_default_domain(simulator_factory, app_credentials):
    tenant = make_tenant(accepted_domains=[{"DomainName": "contoso.com", "Default": True}])
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, tenant["tenant_id"])
        response = http.delete("/v1.0/domains/contoso.com", headers=_auth(token))

    assert response.status_code == 400
    assert "default domain" in response.json()["error"]["message"]


# --- authentication and permissions ------------------------------------------------------------------------------------


def test_missing_token(client):
    response = client.get("/v1.0/domains")

    assert response.status_code == 401
    assert _graph_error(response) == ("InvalidAuthenticationToken", "Access token is empty.")
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_exchange_token_rejected(client, exchange_token):
    response = client.get("/v1.0/domains", headers=_auth(exchange_token))

    assert response.status_code == 401
    assert _graph_error(response) == ("InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")


def test_expired_token_rejected(simulator, client, domains_token):
    simulator.clock.advance(7200)

    response = client.get("/v1.0/domains", headers=_auth(domains_token))

    assert response.status_code == 401
    assert _graph_error(response) == ("InvalidAuthenticationToken", "Access token has expired or is not yet valid.")


def test_tampered_token_rejected(client, domains_token):
    header, payload, signature = domains_token.split(".")

    response = client.get("/v1.0/domains", headers=_auth(f"{header}.{payload}.{signature[::-1]}"))

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("permissions", "read_status", "write_status"),
    [(["Exchange.ManageAsApp"], 403, 403), (["Exchange.ManageAsApp", "Domain.Read.All"], 200, 403)],
)
def test_domain_permissions(simulator_factory, app_credentials, permissions, read_status, write_status):
    tenant = make_tenant(consent={"granted": True, "permissions": permissions})
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        token = graph_token(simulator, app_credentials, tenant["tenant_id"])
        read = http.get("/v1.0/domains", headers=_auth(token))
        write = _add(http, token, UNIQUE_NAME)

    assert read.status_code == read_status
    assert write.status_code == write_status
    assert _graph_error(write) == ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
