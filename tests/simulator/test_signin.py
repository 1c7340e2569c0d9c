"""The simulator's user sign-in: authorization endpoint, code redemption and the seeded users.

A real HTTPS simulator serves the flow. MSAL redeems the codes, as a web app built on
Microsoft's library would, and the tests check the ID token against the JWKS.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest
import requests

from tenanttls.clock import ManualClock
from tenanttls.errors import InvalidInput
from tenanttls.simulator.signin import parse_users
from tests.fixtures.simulator import make_seed, make_tenant, token_for

REDIRECT_URI = "https://portal.example.test/auth/callback"
TENANT_A = "1a2b3c4d-0000-4000-8000-00000000000a"
TENANT_B = "1a2b3c4d-0000-4000-8000-00000000000b"
ADMIN = {"upn": "adele@tenanta.onmicrosoft.com", "display_name": "Adele Vance", "directory_roles": ["Global Administrator"]}
READER = {"upn": "reed@tenanta.onmicrosoft.com", "display_name": "Reed"}
OTHER = {"upn": "bob@tenantb.onmicrosoft.com", "directory_roles": ["Exchange Administrator"], "app_roles": ["Portal.Operator"]}


@pytest.fixture
def signin_simulator(simulator_factory, app_credentials):
    tenant_a = make_tenant(TENANT_A, "tenanta.onmicrosoft.com")
    tenant_a["users"] = [ADMIN, READER]
    tenant_b = make_tenant(TENANT_B, "tenantb.onmicrosoft.com")
    tenant_b["users"] = [OTHER]
    seed = make_seed(app_credentials, [tenant_a, tenant_b])
    seed["app"] = app_credentials.seed_app(redirect_uris=[REDIRECT_URI, "http://127.0.0.1/auth/callback"])
    return simulator_factory(seed, clock=ManualClock(datetime.now(timezone.utc)))


def _client(simulator) -> httpx.Client:
    return httpx.Client(base_url=simulator.base_url, verify=str(simulator.ca_path), follow_redirects=False)


def _authorize_params(app_credentials, **overrides) -> dict[str, str]:
    params = {
        "client_id": app_credentials.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "state-123",
        "nonce": "nonce-456",
    }
    params.update(overrides)
    return params


def _sign_in(simulator, app_credentials, upn: str, segment: str = "organizations", **overrides) -> dict[str, list[str]]:
    """Pick `upn` on the sign-in page and return the redirect's query parameters."""
    params = _authorize_params(app_credentials, **overrides)
    with _client(simulator) as client:
        page = client.get(f"/{segment}/oauth2/v2.0/authorize", params=params)
        assert page.status_code == 200
        oid = re.search(rf'name="user" value="([^"]+)"><button type="submit" data-upn="{re.escape(upn)}"', page.text).group(1)
        answer = client.post(f"/{segment}/oauth2/v2.0/authorize", data={**params, "user": oid})
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["location"]).query)


def _msal(simulator, app_credentials, segment: str = "organizations") -> msal.ConfidentialClientApplication:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(simulator.ca_path)
    return msal.ConfidentialClientApplication(
        app_credentials.client_id,
        client_credential={"private_key": app_credentials.private_key_pem, "public_certificate": app_credentials.certificate_pem},
        authority=f"{simulator.base_url}/{segment}",
        instance_discovery=False,
        http_client=session,
    )


def _verified_claims(simulator, app_credentials, id_token: str) -> dict:
    keys = httpx.get(f"{simulator.base_url}/common/discovery/v2.0/keys", verify=str(simulator.ca_path)).json()
    key = jwt.PyJWK(keys["keys"][0]).key
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=app_credentials.client_id, options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})


def test_page_lists_tenant_users(signin_simulator, app_credentials):
    with _client(signin_simulator) as client:
        own = client.get(f"/{TENANT_A}/oauth2/v2.0/authorize", params=_authorize_params(app_credentials))
        every = client.get("/organizations/oauth2/v2.0/authorize", params=_authorize_params(app_credentials))

    assert own.status_code == 200
    assert "adele@tenanta.onmicrosoft.com" in own.text
    assert "bob@tenantb.onmicrosoft.com" not in own.text
    assert "bob@tenantb.onmicrosoft.com" in every.text


def test_code_redeemed_for_id_token(signin_simulator, app_credentials):
    query = _sign_in(signin_simulator, app_credentials, ADMIN["upn"])
    assert query["state"] == ["state-123"]

    result = _msal(signin_simulator, app_credentials).acquire_token_by_authorization_code(
        query["code"][0], scopes=[], redirect_uri=REDIRECT_URI, nonce="nonce-456"
    )
    assert "id_token" in result, result
    claims = _verified_claims(signin_simulator, app_credentials, result["id_token"])

    assert claims["tid"] == TENANT_A
    assert claims["iss"] == f"{signin_simulator.base_url}/{TENANT_A}/v2.0"
    assert claims["preferred_username"] == ADMIN["upn"]
    assert claims["name"] == "Adele Vance"
    assert claims["nonce"] == "nonce-456"
    assert claims["wids"] == ["62e90394-69f5-4237-9190-012177145e10"]
    assert "roles" not in claims
    assert uuid.UUID(claims["oid"])


def test_app_roles_in_roles_claim(signin_simulator, app_credentials):
    query = _sign_in(signin_simulator, app_credentials, OTHER["upn"], segment=TENANT_B)
    result = _msal(signin_simulator, app_credentials, TENANT_B).acquire_token_by_authorization_code(
        query["code"][0], scopes=[], redirect_uri=REDIRECT_URI, nonce="nonce-456"
    )
    claims = _verified_claims(signin_simulator, app_credentials, result["id_token"])
    assert claims["roles"] == ["Portal.Operator"]
    assert claims["tid"] == TENANT_B


