"""A tenant whose new connector Exchange creates disabled: checks panel, timeline and customer text."""

from __future__ import annotations

import re

import httpx
import pytest

from tenanttls.migration.service import request_upgrades
from tests.portal.conftest import ADMIN_B, TENANT_B


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
