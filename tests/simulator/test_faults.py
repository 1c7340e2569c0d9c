"""Injected faults, the per-tenant concurrency limit and call counting, seen by HTTPS clients."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.fixtures.simulator import DEFAULT_TENANT_ID, make_tenant
from tests.simulator.helpers import access_token, graph_token, https_client, invoke, token_request

NEW_CONNECTOR = {
    "Name": "CrosswareInboundConnector-Unique",
    "ConnectorType": "OnPremises",
    "SenderDomains": "*",
    "RestrictDomainsToCertificate": True,
    "TlsSenderCertificateName": "unique.crosswaretls.example",
}


def _set_faults(client, faults, tenant=None):
    path = f"/_simulator/tenants/{tenant}" if tenant else "/_simulator/settings"
    response = client.patch(path, json={"faults": faults})
    assert response.status_code == 200, response.text


def _connector_names(client, token):
    response = invoke(client, DEFAULT_TENANT_ID, token, "Get-InboundConnector")
    assert response.status_code == 200, response.text
    return [item["Name"] for item in response.json()["value"]]


def test_throttling_with_retry_after(client, exchange_token):
    _set_faults(client, {"throttle_rate": 1.0, "retry_after_seconds": 7, "surfaces": ["exchange"]})

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", NEW_CONNECTOR)
    _set_faults(client, {"throttle_rate": 0.0})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert _connector_names(client, exchange_token) == ["CrosswareInboundConnector"]


def test_throttling_in_each_service_shape(client, app_credentials, domains_token):
    _set_faults(client, {"throttle_rate": 1.0, "retry_after_seconds": 3})

    token = token_request(client, DEFAULT_TENANT_ID, app_credentials)
    graph = client.get("/v1.0/domains", headers={"Authorization": f"Bearer {domains_token}"})

    assert token.status_code == 429
    assert token.headers["retry-after"] == "3"
    assert token.json()["error"] == "temporarily_unavailable"
    assert token.json()["error_codes"] == [90055]
    assert graph.status_code == 429
    assert graph.json()["error"]["code"] == "TooManyRequests"
    assert "request-id" in graph.json()["error"]["innerError"]


def test_service_unavailable(client, exchange_token):
    _set_faults(client, {"unavailable_rate": 1.0})

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "ServiceUnavailable"


def test_hung_request_then_gateway_timeout(client, exchange_token):
    _set_faults(client, {"hang_rate": 1.0, "hang_seconds": 0.3, "surfaces": ["exchange"]})

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", NEW_CONNECTOR)
    _set_faults(client, {"hang_rate": 0.0})

    assert response.status_code == 504
    assert _connector_names(client, exchange_token) == ["CrosswareInboundConnector"]


def test_client_timeout_on_hung_request(simulator, client, exchange_token):
    _set_faults(client, {"hang_rate": 1.0, "hang_seconds": 30, "surfaces": ["exchange"]})

    with https_client(simulator, timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        invoke(impatient, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector")
    health = client.get("/_simulator/health")

    assert health.status_code == 200


def test_faults_limited_to_surfaces(client, app_credentials, domains_token):
    _set_faults(client, {"unavailable_rate": 1.0, "surfaces": ["exchange"]})

    token = token_request(client, DEFAULT_TENANT_ID, app_credentials)
    graph = client.get("/v1.0/domains", headers={"Authorization": f"Bearer {domains_token}"})

    assert token.status_code == 200
    assert graph.status_code == 200


def test_max_faults_budget(client, exchange_token):
    _set_faults(client, {"throttle_rate": 1.0, "max_faults": 2})

    statuses = [invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector").status_code for _ in range(4)]

    assert statuses == [429, 429, 200, 200]


def test_tenant_faults_override_global(simulator_factory, app_credentials):
    quiet, noisy = make_tenant(), make_tenant(faults={"unavailable_rate": 1.0, "surfaces": ["exchange"]})
    simulator = simulator_factory({"tenants": [quiet, noisy]})

    with https_client(simulator) as http:
        quiet_status = invoke(http, quiet["tenant_id"], access_token(simulator, app_credentials, quiet["tenant_id"]), "Get-InboundConnector").status_code
        noisy_status = invoke(http, noisy["tenant_id"], access_token(simulator, app_credentials, noisy["tenant_id"]), "Get-InboundConnector").status_code
        http.patch(f"/_simulator/tenants/{noisy['tenant_id']}", json={"faults": {"unavailable_rate": None}})
        cleared = invoke(http, noisy["tenant_id"], access_token(simulator, app_credentials, noisy["tenant_id"]), "Get-InboundConnector").status_code

    assert quiet_status == 200
    assert noisy_status == 503
    assert cleared == 200


def test_invalid_fault_settings(client):
    for faults in ({"throttle_rate": 2}, {"throttle_rate": "often"}, {"hang_seconds": -1}, {"surfaces": ["smtp"]}, {"colour": 1}):
        response = client.patch("/_simulator/settings", json={"faults": faults})
        assert response.status_code == 400, faults
    assert client.get("/_simulator/settings").json()["faults"]["throttle_rate"] == 0.0


def test_concurrency_limit_per_tenant(simulator_factory, app_credentials):
    limited = make_tenant(faults={"max_concurrent_requests": 1, "latency_seconds": 1.5, "surfaces": ["exchange"]})
    other = make_tenant(faults={"latency_seconds": 1.5, "surfaces": ["exchange"]})
    simulator = simulator_factory({"tenants": [limited, other]})
    token = access_token(simulator, app_credentials, limited["tenant_id"])
    other_token = access_token(simulator, app_credentials, other["tenant_id"])
    results: dict[str, int] = {}

    def slow_request(key, tenant_id, bearer):
        with https_client(simulator) as http:
            results[key] = invoke(http, tenant_id, bearer, "Get-InboundConnector").status_code

    first = threading.Thread(target=slow_request, args=("first", limited["tenant_id"], token))
    neighbour = threading.Thread(target=slow_request, args=("other", other["tenant_id"], other_token))
    first.start()
    neighbour.start()
    with https_client(simulator) as http:
        for _ in range(200):
            if http.get("/_simulator/calls").json()["in_flight"].get(limited["tenant_id"]) == 1:
                break
            time.sleep(0.01)
        rejected = invoke(http, limited["tenant_id"], token, "Get-InboundConnector")
        in_flight_seen = http.get("/_simulator/calls").json()["faults"]
    first.join()
    neighbour.join()

    assert rejected.status_code == 429
    assert rejected.text == "You have reached the maximum number of concurrent requests per tenant. Please wait and try again."
    assert in_flight_seen["concurrency"] == 1
    assert results == {"first": 200, "other": 200}


def test_call_counts(simulator, client, app_credentials, exchange_token, domains_token):
    client.delete("/_simulator/calls")
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector")
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector")
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain")
    client.get("/v1.0/domains", headers={"Authorization": f"Bearer {domains_token}"})
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "No-SuchCmdlet")

    calls = client.get("/_simulator/calls").json()
    client.delete("/_simulator/calls")
    after_reset = client.get("/_simulator/calls").json()

    assert calls["by_endpoint"] == {
        "exchange:Get-InboundConnector": 2,
        "exchange:Get-AcceptedDomain": 1,
        "graph:GET /domains": 1,
        "exchange:InvokeCommand": 1,
    }
    assert calls["by_tenant"][DEFAULT_TENANT_ID]["exchange:Get-InboundConnector"] == 2
    assert calls["total"] == 5
    assert after_reset["total"] == 0


def test_token_calls_counted_per_tenant(simulator, client, app_credentials):
    client.delete("/_simulator/calls")
    graph_token(simulator, app_credentials, DEFAULT_TENANT_ID)
    token_request(client, "unknown.onmicrosoft.com", app_credentials)

    calls = client.get("/_simulator/calls").json()

    assert calls["by_tenant"][DEFAULT_TENANT_ID]["identity:token"] == 1
    assert calls["by_tenant"]["unknown"]["identity:token"] == 1


HOSTILE_PATHS = [
    "/v1.0/domains/%2e%2e%2f%2e%2e",
    "/v1.0/domains/" + "a" * 5000,
    "/adminapi/beta/%00/InvokeCommand",
    "/%22%27/oauth2/v2.0/token",
    "/contoso.onmicrosoft.com/adminconsent?client_id=%00&redirect_uri=javascript:alert(1)",
    "/_simulator/tenants/%0d%0aSet-Cookie:x",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_requests_never_fail_the_server(client, exchange_token, path):
    responses = [
        client.get(path, headers={"Authorization": f"Bearer {exchange_token}"}),
        client.post(path, content=b"\x00\xff{" * 100, headers={"Authorization": "Bearer \x01garbage", "Content-Type": "application/json"}),
        client.post(path, data={"grant_type": "client_credentials", "client_assertion": "x" * 20_000}),
    ]

    assert all(response.status_code < 500 for response in responses)
    assert client.get("/_simulator/health").status_code == 200
