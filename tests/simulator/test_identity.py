"""The simulated identity platform over HTTPS: OpenID metadata, tokens, assertions, admin consent."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest

from tenanttls.clock import ManualClock
from tests.fixtures.simulator import (
    DEFAULT_INITIAL_DOMAIN,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TENANT_ID,
    EXCHANGE_SCOPE,
    GRAPH_SCOPE,
    make_app_credentials,
    make_seed,
    make_tenant,
    token_for,
)
from tests.simulator.helpers import https_client, make_assertion, thumbprint_header, token_request

EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"


def _claims(simulator, token):
    """Return the token's claims after checking its signature against the simulator's published keys."""
    with https_client(simulator) as http:
        keys = jwt.PyJWKSet.from_dict(http.get("/common/discovery/v2.0/keys").json())
    key = keys[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False})


def _aad_error(response):
    body = response.json()
    assert body["error_codes"][0] == int(body["error_description"].split(":")[0].removeprefix("AADSTS"))
    return body["error"], body["error_codes"][0]


# --- MSAL end to end -------------------------------------------------------------------------------


def test_msal_token_with_verify_argument(simulator, app_credentials, monkeypatch):
    # requests prefers these variables over MSAL's verify argument; a plain environment has neither.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    application = msal.ConfidentialClientApplication(
        app_credentials.client_id,
        client_credential={"private_key": app_credentials.private_key_pem, "thumbprint": app_credentials.thumbprint},
        authority=f"{simulator.base_url}/{DEFAULT_TENANT_ID}",
        instance_discovery=False,
        verify=str(simulator.ca_path),
    )

    result = application.acquire_token_for_client(scopes=[EXCHANGE_SCOPE])

    assert result.get("token_type") == "Bearer", result
    assert _claims(simulator, result["access_token"])["tid"] == DEFAULT_TENANT_ID


def test_msal_token_by_initial_domain(simulator, app_credentials):
    result = token_for(simulator, app_credentials, DEFAULT_INITIAL_DOMAIN)

    assert "access_token" in result, result
    assert _claims(simulator, result["access_token"])["tid"] == DEFAULT_TENANT_ID


def test_msal_token_with_public_certificate(simulator, app_credentials):
    # Given the certificate instead of a thumbprint, MSAL signs with PS256 and sends x5t#S256 and x5c.
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = str(simulator.ca_path)
    application = msal.ConfidentialClientApplication(
        app_credentials.client_id,
        client_credential={"private_key": app_credentials.private_key_pem, "public_certificate": app_credentials.certificate_pem},
        authority=f"{simulator.base_url}/{DEFAULT_TENANT_ID}",
        instance_discovery=False,
        http_client=session,
    )

    result = application.acquire_token_for_client(scopes=[GRAPH_SCOPE])

    assert "access_token" in result, result


def test_msal_error_without_consent(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})

    result = token_for(simulator, app_credentials, tenant["tenant_id"])

    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert app_credentials.client_id in result["error_description"]


# --- token contents ---------------------------------------------------------------------------------


def test_exchange_token_claims(simulator, app_credentials):
    token = token_for(simulator, app_credentials, DEFAULT_TENANT_ID)["access_token"]
    claims = _claims(simulator, token)

    assert claims["aud"] == "https://outlook.office365.com"
    assert claims["iss"] == f"https://sts.windows.net/{DEFAULT_TENANT_ID}/"
    assert claims["tid"] == DEFAULT_TENANT_ID
    assert claims["appid"] == app_credentials.client_id
    assert claims["roles"] == ["Exchange.ManageAsApp"]
    assert claims["wids"] == [EXCHANGE_ADMINISTRATOR]
    assert claims["ver"] == "1.0"


def test_token_times_follow_simulator_clock(simulator, app_credentials):
    token = token_for(simulator, app_credentials, DEFAULT_TENANT_ID)["access_token"]
    claims = _claims(simulator, token)
    now = int(simulator.clock.now().timestamp())

    assert claims["iat"] == now
    assert claims["nbf"] == now
    assert claims["exp"] == now + 3599


def test_graph_token_has_graph_roles_only(simulator, app_credentials):
    token = token_for(simulator, app_credentials, DEFAULT_TENANT_ID, GRAPH_SCOPE)["access_token"]
    claims = _claims(simulator, token)

    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["roles"] == ["Domain.ReadWrite.All"]


def test_token_response_shape(simulator, client, app_credentials):
    response = token_request(client, DEFAULT_TENANT_ID, app_credentials)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["ext_expires_in"] == 3599
    assert response.headers["cache-control"].startswith("no-store")


# --- OpenID metadata and keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("reference", [DEFAULT_TENANT_ID, DEFAULT_INITIAL_DOMAIN, "contoso.com"])
def test_openid_configuration(simulator, client, reference):
    response = client.get(f"/{reference}/v2.0/.well-known/openid-configuration")

    assert response.status_code == 200
    metadata = response.json()
    assert metadata["token_endpoint"] == f"{simulator.base_url}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
    assert metadata["authorization_endpoint"] == f"{simulator.base_url}/{DEFAULT_TENANT_ID}/oauth2/v2.0/authorize"
    assert metadata["issuer"] == f"{simulator.base_url}/{DEFAULT_TENANT_ID}/v2.0"
    assert metadata["jwks_uri"] == f"{simulator.base_url}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys"


def test_openid_configuration_unknown_tenant(client):
    response = client.get("/fabrikam.onmicrosoft.com/v2.0/.well-known/openid-configuration")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found.")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)


def test_correlation_id_echoes_client_request_id(client):
    request_id = "0b0c2f8e-5d1a-4f6e-9a3b-7c8d9e0f1a2b"
    response = client.get("/unknown.onmicrosoft.com/v2.0/.well-known/openid-configuration", headers={"client-request-id": request_id})

    assert response.json()["correlation_id"] == request_id


def test_instance_discovery(simulator, client):
    response = client.get(
        "/common/discovery/instance",
        params={"api-version": "1.1", "authorization_endpoint": f"{simulator.base_url}/{DEFAULT_TENANT_ID}/oauth2/v2.0/authorize"},
    )

    assert response.status_code == 200
    assert response.json()["tenant_discovery_endpoint"] == f"{simulator.base_url}/{DEFAULT_TENANT_ID}/v2.0/.well-known/openid-configuration"


# --- token endpoint errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "code"),
    [
        ("fabrikam.onmicrosoft.com", 90002),
        ("0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", 90002),
        ("not-a-tenant", 900023),
        ("common", 50059),
        ("organizations", 50059),
    ],
)
def test_token_tenant_errors(client, app_credentials, tenant, code):
    response = token_request(client, tenant, app_credentials)

    assert response.status_code == 400
    assert _aad_error(response) == ("invalid_request", code)


def test_token_unknown_client_id(client, app_credentials):
    stranger = make_app_credentials()

    response = token_request(client, DEFAULT_TENANT_ID, stranger)

    assert response.status_code == 400
    assert _aad_error(response) == ("unauthorized_client", 700016)


def test_token_unregistered_certificate(client, app_credentials):
    other = make_app_credentials(app_credentials.client_id)

    response = token_request(client, DEFAULT_TENANT_ID, other)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 700027)
    assert "The key was not found" in response.json()["error_description"]
    assert other.thumbprint in response.json()["error_description"]


def test_token_forged_signature(client, app_credentials):
    # The header names the registered certificate, but another key signed the assertion.
    forger = make_app_credentials(app_credentials.client_id)
    audience = f"{str(client.base_url).rstrip('/')}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
    assertion = make_assertion(app_credentials, audience, key_pem=forger.private_key_pem)

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, client_assertion=assertion)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 700027)
    assert "did not match the expected signature" in response.json()["error_description"]


def test_token_expired_assertion(client, app_credentials):
    audience = f"{str(client.base_url).rstrip('/')}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
    assertion = make_assertion(app_credentials, audience, issued_at=time.time() - 3600, expires_in=600)

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, client_assertion=assertion)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 700024)


def test_token_assertion_for_other_endpoint(client, app_credentials):
    assertion = make_assertion(app_credentials, "https://login.example.test/token")

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, client_assertion=assertion)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 700023)


def test_token_assertion_of_other_client(client, app_credentials):
    audience = f"{str(client.base_url).rstrip('/')}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
    assertion = make_assertion(app_credentials, audience, issuer="9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a")

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, client_assertion=assertion)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 700021)


def test_token_assertion_without_thumbprint(client, app_credentials):
    audience = f"{str(client.base_url).rstrip('/')}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
    assertion = make_assertion(app_credentials, audience, headers={})

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, client_assertion=assertion)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 50027)


def test_token_assertion_not_a_jwt(client, app_credentials):
    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, client_assertion="not.a.jwt'\n")

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 50027)


def test_token_expired_certificate(simulator_factory):
    expired = make_app_credentials(
        not_before=datetime.now(timezone.utc) - timedelta(days=400), not_after=datetime.now(timezone.utc) - timedelta(days=1)
    )
    tenant = make_tenant()
    simulator = simulator_factory(make_seed(expired, [tenant]))

    with https_client(simulator) as http:
        response = token_request(http, tenant["tenant_id"], expired)

    assert response.status_code == 401
    assert _aad_error(response) == ("invalid_client", 700027)
    assert "The key used is expired" in response.json()["error_description"]


@pytest.mark.parametrize(
    ("overrides", "status", "error", "code"),
    [
        ({"client_secret": "s3cret", "client_assertion": None, "client_assertion_type": None}, 401, "invalid_client", 7000215),
        ({"client_assertion": None}, 401, "invalid_client", 7000218),
        ({"client_assertion_type": "urn:example:other"}, 400, "invalid_request", 900144),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"grant_type": None}, 400, "invalid_request", 900144),
        ({"client_id": None}, 400, "invalid_request", 900144),
        ({"scope": None}, 400, "invalid_request", 900144),
        ({"scope": "https://outlook.office365.com/Exchange.ManageAsApp"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://outlook.office365.com/.default https://graph.microsoft.com/.default"}, 400, "invalid_scope", 1002012),
        ({"scope": "https://vault.azure.net/.default"}, 400, "invalid_resource", 500011),
    ],
)
def test_token_request_errors(client, app_credentials, overrides, status, error, code):
    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, **overrides)

    assert response.status_code == status
    assert _aad_error(response) == (error, code)


def test_token_request_with_json_body(client):
    response = client.post(f"/{DEFAULT_TENANT_ID}/oauth2/v2.0/token", json={"grant_type": "client_credentials"})

    assert response.status_code == 400
    assert _aad_error(response) == ("invalid_request", 900144)


def test_token_endpoint_rejects_get(client):
    response = client.get(f"/{DEFAULT_TENANT_ID}/oauth2/v2.0/token")

    assert response.status_code == 400
    assert _aad_error(response) == ("invalid_request", 900561)


def test_token_scope_by_resource_app_id(client, app_credentials):
    response = token_request(client, DEFAULT_TENANT_ID, app_credentials, scope="00000002-0000-0ff1-ce00-000000000000/.default")

    assert response.status_code == 200


# --- consent -------------------------------------------------------------------------------------------


def test_revoked_consent_stops_tokens(simulator, client, app_credentials):
    revoke = client.post(f"/_simulator/tenants/{DEFAULT_TENANT_ID}/consent", json={"granted": False})

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials)

    assert revoke.status_code == 200
    assert response.status_code == 400
    assert _aad_error(response) == ("unauthorized_client", 700016)


def test_consent_takes_effect_after_delay(simulator_factory, app_credentials):
    clock = ManualClock(datetime.now(timezone.utc))
    tenant = make_tenant(consent=False, delays={"consent_seconds": 600})
    simulator = simulator_factory({"tenants": [tenant]}, clock=clock)

    with https_client(simulator) as http:
        http.post(f"/_simulator/tenants/{tenant['tenant_id']}/consent", json={"granted": True})
        early = token_request(http, tenant["tenant_id"], app_credentials)
        clock.advance(600)
        late = token_request(http, tenant["tenant_id"], app_credentials)

    assert _aad_error(early) == ("unauthorized_client", 700016)
    assert late.status_code == 200


def test_granted_permissions_limit_roles(simulator_factory, app_credentials):
    tenant = make_tenant(consent={"granted": True, "permissions": ["Domain.ReadWrite.All"]})
    simulator = simulator_factory({"tenants": [tenant]})

    token = token_for(simulator, app_credentials, tenant["tenant_id"], EXCHANGE_SCOPE)["access_token"]

    assert "roles" not in _claims(simulator, token)


def _consent_url(tenant, client_id, redirect_uri=DEFAULT_REDIRECT_URI, state="st-123"):
    return f"/{tenant}/adminconsent", {"client_id": client_id, "redirect_uri": redirect_uri, "state": state}


def test_admin_consent_accept(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        path, params = _consent_url(tenant["tenant_id"], app_credentials.client_id)
        response = http.get(path, params=params)
        mutations = http.get("/_simulator/mutations", params={"tenant": tenant["tenant_id"]}).json()["mutations"]

    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == DEFAULT_REDIRECT_URI
    assert query == {"admin_consent": ["True"], "tenant": [tenant["tenant_id"]], "state": ["st-123"]}
    assert "access_token" in token_for(simulator, app_credentials, tenant["tenant_id"])
    assert mutations[-1]["operation"] == "admin-consent"


def test_admin_consent_by_domain_name(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        path, params = _consent_url(tenant["initial_domain"], app_credentials.client_id)
        response = http.get(path.replace("/adminconsent", "/v2.0/adminconsent"), params=params)

    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["tenant"] == [tenant["tenant_id"]]


def test_admin_consent_deny(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        decision = http.post(f"/_simulator/tenants/{tenant['tenant_id']}/consent-decision", json={"decision": "deny"})
        path, params = _consent_url(tenant["tenant_id"], app_credentials.client_id)
        response = http.get(path, params=params)
        consent = http.get(f"/_simulator/tenants/{tenant['tenant_id']}").json()["consent"]

    assert decision.status_code == 200
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-123"]
    assert "AADSTS65004" in query["error_description"][0]
    assert consent["granted"] is False


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"redirect_uri": "https://attacker.example.test/steal"}, "AADSTS50011"),
        ({"client_id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"}, "AADSTS700016"),
        ({"tenant": "unknown.onmicrosoft.com"}, "AADSTS90002"),
        ({"client_id": ""}, "AADSTS900144: The request body must contain the following parameter: &#x27;client_id&#x27;."),
    ],
)
def test_admin_consent_error_page(simulator_factory, app_credentials, change, code):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})
    path, params = _consent_url(change.pop("tenant", tenant["tenant_id"]), app_credentials.client_id)
    params.update(change)

    with https_client(simulator) as http:
        response = http.get(path, params=params)
        consent = http.get(f"/_simulator/tenants/{tenant['tenant_id']}").json()["consent"]

    assert response.status_code == 400
    assert "location" not in response.headers
    assert code in response.text
    assert consent["granted"] is False


def test_admin_consent_without_client_id(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})
    path, params = _consent_url(tenant["tenant_id"], app_credentials.client_id)
    del params["client_id"]

    with https_client(simulator) as http:
        response = http.get(path, params=params)

    assert response.status_code == 400
    assert "AADSTS900144" in response.text
    assert "was not found" not in response.text


def test_second_consent_keeps_grant_time(simulator_factory, app_credentials):
    clock = ManualClock(datetime.now(timezone.utc))
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]}, clock=clock)
    path, params = _consent_url(tenant["tenant_id"], app_credentials.client_id)

    with https_client(simulator) as http:
        http.get(path, params=params)
        first = http.get(f"/_simulator/tenants/{tenant['tenant_id']}").json()["consent"]["granted_at"]
        clock.advance(3600)
        http.get(path, params=params)
        second = http.get(f"/_simulator/tenants/{tenant['tenant_id']}").json()["consent"]["granted_at"]

    assert first == second


def test_assertion_x5t_header_is_base64url_sha1(app_credentials):
    # Guards the helper the tests above rely on: x5t is the SHA-1 thumbprint, base64url without padding.
    header = thumbprint_header(app_credentials.thumbprint)

    assert "=" not in header
    assert len(header) == 27
