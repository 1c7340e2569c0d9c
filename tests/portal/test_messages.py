"""Messages customers read: what happened and what to do, without the identity platform's raw text."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tests.portal.conftest import ADMIN_A, OPERATOR, TENANT_A, csrf_from


def _checks(client) -> dict[str, dict]:
    return {check["key"]: check for check in client.get(f"/api/tenants/{TENANT_A}/checks").json()["checks"]}


def test_token_check_before_consent_speaks_to_admin(portal):
    client = portal.signed_in(ADMIN_A)
    token = _checks(client)["token"]
    page = client.get(f"/tenants/{TENANT_A}/checks").text

    assert token["passed"] is False
    for raw in ("AADSTS", "Trace ID", "Correlation ID", "tenant's admin"):
        assert raw not in token["detail"], raw
        assert raw not in token["fix"], raw
        assert raw not in page, raw
    assert "button above" not in page
    assert "presses Grant permissions on the Connector page" in token["fix"]
    assert "technical" not in token


def test_operator_checks_keep_raw_detail(portal):
    client = portal.signed_in(OPERATOR, operator=True)
    token = _checks(client)["token"]
    page = client.get(f"/tenants/{TENANT_A}/checks").text

    assert "AADSTS" in token["technical"]
    assert "AADSTS" in page


def test_return_host_check_plain_words(portal):
    client = portal.signed_in(ADMIN_A)
    check = _checks(client)["return_host"]

    assert check["passed"] is False
    assert "Errno" not in check["detail"]
    assert "tenanta.mail.protection.outlook.com was not found in DNS" in check["detail"]


def test_consent_declined_says_next_step(portal):
    httpx.post(
        f"{portal.simulator.base_url}/_simulator/tenants/{TENANT_A}/consent-decision",
        json={"decision": "deny"}, verify=str(portal.simulator.ca_path),
    )
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")
    start = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    callback = client.get(start.headers["location"])
    final = client.get(client.get(callback.headers["location"]).headers["location"]).text

    assert "AADSTS" not in final
    assert ".." not in final.split('class="flash error"')[1].split("</p>")[0]
    assert "The permissions were not granted because the request was declined" in final
    assert "press Grant permissions again and choose Accept" in final


def test_cancelled_sign_in_says_cancelled(portal):
    client = portal.client()
    start = client.get("/sign-in")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    denied = client.get(
        "/auth/callback",
        params={"error": "access_denied", "error_description": "AADSTS65004: User declined to consent to access the app.", "state": query["state"][0]},
    )
    page = client.get(denied.headers["location"]).text

    assert "AADSTS" not in page
    assert "The sign-in was cancelled" in page
    assert 'id="error-action" href="/sign-in"' in page
