"""Tenant isolation and roles: a tenant's user reads and acts only on their own tenant.

Every route that takes a tenant id is tried with another tenant's id, through the pages
and the JSON API, and must get 404 without touching that tenant.
"""

from __future__ import annotations

import pytest

from tests.portal.conftest import ADMIN_A, ADMIN_B, OPERATOR, READER_A, TENANT_A, TENANT_B

OTHER_TENANT_READS = [
    f"/tenants/{TENANT_B}/connector",
    f"/tenants/{TENANT_B}/checks",
    f"/tenants/{TENANT_B}/plan",
    f"/tenants/{TENANT_B}/manual",
    f"/tenants/{TENANT_B}/rollback",
    f"/api/tenants/{TENANT_B}/status",
    f"/api/tenants/{TENANT_B}/checks",
    f"/api/tenants/{TENANT_B}/plan",
]

OTHER_TENANT_ACTIONS = [
    (f"/tenants/{TENANT_B}/consent", None),
    (f"/tenants/{TENANT_B}/start", {"confirm": "yes", "plan": "0" * 64}),
    (f"/tenants/{TENANT_B}/manual", {"contact_email": "x@contoso.com"}),
    (f"/tenants/{TENANT_B}/rollback", {"confirm": "yes"}),
]

OTHER_TENANT_API_ACTIONS = [
    (f"/api/tenants/{TENANT_B}/start", {"plan_fingerprint": "0" * 64}),
    (f"/api/tenants/{TENANT_B}/manual", {"contact_email": "x@contoso.com"}),
    (f"/api/tenants/{TENANT_B}/rollback", {"confirm": True}),
]

OPERATOR_ONLY = [
    "/operator",
    f"/operator/tenants/{TENANT_A}",
    "/api/operator/tenants",
    f"/api/operator/tenants/{TENANT_A}/audit",
]


@pytest.fixture
def tenant_a_admin(portal):
    return portal.signed_in(ADMIN_A)


def test_other_tenant_pages_not_found(portal, tenant_a_admin):
    for path in OTHER_TENANT_READS:
        answer = tenant_a_admin.get(path)
        assert answer.status_code == 404, path
        assert "Tenant B" not in answer.text, path
        assert "tenantb" not in answer.text, path


def test_other_tenant_form_actions_not_found(portal, tenant_a_admin):
    token = portal.csrf(tenant_a_admin)
    for path, fields in OTHER_TENANT_ACTIONS:
        answer = tenant_a_admin.post(path, data={**(fields or {}), "csrf_token": token})
        assert answer.status_code == 404, path

    upgrade = portal.upgrade(TENANT_B)
    assert upgrade.state == "awaiting_consent"
    assert upgrade.requested is False


def test_other_tenant_api_actions_not_found(portal, tenant_a_admin):
    token = portal.csrf(tenant_a_admin)
    for path, body in OTHER_TENANT_API_ACTIONS:
        answer = tenant_a_admin.post(path, json=body, headers={"X-CSRF-Token": token})
        assert answer.status_code == 404, path
        assert answer.json() == {"detail": "No such tenant."}, path

    assert portal.upgrade(TENANT_B).requested is False


def test_unknown_and_malformed_tenant_ids_not_found(portal, tenant_a_admin):
    for tenant in ("00000000-0000-4000-8000-000000000000", "not-a-guid", "..%2F..%2Fetc"):
        assert tenant_a_admin.get(f"/tenants/{tenant}/connector").status_code == 404, tenant
        assert tenant_a_admin.get(f"/api/tenants/{tenant}/status").status_code == 404, tenant


def test_same_page_works_for_own_tenant(portal, tenant_a_admin):
    assert tenant_a_admin.get(f"/tenants/{TENANT_A}/connector").status_code == 200
    status = tenant_a_admin.get(f"/api/tenants/{TENANT_A}/status")
    assert status.status_code == 200
    assert status.json()["tenant"]["tenant_id"] == TENANT_A


def test_tenant_b_admin_cannot_read_tenant_a(portal):
    client = portal.signed_in(ADMIN_B)
    assert client.get(f"/tenants/{TENANT_A}/connector").status_code == 404
    assert client.get(f"/tenants/{TENANT_B}/connector").status_code == 200


def test_operator_pages_forbidden_to_tenant_admin(portal, tenant_a_admin):
    token = portal.csrf(tenant_a_admin)
    for path in OPERATOR_ONLY:
        assert tenant_a_admin.get(path).status_code == 403, path

    for action in ("retry", "rollback"):
        answer = tenant_a_admin.post(f"/operator/tenants/{TENANT_A}/{action}", data={"csrf_token": token, "confirm": "yes", "reason": "x"})
        assert answer.status_code == 403, action
        api = tenant_a_admin.post(f"/api/operator/tenants/{TENANT_A}/retry", headers={"X-CSRF-Token": token})
        assert api.status_code == 403


def test_reader_cannot_act(portal):
    client = portal.signed_in(READER_A)
    token = portal.csrf(client)

    consent = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": token})
    manual = client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": token, "contact_email": "r@contoso.com"})
    rollback = client.post(f"/api/tenants/{TENANT_A}/rollback", json={"confirm": True}, headers={"X-CSRF-Token": token})

    assert consent.status_code == 403
    assert "Global Administrator or Privileged Role Administrator" in consent.text
    assert manual.status_code == 403
    assert rollback.status_code == 403
    assert portal.upgrade(TENANT_A).state == "awaiting_consent"


def test_signed_out_requests(portal):
    client = portal.client()
    page = client.get(f"/tenants/{TENANT_A}/connector")
    api = client.get(f"/api/tenants/{TENANT_A}/status")
    action = client.post(f"/api/tenants/{TENANT_A}/rollback", json={"confirm": True})

    assert page.status_code == 303
    assert page.headers["location"].startswith("/sign-in?next=")
    assert api.status_code == 401
    assert action.status_code == 401
    assert "session has expired" in action.json()["detail"]


def test_operator_sees_every_tenant(portal):
    client = portal.signed_in(OPERATOR, operator=True)
    assert client.get(f"/tenants/{TENANT_A}/connector").status_code == 200
    assert client.get(f"/operator/tenants/{TENANT_B}").status_code == 200
    rows = client.get("/api/operator/tenants").json()["tenants"]
    assert [row["tenant_id"] for row in rows] == [TENANT_A, TENANT_B]


def test_operator_page_offers_operator_sign_in(portal, tenant_a_admin):
    page = tenant_a_admin.get("/operator")
    assert page.status_code == 403
    assert "you are signed in as adele@tenanta.onmicrosoft.com" in page.text
    assert 'id="error-action" href="/operator/sign-in?next=/operator"' in page.text