def test_code_redeemed_only_once(signin_simulator, app_credentials):
    code = _sign_in(signin_simulator, app_credentials, READER["upn"])["code"][0]
    application = _msal(signin_simulator, app_credentials)
    first = application.acquire_token_by_authorization_code(code, scopes=[], redirect_uri=REDIRECT_URI, nonce="nonce-456")
    second = application.acquire_token_by_authorization_code(code, scopes=[], redirect_uri=REDIRECT_URI, nonce="nonce-456")

    assert "id_token" in first
    assert second["error"] == "invalid_grant"
    assert "AADSTS54005" in second["error_description"]


def test_code_with_other_redirect_uri(signin_simulator, app_credentials):
    code = _sign_in(signin_simulator, app_credentials, READER["upn"])["code"][0]
    result = _msal(signin_simulator, app_credentials).acquire_token_by_authorization_code(
        code, scopes=[], redirect_uri="http://127.0.0.1/auth/callback", nonce="nonce-456"
    )
    assert result["error"] == "invalid_grant"
    assert "AADSTS500112" in result["error_description"]


def test_code_expires(signin_simulator, app_credentials):
    code = _sign_in(signin_simulator, app_credentials, READER["upn"])["code"][0]
    signin_simulator.clock.advance(11 * 60)
    result = _msal(signin_simulator, app_credentials).acquire_token_by_authorization_code(
        code, scopes=[], redirect_uri=REDIRECT_URI, nonce="nonce-456"
    )
    assert "AADSTS70008" in result["error_description"]


def test_unregistered_redirect_uri_gets_page(signin_simulator, app_credentials):
    params = _authorize_params(app_credentials, redirect_uri="https://evil.example/callback")
    with _client(signin_simulator) as client:
        answer = client.get("/organizations/oauth2/v2.0/authorize", params=params)
    assert answer.status_code == 400
    assert "location" not in answer.headers
    assert "AADSTS50011" in answer.text


def test_unknown_client_gets_page(signin_simulator, app_credentials):
    params = _authorize_params(app_credentials, client_id=str(uuid.uuid4()))
    with _client(signin_simulator) as client:
        answer = client.get("/organizations/oauth2/v2.0/authorize", params=params)
    assert answer.status_code == 400
    assert "AADSTS700016" in answer.text


def test_loopback_redirect_ignores_port(signin_simulator, app_credentials):
    query = _sign_in(signin_simulator, app_credentials, READER["upn"], redirect_uri="http://127.0.0.1:8765/auth/callback")
    assert "code" in query


def test_unsupported_response_type_redirects_error(signin_simulator, app_credentials):
    params = _authorize_params(app_credentials, response_type="token")
    with _client(signin_simulator) as client:
        answer = client.get("/organizations/oauth2/v2.0/authorize", params=params)
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["unsupported_response_type"]
    assert query["state"] == ["state-123"]


def test_cancel_sends_access_denied(signin_simulator, app_credentials):
    params = _authorize_params(app_credentials)
    with _client(signin_simulator) as client:
        answer = client.post("/organizations/oauth2/v2.0/authorize", data={**params, "action": "cancel"})
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["state-123"]


def test_selected_user_skips_page(signin_simulator, app_credentials):
    with _client(signin_simulator) as client:
        selected = client.post("/_simulator/signin/select", json={"user": ADMIN["upn"]})
        answer = client.get("/organizations/oauth2/v2.0/authorize", params=_authorize_params(app_credentials))
        again = client.get("/organizations/oauth2/v2.0/authorize", params=_authorize_params(app_credentials))

    assert selected.status_code == 200
    assert answer.status_code == 302
    assert "code=" in answer.headers["location"]
    assert again.status_code == 200


def test_users_listed_in_inspection_api(signin_simulator):
    with _client(signin_simulator) as client:
        answer = client.get("/_simulator/signin/users", params={"tenant": "tenanta.onmicrosoft.com"})
    users = answer.json()["value"]
    assert [user["upn"] for user in users] == [ADMIN["upn"], READER["upn"]]
    assert users[0]["directory_roles"] == ["Global Administrator"]


def test_client_credentials_still_served(signin_simulator, app_credentials):
    result = token_for(signin_simulator, app_credentials, TENANT_A)
    assert "access_token" in result, result


def test_users_seed_rejects_unknown_role():
    with pytest.raises(InvalidInput, match='unknown directory role "Wizard"'):
        parse_users([{"upn": "a@x.onmicrosoft.com", "directory_roles": ["Wizard"]}], TENANT_A, "x.onmicrosoft.com")


def test_users_seed_rejects_duplicates_and_bad_upn():
    with pytest.raises(InvalidInput, match="appears twice"):
        parse_users([{"upn": "a@x.onmicrosoft.com"}, {"upn": "A@x.onmicrosoft.com"}], TENANT_A, "x.onmicrosoft.com")
    with pytest.raises(InvalidInput, match="invalid upn"):
        parse_users([{"upn": "nobody"}], TENANT_A, "x.onmicrosoft.com")


def test_users_seed_derives_stable_oid():
    first = parse_users([{"upn": "a@x.onmicrosoft.com"}], TENANT_A, "x.onmicrosoft.com")
    second = parse_users([{"upn": "a@x.onmicrosoft.com"}], TENANT_A, "x.onmicrosoft.com")
    assert first[0]["oid"] == second[0]["oid"]
    assert first[0]["directory_roles"] == []


def test_select_user_rejects_deep_json(signin_simulator):
    with _client(signin_simulator) as client:
        response = client.post("/_simulator/signin/select", content=b"[" * 100_000 + b"]" * 100_000)

    assert response.status_code == 400
    assert "more than 64 levels deep" in response.json()["error"]
