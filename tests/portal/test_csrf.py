"""CSRF protection: every unsafe route rejects a request without the session's token."""

from __future__ import annotations

import re
import time

import pytest

from tenanttls.portal.app import create_app
from tests.portal.conftest import ADMIN_A, OPERATOR, TENANT_A, csrf_from


def _routes(routes) -> list:
    """Return every route, including those of included routers (FastAPI includes them lazily)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found.extend(_routes(included.routes) if included is not None else [route])
    return found


def _unsafe_routes(app) -> list[str]:
    paths = []
    for route in _routes(app.routes):
        methods = getattr(route, "methods", None) or set()
        if methods & {"POST", "PUT", "PATCH", "DELETE"}:
            paths.append(route.path.replace("{tenant_id}", TENANT_A))
    return paths


def test_every_unsafe_route_listed(portal):
    paths = _unsafe_routes(create_app(portal.context))
    assert "/sign-out" in paths
    assert f"/tenants/{TENANT_A}/start" in paths
    assert f"/api/tenants/{TENANT_A}/rollback" in paths
    assert f"/operator/tenants/{TENANT_A}/retry" in paths
    assert len(paths) == 11


@pytest.mark.parametrize("who", ["admin", "operator"])
def test_unsafe_routes_reject_missing_token(portal, who):
    client = portal.signed_in(ADMIN_A) if who == "admin" else portal.signed_in(OPERATOR, operator=True)
    for path in _unsafe_routes(create_app(portal.context)):
        form = client.post(path, data={"confirm": "yes", "reason": "test", "contact_email": "a@contoso.com"})
        assert form.status_code == 403, path
        assert "security token is missing or out of date" in form.text, path

        wrong = client.post(path, data={"csrf_token": "x" * 43, "confirm": "yes"})
        assert wrong.status_code == 403, path

    assert portal.upgrade(TENANT_A).state == "awaiting_consent"
    assert client.get("/api/me").status_code == 200  # sign-out was rejected too


def test_api_rejects_token_in_wrong_place(portal):
    client = portal.signed_in(ADMIN_A)
    token = portal.csrf(client)
    body_only = client.post(f"/api/tenants/{TENANT_A}/rollback", json={"confirm": True, "csrf_token": token})
    assert body_only.status_code == 403


def test_token_of_other_session_rejected(portal):
    attacker = portal.signed_in(ADMIN_A)
    victim = portal.signed_in(ADMIN_A)
    stolen = portal.csrf(attacker)
    answer = victim.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": stolen, "contact_email": "a@contoso.com"})
    assert answer.status_code == 403
    assert portal.upgrade(TENANT_A).state == "awaiting_consent"


def test_cross_origin_post_rejected(portal):
    client = portal.signed_in(ADMIN_A)
    token = portal.csrf(client)
    answer = client.post(
        f"/tenants/{TENANT_A}/manual",
        data={"csrf_token": token, "contact_email": "a@contoso.com"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert "https://evil.example" in answer.text


def test_same_origin_post_with_token_accepted(portal):
    client = portal.signed_in(ADMIN_A)
    page = client.get(f"/tenants/{TENANT_A}/manual")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = client.post(
        f"/tenants/{TENANT_A}/manual",
        data={"csrf_token": token, "contact_email": "it@tenanta.example", "note": "Call before noon."},
        headers={"Origin": portal.base_url},
    )
    assert answer.status_code == 303
    assert portal.upgrade(TENANT_A).state == "manual"


def test_expired_session_form_asks_to_sign_in(portal):
    client = portal.signed_in(ADMIN_A)
    form = client.get(f"/tenants/{TENANT_A}/manual")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    client.cookies.clear()  # the browser dropped the cookie at the end of its max-age

    answer = client.post(
        f"/tenants/{TENANT_A}/manual",
        data={"csrf_token": token, "contact_email": "it@tenanta.example"},
        headers={"Referer": f"{portal.base_url}/tenants/{TENANT_A}/manual"},
    )
    assert answer.status_code == 401
    assert "<h1>Your session has expired</h1>" in answer.text
    assert "security token" not in answer.text
    assert f'id="error-action" href="/sign-in?next=/tenants/{TENANT_A}/manual"' in answer.text
    assert portal.upgrade(TENANT_A).state == "awaiting_consent"


def test_session_past_lifetime_form_asks_to_sign_in(portal, monkeypatch):
    client = portal.signed_in(OPERATOR, operator=True)
    page = client.get(f"/operator/tenants/{TENANT_A}")
    lifetime = portal.context.config.session_lifetime.total_seconds()
    later = time.time() + lifetime + 60
    monkeypatch.setattr("tenanttls.portal.access.time.time", lambda: later)

    answer = client.post(f"/operator/tenants/{TENANT_A}/retry", data={"csrf_token": csrf_from(page.text)})
    assert answer.status_code == 401
    assert "<h1>Your session has expired</h1>" in answer.text
    assert 'href="/operator/sign-in?next=/operator"' in answer.text


def test_signed_out_sign_out_goes_home(portal):
    answer = portal.client().post("/sign-out")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
