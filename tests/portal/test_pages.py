"""The customer's pages end to end over HTTP: consent, plan, start, manual request, rollback, checks."""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import update

from tenanttls.simulator.smtp import SmtpFrontDoorService
from tenanttls.store.audit import list_events
from tenanttls.store.schema import tenants
from tests.portal.conftest import ADMIN_A, ADMIN_B, EXCHANGE_ADMIN_A, TENANT_A, TENANT_B, csrf_from


def _grant_consent(portal, client) -> httpx.Response:
    """Press "Grant permissions" and follow the round trip through the simulator; return the final redirect."""
    page = client.get(f"/tenants/{TENANT_A}/connector")
    start = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    assert start.status_code == 303
    assert start.headers["location"].startswith(f"{portal.simulator.base_url}/{TENANT_A}/adminconsent?")
    callback = client.get(start.headers["location"])
    assert callback.status_code == 302
    return client.get(callback.headers["location"])


def _start_upgrade(portal, client) -> httpx.Response:
    plan = client.get(f"/tenants/{TENANT_A}/plan")
    fingerprint = re.search(r'name="plan" value="([0-9a-f]{64})"', plan.text).group(1)
    return client.post(f"/tenants/{TENANT_A}/start", data={"csrf_token": csrf_from(plan.text), "confirm": "yes", "plan": fingerprint})


def test_security_headers_on_pages(portal):
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")

    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert f"form-action 'self' {portal.simulator.base_url}" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert page.headers["cache-control"] == "no-store"


def test_consent_round_trip_recorded(portal):
    client = portal.signed_in(ADMIN_A)
    final = _grant_consent(portal, client)

    assert final.status_code == 303
    page = client.get(final.headers["location"])
    assert "Permissions granted. Review the plan" in page.text
    assert portal.upgrade(TENANT_A).consented_at is not None
    with portal.harness.store.engine.connect() as connection:
        actions = [event.action for event in list_events(connection, TENANT_A)]
    assert "consent.granted" in actions


def test_consent_callback_with_wrong_state_rejected(portal):
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")
    start = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    callback = client.get(start.headers["location"]).headers["location"]
    forged = re.sub(r"state=[^&]+", "state=forged", callback)

    answer = client.get(forged)
    assert answer.status_code == 400
    assert "state mismatch" in answer.text
    assert portal.upgrade(TENANT_A).consented_at is None


def test_consent_callback_for_other_tenant_rejected(portal):
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")
    start = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]

    answer = client.get("/consent/callback", params={"admin_consent": "True", "tenant": TENANT_B, "state": state})
    assert answer.status_code == 400
    assert "another tenant" in answer.text
    assert portal.upgrade(TENANT_A).consented_at is None
    assert portal.upgrade(TENANT_B).consented_at is None


def test_consent_declined_shows_reason(portal):
    httpx.post(
        f"{portal.simulator.base_url}/_simulator/tenants/{TENANT_A}/consent-decision",
        json={"decision": "deny"}, verify=str(portal.simulator.ca_path),
    )
    client = portal.signed_in(ADMIN_A)
    final = _grant_consent(portal, client)
    page = client.get(final.headers["location"])

    assert "The permissions were not granted because the request was declined" in page.text
    assert portal.upgrade(TENANT_A).consented_at is None


