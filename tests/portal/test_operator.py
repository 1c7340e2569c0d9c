"""The operator view over HTTP: fleet filters and search, a tenant's audit trail, retry and rollback."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import insert

from tenanttls.store.schema import tenants, upgrades
from tenanttls.store.upgrades import update_upgrade
from tests.portal.conftest import OPERATOR, TENANT_A, TENANT_B, csrf_from


@pytest.fixture
def operator(portal):
    return portal.signed_in(OPERATOR, operator=True)


def test_fleet_lists_tenants_with_counts(portal, operator):
    page = operator.get("/operator")
    assert page.status_code == 200
    assert "awaiting_consent: 2" in page.text
    assert f'data-tenant="{TENANT_A}"' in page.text
    assert f'data-tenant="{TENANT_B}"' in page.text
    assert "2 tenants match." in page.text


def test_fleet_filters_by_state(portal, operator):
    with portal.harness.store.write() as connection:
        update_upgrade(connection, TENANT_B, owner=None, state="needs_attention", last_error="InvalidRequest: example")

    page = operator.get("/operator", params={"state": "needs_attention"})
    assert f'data-tenant="{TENANT_B}"' in page.text
    assert f'data-tenant="{TENANT_A}"' not in page.text
    assert "InvalidRequest: example" in page.text
    assert '<option value="needs_attention" selected>' in page.text


def test_fleet_search_by_domain(portal, operator):
    page = operator.get("/operator", params={"q": "TenantB"})
    assert f'data-tenant="{TENANT_B}"' in page.text
    assert f'data-tenant="{TENANT_A}"' not in page.text


def test_fleet_pages_with_cursor(portal, operator):
    first = operator.get("/operator", params={"size": "1"})
    next_link = re.search(r'id="next-page" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    second = operator.get(next_link)

    assert f'data-tenant="{TENANT_A}"' in first.text
    assert f'data-tenant="{TENANT_B}"' in second.text
    assert 'id="next-page"' not in second.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "bogus"}, "State &#39;bogus&#39; is not one of"),
        ({"q": "<script>"}, "Search may contain only letters, digits"),
        ({"after": "not a domain"}, "Invalid page cursor"),
        ({"size": "100000"}, "Page size must be a whole number from 1 to 200"),
    ],
)
def test_fleet_rejects_bad_filters(portal, operator, params, message):
    page = operator.get("/operator", params=params)
    assert page.status_code == 422
    assert message in page.text
    assert '<form method="get" action="/operator" class="filters">' in page.text
    for name in params:
        assert f"{name}: " not in page.text, name


def test_fleet_bad_search_keeps_typed_text(portal, operator):
    page = operator.get("/operator", params={"q": "a b", "state": "grace"})
    assert page.status_code == 422
    assert '<input id="q" name="q" value="a b"' in page.text
    assert '<option value="grace" selected>' in page.text
    assert "Search may contain only letters, digits and . @ _ -." in page.text


def test_fleet_count_wording(portal, operator):
    one = operator.get("/operator", params={"q": "tenantb"})
    assert "1 tenant matches." in one.text
    assert "2 tenants match." in operator.get("/operator").text


def test_api_fleet_and_audit(portal, operator):
    fleet = operator.get("/api/operator/tenants", params={"state": "awaiting_consent"}).json()
    audit = operator.get(f"/api/operator/tenants/{TENANT_A}/audit").json()

    assert fleet["matching"] == 2
    assert fleet["counts_by_state"] == {"awaiting_consent": 2}
    assert [event["action"] for event in audit["events"]] == ["tenant.added"]


def test_api_fleet_shows_stop_kind(portal, operator):
    with portal.harness.store.write() as connection:
        update_upgrade(
            connection, TENANT_B, owner=None, state="needs_attention", resume_state="domain",
            last_error="Graph failed (gave up after 8 attempts)", stop_kind="gave_up",
        )

    [row] = operator.get("/api/operator/tenants", params={"state": "needs_attention"}).json()["tenants"]
    status = operator.get(f"/api/tenants/{TENANT_B}/status").json()

    assert row["tenant_id"] == TENANT_B
    assert row["stop_kind"] == "gave_up"
    assert row["last_error"] == "Graph failed (gave up after 8 attempts)"
    assert status["stop_kind"] == "gave_up"


def test_tenant_page_shows_audit_trail(portal, operator):
    page = operator.get(f"/operator/tenants/{TENANT_A}")
    assert page.status_code == 200
    assert "tenanta.onmicrosoft.com" in page.text
    assert "tenant.added" in page.text
    assert 'id="retry"' in page.text
    assert 'id="operator-rollback"' in page.text


def test_retry_resumes_needs_attention(portal, operator):
    with portal.harness.store.write() as connection:
        update_upgrade(
            connection, TENANT_B, owner=None, state="needs_attention", resume_state="accepted", requested=True,
            last_error="Throttled: too many requests", stop_kind="gave_up", next_attempt_at=None,
        )
    page = operator.get(f"/operator/tenants/{TENANT_B}")
    answer = operator.post(f"/operator/tenants/{TENANT_B}/retry", data={"csrf_token": csrf_from(page.text)})

    assert answer.status_code == 303
    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.state == "accepted"
    assert upgrade.last_error is None
    assert upgrade.stop_kind is None
    after = operator.get(answer.headers["location"])
    assert "Retry: resumes in state accepted." in after.text
    assert "upgrade.resumed" in after.text


def test_retry_without_running_upgrade_explains(portal, operator):
    page = operator.get(f"/operator/tenants/{TENANT_A}")
    answer = operator.post(f"/operator/tenants/{TENANT_A}/retry", data={"csrf_token": csrf_from(page.text)})
    assert answer.status_code == 409
    assert "has no running upgrade to retry (state awaiting_consent)" in answer.text


def test_retry_makes_waiting_tenant_due(portal, operator):
    later = portal.clock.now().replace(year=portal.clock.now().year + 1)
    with portal.harness.store.write() as connection:
        update_upgrade(connection, TENANT_B, owner=None, state="accepted", requested=True, next_attempt_at=later, attempts=3)
    page = operator.get(f"/operator/tenants/{TENANT_B}")
    operator.post(f"/operator/tenants/{TENANT_B}/retry", data={"csrf_token": csrf_from(page.text)})

    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.next_attempt_at == portal.clock.now()
    assert upgrade.attempts == 0


def test_rollback_needs_reason_and_confirmation(portal, operator):
    with portal.harness.store.write() as connection:
        update_upgrade(connection, TENANT_B, owner=None, state="grace", requested=True, run_id="run-1")
    page = operator.get(f"/operator/tenants/{TENANT_B}")
    token = csrf_from(page.text)

    missing = operator.post(f"/operator/tenants/{TENANT_B}/rollback", data={"csrf_token": token, "reason": "customer asked"})
    assert "Tick “Roll back this tenant” to confirm" in operator.get(missing.headers["location"]).text
    assert portal.upgrade(TENANT_B).state == "grace"

    done = operator.post(f"/operator/tenants/{TENANT_B}/rollback", data={"csrf_token": token, "reason": "customer asked", "confirm": "yes"})
    after = operator.get(done.headers["location"])
    assert portal.upgrade(TENANT_B).state == "rolling_back"
    assert "rollback.reason" in after.text
    assert "customer asked" in after.text


def _add_fleet(portal, count: int) -> None:
    """Insert `count` customer tenants awaiting consent, straight into the store."""
    now = portal.clock.now()
    tenant_rows = [
        {"tenant_id": str(uuid.UUID(int=number + 1, version=4)), "initial_domain": f"bulk{number:05d}.onmicrosoft.com", "display_name": "", "created_at": now}
        for number in range(count)
    ]
    upgrade_rows = [
        {"tenant_id": row["tenant_id"], "state": "awaiting_consent", "requested": False, "attempts": 0, "overrides": {},
         "api_calls": 0, "state_entered_at": now, "updated_at": now, "version": 0}
        for row in tenant_rows
    ]
    with portal.harness.store.write() as connection:
        connection.execute(insert(tenants), tenant_rows)
        connection.execute(insert(upgrades), upgrade_rows)


def test_fleet_counts_thousands_separated(portal, operator):
    _add_fleet(portal, 1000)
    page = operator.get("/operator").text

    assert "1,002 tenants match." in page
    assert "awaiting_consent: 1,002" in page


def test_api_fleet_bad_search_names_label(portal, operator):
    answer = operator.get("/api/operator/tenants", params={"q": "a b"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "Search may contain only letters, digits and . @ _ -"
    assert answer.json()["errors"][0]["field"] == "q"


def test_fleet_broad_search_capped_count(portal, operator):
    _add_fleet(portal, 1005)
    page = operator.get("/operator", params={"q": "bulk", "size": "3"}).text
    api = operator.get("/api/operator/tenants", params={"q": "bulk", "size": "3", "after": "bulk00001.onmicrosoft.com"}).json()

    assert "More than 1,000 tenants match" in page
    assert re.findall(r"<td>(bulk\d+)\.onmicrosoft\.com</td>", page) == ["bulk00000", "bulk00001", "bulk00002"]
    assert api["matching"] == 1000
    assert api["matching_capped"] is True
    assert [row["initial_domain"] for row in api["tenants"]] == ["bulk00002.onmicrosoft.com", "bulk00003.onmicrosoft.com", "bulk00004.onmicrosoft.com"]


def test_fleet_search_merges_columns(portal, operator):
    """'b' starts the domains bulk… and the tenant id of tenant B; both kinds are listed, in domain order."""
    _add_fleet(portal, 20)
    answer = operator.get("/api/operator/tenants", params={"q": "b"}).json()
    domains = [row["initial_domain"] for row in answer["tenants"]]

    assert domains == [f"bulk{number:05d}.onmicrosoft.com" for number in range(20)] + ["tenantb.onmicrosoft.com"]
    assert answer["matching"] == 21
    assert answer["matching_capped"] is False
