"""The plan page: the customer's sentences first, the engine's lines behind a disclosure."""

from __future__ import annotations

import re
from datetime import timedelta

from tenanttls.migration import changes
from tenanttls.migration.safety import Violation
from tenanttls.portal.plan_text import describe_change, describe_violation
from tests.portal.conftest import ADMIN_A, TENANT_A, csrf_from

JARGON = ("isVerified", "verificationDnsRecords", "before-rename", "$true", "$false", "<random label>", "<unique name>", "&lt;")


def _grant_consent(client) -> None:
    page = client.get(f"/tenants/{TENANT_A}/connector")
    start = client.post(f"/tenants/{TENANT_A}/consent", data={"csrf_token": csrf_from(page.text)})
    callback = client.get(start.headers["location"])
    client.get(callback.headers["location"])


def test_plan_in_customer_words(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(client)
    page = client.get(f"/tenants/{TENANT_A}/plan").text
    steps = re.search(r'<ol class="plan" id="plan-steps">(.*?)</ol>', page, re.S).group(1)

    for word in JARGON:
        assert word not in steps, word
    assert "Create your tenant&#39;s unique certificate name, a new name under crosswaretls.com" in steps
    assert "Rename your connector CrosswareInboundConnector to CrosswareInboundConnector-BACKUP" in steps
    assert "Wait 24 hours, the grace period" in steps


def test_plan_keeps_technical_lines(portal):
    client = portal.signed_in(ADMIN_A)
    _grant_consent(client)
    page = client.get(f"/tenants/{TENANT_A}/plan").text
    technical = re.search(r'<details class="technical" id="technical-plan">(.*?)</details>', page, re.S).group(1)

    assert "verify domain" in technical
    assert "isVerified $false → $true" in technical


def test_placeholder_name_in_words():
    text = describe_change(changes.AddDomain(name="<unique name>.crosswaretls.com"), legacy_certificate_name="*.x", grace=timedelta(hours=1))
    assert text == "Add that name to your tenant as a domain."


def test_real_name_kept():
    text = describe_change(changes.VerifyDomain(name="abc.crosswaretls.com"), legacy_certificate_name="*.x", grace=timedelta(hours=1))
    assert text == "Verify abc.crosswaretls.com in your tenant."


def test_violation_without_flags():
    violation = Violation("name_taken", "CrosswareInboundConnector", "... run 'tenanttls upgrade X --adopt-connector' ...")
    text = describe_violation(violation)
    assert "--adopt-connector" not in text
    assert "CrosswareInboundConnector" in text


def test_downtime_answer_uses_engine_grace(portal_factory):
    portal = portal_factory(grace=timedelta(hours=2))
    client = portal.signed_in(ADMIN_A)
    _grant_consent(client)
    plan = client.get(f"/tenants/{TENANT_A}/plan")
    fingerprint = re.search(r'name="plan" value="([0-9a-f]{64})"', plan.text).group(1)
    client.post(f"/tenants/{TENANT_A}/start", data={"csrf_token": csrf_from(plan.text), "confirm": "yes", "plan": fingerprint})
    portal.harness.run_until(TENANT_A, "grace")

    page = client.get(f"/tenants/{TENANT_A}/connector").text
    assert "grace period of 2 hours after the new connector is created" in page
    assert "24 hours" not in page
