"""Sign-in through the simulated identity platform: sessions, state checks, roles, safe redirects."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.portal.conftest import ADMIN_A, OPERATOR, PROVIDER_TENANT, READER_A, STAFF, TENANT_A


def test_admin_lands_on_own_connector_page(portal):
    client = portal.client()
    answer = portal.sign_in(client, ADMIN_A)

    assert answer.headers["location"] == f"/tenants/{TENANT_A}/connector"
    page = client.get(answer.headers["location"])
    assert page.status_code == 200
    assert "Admin Settings › Setup ›" in page.text
    assert "Adele Vance" in page.text
    assert "Global Administrator" in page.text


def test_session_cookie_flags(portal):
    client = portal.client()
    answer = portal.sign_in(client, ADMIN_A)
    cookie = answer.headers["set-cookie"]

    assert cookie.startswith("tenanttls_session=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # the test portal is served over plain http on loopback


def test_sign_in_returns_to_requested_page(portal):
    client = portal.client()
    first = client.get(f"/tenants/{TENANT_A}/checks")
    assert first.status_code == 303
    assert first.headers["location"] == f"/sign-in?next=/tenants/{TENANT_A}/checks"

    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    start = client.get(first.headers["location"])
    authorize = client.get(start.headers["location"])
    callback = client.get(authorize.headers["location"])
    assert callback.headers["location"] == f"/tenants/{TENANT_A}/checks"


def test_sign_in_ignores_foreign_next(portal):
    client = portal.client()
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    start = client.get("/sign-in", params={"next": "https://evil.example/steal"})
    authorize = client.get(start.headers["location"])
    callback = client.get(authorize.headers["location"])
    assert callback.headers["location"] == f"/tenants/{TENANT_A}/connector"


def test_authorize_request_carries_state_and_nonce(portal):
    client = portal.client()
    start = client.get("/sign-in")
    query = parse_qs(urlsplit(start.headers["location"]).query)

    assert query["response_type"] == ["code"]
    assert query["scope"] == ["openid profile"]
    assert len(query["state"][0]) >= 40
    assert len(query["nonce"][0]) >= 40
    assert query["redirect_uri"] == [f"{portal.base_url}/auth/callback"]


def test_callback_with_wrong_state_rejected(portal):
    client = portal.client()
    start = client.get("/sign-in")
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    authorize = client.get(start.headers["location"])
    forged = re.sub(r"state=[^&]+", "state=forged", authorize.headers["location"])

    answer = client.get(forged)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in/failed"
    page = client.get(answer.headers["location"])
    assert page.status_code == 400
    assert "state mismatch" in page.text
    assert client.get("/api/me").status_code == 401


def test_callback_replay_rejected(portal):
    client = portal.client()
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    start = client.get("/sign-in")
    authorize = client.get(start.headers["location"])
    callback_url = authorize.headers["location"]
    assert client.get(callback_url).status_code == 303

    replay = client.get(callback_url)
    assert replay.headers["location"] == "/sign-in/failed"
    page = client.get(replay.headers["location"])
    assert page.status_code == 400
    assert "out of date or was already used" in page.text


def test_callback_from_other_browser_rejected(portal):
    victim = portal.client()
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    start = victim.get("/sign-in")
    callback_url = victim.get(start.headers["location"]).headers["location"]

    attacker = portal.client()
    answer = attacker.get(callback_url)
    assert answer.headers["location"] == "/sign-in/failed"
    assert attacker.get(answer.headers["location"]).status_code == 400
    assert attacker.get("/api/me").status_code == 401


def test_cancelled_sign_in_shows_reason(portal):
    client = portal.client()
    start = client.get("/sign-in")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    denied = client.get("/auth/callback", params={"error": "access_denied", "error_description": "AADSTS65004: User declined.", "state": query["state"][0]})
    page = client.get(denied.headers["location"])
    assert page.status_code == 400
    assert "The sign-in was cancelled on Microsoft&#39;s page" in page.text


def test_sign_in_error_names_code_only(portal):
    client = portal.client()
    start = client.get("/sign-in")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    failed = client.get(
        "/auth/callback",
        params={"error": "invalid_request", "error_description": "AADSTS50011: The redirect URI does not match.\r\nTrace ID: 1", "state": query["state"][0]},
    )
    page = client.get(failed.headers["location"]).text

    assert "returned an error (code AADSTS50011)" in page
    assert "Trace ID" not in page


def test_reader_is_read_only(portal):
    client = portal.signed_in(READER_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")
    me = client.get("/api/me").json()

    assert me["can_act"] is False
    assert me["can_consent"] is False
    assert "You can view the status" in page.text
    assert 'id="grant-permissions"' not in page.text


def test_operator_sign_in_lands_on_fleet(portal):
    client = portal.client()
    answer = portal.sign_in(client, OPERATOR, operator=True)
    assert answer.headers["location"] == "/operator"
    fleet = client.get("/operator")
    assert fleet.status_code == 200
    assert "Fleet" in fleet.text


def test_operator_sign_in_needs_app_role(portal):
    client = portal.client()
    answer = portal.sign_in(client, STAFF, operator=True)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in/failed"

    page = client.get(answer.headers["location"])
    assert page.status_code == 403
    assert "Portal.Operator" in page.text
    assert 'id="error-action" href="/operator/sign-in"' in page.text
    assert client.get("/api/me").status_code == 401
    assert client.get(answer.headers["location"]).headers["location"] == "/"  # shown once


def test_operator_sign_in_asks_provider_tenant(portal):
    client = portal.client()
    start = client.get("/operator/sign-in")
    assert urlsplit(start.headers["location"]).path == f"/{PROVIDER_TENANT}/oauth2/v2.0/authorize"


def test_sign_out_ends_session(portal):
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

    answer = client.post("/sign-out", data={"csrf_token": token})
    assert answer.status_code == 303
    assert client.get("/api/me").status_code == 401


def test_signed_out_operator_page_redirects(portal):
    client = portal.client()
    fleet = client.get("/operator", params={"state": "grace"})
    tenant = client.get(f"/operator/tenants/{TENANT_A}")

    assert fleet.status_code == 303
    assert fleet.headers["location"] == "/operator/sign-in?next=/operator%3Fstate%3Dgrace"
    assert tenant.headers["location"] == f"/operator/sign-in?next=/operator/tenants/{TENANT_A}"


def test_operator_lands_on_requested_page(portal):
    client = portal.client()
    httpx.post(
        f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": OPERATOR, "tenant": PROVIDER_TENANT},
        verify=str(portal.simulator.ca_path),
    )
    start = client.get(client.get(f"/operator/tenants/{TENANT_A}").headers["location"])
    assert urlsplit(start.headers["location"]).path == f"/{PROVIDER_TENANT}/oauth2/v2.0/authorize"

    callback = client.get(client.get(start.headers["location"]).headers["location"])
    assert callback.headers["location"] == f"/operator/tenants/{TENANT_A}"
    assert client.get(callback.headers["location"]).status_code == 200