def test_consent_needs_global_admin(portal):
    client = portal.signed_in(EXCHANGE_ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/connector")
    assert 'id="grant-permissions"' not in page.text
    assert "A Global Administrator must grant the permissions first." in page.text

    answer = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    assert answer.status_code == 403


def test_plan_before_consent_explains(portal):
    client = portal.signed_in(ADMIN_A)
    plan = client.get(f"/tenants/{TENANT_A}/plan")
    assert plan.status_code == 200
    assert "Grant the permissions first" in plan.text
    assert 'id="confirm-start-button"' not in plan.text


def test_plan_lists_changes_and_start_requests(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    plan = client.get(f"/tenants/{TENANT_A}/plan")

    assert "rename connector: Name &#39;CrosswareInboundConnector&#39; → &#39;CrosswareInboundConnector-BACKUP&#39;" in plan.text
    assert "Will mail stop during the upgrade?" in plan.text
    assert "Incomplete setup" in plan.text

    answer = _start_upgrade(portal, client)
    assert answer.status_code == 303
    upgrade = portal.upgrade(TENANT_A)
    assert upgrade.requested is True
    assert upgrade.state == "awaiting_consent"


def test_start_needs_confirmation(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    plan = client.get(f"/tenants/{TENANT_A}/plan")
    fingerprint = re.search(r'name="plan" value="([0-9a-f]{64})"', plan.text).group(1)

    answer = client.post(f"/tenants/{TENANT_A}/start", data={"csrf_token": csrf_from(plan.text), "plan": fingerprint})
    again = client.get(answer.headers["location"])
    assert "Tick \u201cI have read the plan and want to start\u201d to confirm." in again.text
    assert portal.upgrade(TENANT_A).requested is False


def test_start_with_changed_plan_rejected(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    plan = client.get(f"/tenants/{TENANT_A}/plan")
    answer = client.post(f"/tenants/{TENANT_A}/start", data={"csrf_token": csrf_from(plan.text), "confirm": "yes", "plan": "0" * 64})

    page = client.get(answer.headers["location"])
    assert "setup changed since the plan was shown" in page.text
    assert portal.upgrade(TENANT_A).requested is False


def test_upgrade_progress_shown(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    _start_upgrade(portal, client)
    portal.harness.run_until(TENANT_A, "grace")

    page = client.get(f"/tenants/{TENANT_A}/connector")
    name = portal.harness.context.identities.get(TENANT_A).name
    assert name in page.text
    assert "“Incomplete setup”" in page.text
    assert 'data-step="connector" data-status="done"' in page.text
    assert 'data-step="grace" data-status="current"' in page.text
    assert re.search(r"Grace period: <strong>2[34] h \d+ min</strong> left", page.text)
    assert "CrosswareInboundConnector-BACKUP" in page.text
    assert "the provider&#39;s upgrade" in page.text


def test_checks_panel_green_during_grace(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    _start_upgrade(portal, client)
    portal.harness.run_until(TENANT_A, "grace")
    portal.simulator.add_service(SmtpFrontDoorService(port=0))
    with portal.harness.store.write() as connection:
        connection.execute(update(tenants).where(tenants.c.tenant_id == TENANT_A).values(smart_host=f"127.0.0.1:{portal.simulator.smtp_port}"))

    checks = client.get(f"/api/tenants/{TENANT_A}/checks").json()["checks"]
    verdicts = {check["key"]: check["passed"] for check in checks}
    assert verdicts == {
        "token": True, "consent": True, "domain": True, "connectors": True, "drift": None, "certificate": True, "return_host": True,
    }

    page = client.get(f"/tenants/{TENANT_A}/checks")
    assert page.text.count('class="check pass"') == 6


def test_checks_panel_shows_drift(portal):
    from tenanttls.audit.drift import check_tenant

    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    _start_upgrade(portal, client)
    portal.harness.run_until(TENANT_A, "completed")
    context = portal.harness.context

    clean = client.get(f"/api/tenants/{TENANT_A}/checks").json()["checks"]
    assert {check["key"]: check["passed"] for check in clean}["drift"] is True

    context.exchange.set_inbound_connector(TENANT_A, "CrosswareInboundConnector", {"RequireTls": False})
    check_tenant(context, TENANT_A)
    drifted = {check["key"]: check for check in client.get(f"/api/tenants/{TENANT_A}/checks").json()["checks"]}["drift"]
    page = client.get(f"/tenants/{TENANT_A}/checks")

    assert drifted["passed"] is False
    assert "connector CrosswareInboundConnector: RequireTls is $false, expected $true" in drifted["detail"]
    assert drifted["fix"].startswith("The provider repairs it.")
    assert "tenanttls drift" not in page.text
    assert 'class="check fail" data-check="drift"' in page.text

    check_tenant(context, TENANT_A, repair=True)
    repaired = {check["key"]: check for check in client.get(f"/api/tenants/{TENANT_A}/checks").json()["checks"]}["drift"]

    assert repaired["passed"] is True
    assert "repaired" in repaired["detail"]


def test_checks_panel_red_before_consent(portal):
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/checks")

    assert 'class="check fail" data-check="token"' in page.text
    assert "Fix: A Global Administrator or Privileged Role Administrator of your tenant presses Grant permissions" in page.text
    assert 'class="check fail" data-check="return_host"' in page.text


def test_manual_request_validation_messages(portal):
    client = portal.signed_in(ADMIN_A)
    form = client.get(f"/tenants/{TENANT_A}/manual")
    token = csrf_from(form.text)

    bad = client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": token, "contact_email": "not-an-address", "note": "x" * 2001})
    assert bad.status_code == 422
    assert "Contact e-mail &#39;not-an-address&#39; is not an e-mail address" in bad.text
    assert "Note for support is 2,001 characters long, counting each line break as one; the maximum is 2,000" in bad.text
    assert portal.upgrade(TENANT_A).state == "awaiting_consent"


def test_manual_request_recorded(portal):
    client = portal.signed_in(ADMIN_A)
    form = client.get(f"/tenants/{TENANT_A}/manual")
    assert "What does support do if I request the manual upgrade?" in form.text

    answer = client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": csrf_from(form.text), "contact_email": "it@tenanta.example", "note": "Mornings"})
    page = client.get(answer.headers["location"])
    assert "Support will contact you at it@tenanta.example." in page.text
    assert "Manual upgrade requested" in page.text
    assert portal.upgrade(TENANT_A).state == "manual"
    with portal.harness.store.engine.connect() as connection:
        event = [e for e in list_events(connection, TENANT_A) if e.action == "manual.requested"][0]
    assert event.after["contact"] == "it@tenanta.example"
    assert event.detail == "Mornings"


def test_rollback_needs_confirmation_then_requests(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(portal, client)
    _start_upgrade(portal, client)
    portal.harness.run_until(TENANT_A, "grace")

    form = client.get(f"/tenants/{TENANT_A}/rollback")
    unconfirmed = client.post(f"/tenants/{TENANT_A}/rollback", data={"csrf_token": csrf_from(form.text)})
    assert unconfirmed.status_code == 422
    assert "Tick “Roll back the upgrade” to confirm" in unconfirmed.text
    assert portal.upgrade(TENANT_A).state == "grace"

    confirmed = client.post(f"/tenants/{TENANT_A}/rollback", data={"csrf_token": csrf_from(form.text), "confirm": "yes"})
    assert confirmed.status_code == 303
    assert portal.upgrade(TENANT_A).state == "rolling_back"


def test_oversized_body_rejected(portal):
    client = portal.signed_in(ADMIN_A)
    token = portal.csrf(client)
    answer = client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": token, "note": "x" * 70_000, "contact_email": "a@b.example"})
    assert answer.status_code == 413
    assert portal.upgrade(TENANT_A).state == "awaiting_consent"


def test_no_secrets_in_pages_or_logs(portal, app_credentials, caplog):
    caplog.set_level(logging.DEBUG)
    client = portal.client()
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    authorize = client.get(client.get("/sign-in").headers["location"])
    code = parse_qs(urlsplit(authorize.headers["location"]).query)["code"][0]
    assert client.get(authorize.headers["location"]).status_code == 303

    session_cookie = client.cookies["tenanttls_session"]
    pages = [client.get(path).text for path in (f"/tenants/{TENANT_A}/connector", f"/tenants/{TENANT_A}/plan", "/api/me")]
    key_body = app_credentials.private_key_pem.splitlines()[1]
    for text in pages:
        assert key_body not in text
        assert "client_assertion" not in text

    # The portal's and the server's logs; the test's own HTTP client logs the URLs it requests.
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith(("tenanttls", "uvicorn")))
    assert "signed in: kind=tenant" in logged
    assert key_body not in logged
    assert session_cookie not in logged
    assert code not in logged
    assert "eyJ" not in logged  # no JWT: ID token, client assertion or access token


def test_api_status_and_openapi(portal):
    client = portal.signed_in(ADMIN_B)
    status = client.get(f"/api/tenants/{TENANT_B}/status").json()
    schema = client.get("/openapi.json").json()

    assert status["state"] == "awaiting_consent"
    assert status["actions"]["grant_consent"] is True
    assert status["explanations"]["incomplete_setup"]["question"].startswith("Why does the new domain show")
    assert [entry["key"] for entry in status["timeline"]][0] == "awaiting_consent"
    assert "/api/tenants/{tenant_id}/start" in schema["paths"]
    assert "/api/operator/tenants" in schema["paths"]


def test_api_start_with_fingerprint(portal):
    client = portal.signed_in(ADMIN_B)
    token = portal.csrf(client)
    plan = client.get(f"/api/tenants/{TENANT_B}/plan").json()

    wrong = client.post(f"/api/tenants/{TENANT_B}/start", json={"plan_fingerprint": "f" * 64}, headers={"X-CSRF-Token": token})
    malformed = client.post(f"/api/tenants/{TENANT_B}/start", json={"plan_fingerprint": "nope"}, headers={"X-CSRF-Token": token})
    right = client.post(f"/api/tenants/{TENANT_B}/start", json={"plan_fingerprint": plan["fingerprint"]}, headers={"X-CSRF-Token": token})

    assert wrong.status_code == 409
    assert malformed.status_code == 422
    assert "plan_fingerprint" in malformed.json()["detail"]
    assert right.status_code == 200
    assert right.json()["outcome"] == "requested"
    assert portal.upgrade(TENANT_B).requested is True
