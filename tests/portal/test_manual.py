"""The manual-upgrade request over HTTP: what the browser sends, what is stored and shown."""

from __future__ import annotations

import re

from tenanttls.store.audit import list_events
from tests.portal.conftest import ADMIN_A, TENANT_A, csrf_from


def _manual_event(portal):
    with portal.harness.store.engine.connect() as connection:
        return [event for event in list_events(connection, TENANT_A) if event.action == "manual.requested"][-1]


def test_note_with_crlf_at_limit_accepted(portal):
    client = portal.signed_in(ADMIN_A)
    form = client.get(f"/tenants/{TENANT_A}/manual")
    # 1,980 letters and 20 line breaks: what a textarea with maxlength 2000 lets through, sent with CR LF.
    note = ("x" * 98 + "\r\n") * 20 + "y" * 20

    answer = client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": csrf_from(form.text), "contact_email": "it@tenanta.example", "note": note})
    assert answer.status_code == 303
    assert portal.upgrade(TENANT_A).state == "manual"
    assert len(_manual_event(portal).detail) == 2000


def test_api_note_with_crlf_at_limit_accepted(portal):
    client = portal.signed_in(ADMIN_A)
    note = ("x" * 98 + "\r\n") * 20 + "y" * 20
    answer = client.post(
        f"/api/tenants/{TENANT_A}/manual", json={"contact_email": "it@tenanta.example", "note": note},
        headers={"X-CSRF-Token": portal.csrf(client)},
    )
    assert answer.status_code == 200
    assert "\r" not in _manual_event(portal).detail


def test_manual_page_after_request_says_recorded(portal):
    client = portal.signed_in(ADMIN_A)
    form = client.get(f"/tenants/{TENANT_A}/manual")
    client.post(f"/tenants/{TENANT_A}/manual", data={"csrf_token": csrf_from(form.text), "contact_email": "it@tenanta.example"})
    page = client.get(f"/tenants/{TENANT_A}/manual").text

    assert "state now" not in page
    assert re.search(r"Your request for the manual upgrade was recorded \d{4}-\d\d-\d\d \d\d:\d\d UTC\. Support will contact you at it@tenanta\.example\.", page)
    assert 'id="manual-submit"' not in page
