"""A tenant whose new connector Exchange creates disabled: checks panel, timeline and customer text."""

from __future__ import annotations

import re

import httpx
import pytest

from tenanttls.migration.service import request_upgrades
from tenanttls.portal.diagnosis import OVERRIDE_FIELDS, OVERRIDE_LABELS
from tests.portal.conftest import ADMIN_B, OPERATOR, TENANT_B, csrf_from


@pytest.fixture
def stopped_at_connector(portal):
    """Tenant B, stopped in needs_attention because its new connector was created disabled."""
    answer = httpx.patch(
        f"{portal.simulator.base_url}/_simulator/tenants/{TENANT_B}", json={"connectors_created_disabled": True},
        verify=str(portal.simulator.ca_path),
    )
    assert answer.status_code == 200, answer.text
    request_upgrades(portal.harness.store, [TENANT_B], now=portal.clock.now(), actor="test")
    upgrade = portal.harness.run_until(TENANT_B, "needs_attention")
    assert upgrade.resume_state == "connector"
    assert upgrade.stop_kind == "connector_disabled"
    return portal


def test_checks_name_disabled_connector(stopped_at_connector):
    client = stopped_at_connector.signed_in(ADMIN_B)
    checks = {check["key"]: check for check in client.get(f"/api/tenants/{TENANT_B}/checks").json()["checks"]}

    connectors = checks["connectors"]
    assert connectors["passed"] is False
    assert "Exchange Online created the new connector CrosswareInboundConnector disabled" in connectors["detail"]
    assert "missing or changed" not in connectors["detail"]
    assert connectors["fix"].startswith("Contact Microsoft support and ask them to enable inbound connectors")
    assert "ask the provider to retry" in connectors["fix"]
    assert "by hand" not in connectors["fix"]


def test_timeline_warns_disabled_connector(stopped_at_connector):
    page = stopped_at_connector.signed_in(ADMIN_B).get(f"/tenants/{TENANT_B}/connector").text
    step = re.search(r'<li class="[a-z]+" data-step="connector".*?</li>', page, re.S).group(0)

    assert 'data-status="warning"' in step
    assert "Exchange created it disabled" in step


def test_customer_sees_explanation_not_engine_text(stopped_at_connector):
    client = stopped_at_connector.signed_in(ADMIN_B)
    page = client.get(f"/tenants/{TENANT_B}/connector").text
    status = client.get(f"/api/tenants/{TENANT_B}/status").json()

    assert "Exchange Online created the new connector CrosswareInboundConnector disabled" in page
    assert "tenanttls upgrade" not in page
    assert "--allow-disabled-connector" not in page
    assert "Technical detail" not in page
    assert status["last_error"] is None
    assert status["stop_kind"] is None
    assert "Contact Microsoft support" in status["problem"]


def test_operator_sees_engine_text(stopped_at_connector):
    client = stopped_at_connector.signed_in(OPERATOR, operator=True)
    customer_view = client.get(f"/tenants/{TENANT_B}/connector").text
    operator_view = client.get(f"/operator/tenants/{TENANT_B}").text
    status = client.get(f"/api/tenants/{TENANT_B}/status").json()

    assert status["stop_kind"] == "connector_disabled"
    assert "--allow-disabled-connector" in customer_view
    assert 'id="engine-message"' in customer_view
    assert "--allow-disabled-connector" in operator_view


def test_operator_retry_with_override_needs_confirmation(stopped_at_connector):
    portal = stopped_at_connector
    client = portal.signed_in(OPERATOR, operator=True)
    page = client.get(f"/operator/tenants/{TENANT_B}")
    assert "The engine's message suggests: Keep waiting for Microsoft support" in page.text

    unconfirmed = client.post(
        f"/operator/tenants/{TENANT_B}/retry", data={"csrf_token": csrf_from(page.text), "override": "allow_disabled_connector"}
    )
    assert "I accept what the chosen override allows\u201d to confirm" in client.get(unconfirmed.headers["location"]).text
    assert portal.upgrade(TENANT_B).state == "needs_attention"

    confirmed = client.post(
        f"/operator/tenants/{TENANT_B}/retry",
        data={"csrf_token": csrf_from(page.text), "override": "allow_disabled_connector", "confirm_override": "yes"},
    )
    after = client.get(confirmed.headers["location"]).text
    assert "Retry with allow_disabled_connector: resumes in state connector." in after
    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.state == "connector"
    assert upgrade.overrides == {"allow_disabled_connector": True}

    report = portal.harness.step(TENANT_B)
    assert report.kind == "wait"


def test_operator_retry_legacy_connector_needs_name(stopped_at_connector):
    portal = stopped_at_connector
    client = portal.signed_in(OPERATOR, operator=True)
    page = client.get(f"/operator/tenants/{TENANT_B}")
    answer = client.post(
        f"/operator/tenants/{TENANT_B}/retry",
        data={"csrf_token": csrf_from(page.text), "override": "legacy_connector", "confirm_override": "yes"},
    )
    assert "Connector to keep as the backup is required" in client.get(answer.headers["location"]).text
    assert portal.upgrade(TENANT_B).state == "needs_attention"


def test_api_retry_with_override(stopped_at_connector):
    portal = stopped_at_connector
    client = portal.signed_in(OPERATOR, operator=True)
    token = portal.csrf(client)

    bad = client.post(
        f"/api/operator/tenants/{TENANT_B}/retry", json={"overrides": {"legacy_connector": "a/b"}}, headers={"X-CSRF-Token": token}
    )
    assert bad.status_code == 422
    assert "overrides.legacy_connector" in bad.json()["detail"]

    answer = client.post(
        f"/api/operator/tenants/{TENANT_B}/retry", json={"overrides": {"allow_disabled_connector": True}}, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "resumed"
    assert portal.upgrade(TENANT_B).overrides == {"allow_disabled_connector": True}


def test_override_labels_cover_engine_fields():
    assert set(OVERRIDE_LABELS) == set(OVERRIDE_FIELDS)
