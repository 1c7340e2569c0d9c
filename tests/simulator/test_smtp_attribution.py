"""Tenant attribution of the SMTP front door, as pure functions over a mail view."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tenanttls.simulator.smtp import (
    RELAY_ACCESS_DENIED,
    STEP_CERTIFICATE,
    STEP_MAIL_FROM,
    STEP_RCPT_TO,
    PeerCertificate,
    TenantMailView,
    as_mail_view,
    attribute_sender,
    certificate_name_matches,
    decide_recipient,
    domain_of,
)

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
LEGACY = "*.crossware.co.nz"
UNIQUE_A = "q7k2m4p9x3c8v1b6n5z0w2r4ta.crosswaretls.com"
UNIQUE_B = "h3j5k7m9p1q3r5s7t9v1w3x5yb.crosswaretls.com"


def connector(name: str, certificate_name: str, *, enabled: bool = True, connector_type: str = "OnPremises", sender_domains=("smtp:*;1",)):
    return {
        "Name": name,
        "Enabled": enabled,
        "ConnectorType": connector_type,
        "TlsSenderCertificateName": certificate_name,
        "SenderDomains": list(sender_domains),
    }


def certificate(*names: str) -> PeerCertificate:
    return PeerCertificate(
        names=names,
        subject=f"CN={names[0]}",
        issuer="CN=test CA",
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=90),
    )


def legacy_views() -> list[TenantMailView]:
    """Two tenants before the upgrade: one connector each for the shared certificate."""
    return [
        TenantMailView("tenant-a", ("contoso.com", "contoso.onmicrosoft.com"), (connector("CrosswareInboundConnector", LEGACY),)),
        TenantMailView("tenant-b", ("fabrikam.com", "fabrikam.onmicrosoft.com"), (connector("CrosswareInboundConnector", LEGACY),)),
    ]


def upgraded_views() -> list[TenantMailView]:
    """Tenant A after the upgrade: the unique name is accepted and the backup connector kept."""
    return [
        TenantMailView(
            "tenant-a",
            ("contoso.com", "contoso.onmicrosoft.com", UNIQUE_A),
            (
                connector("CrosswareInboundConnector-BACKUP", LEGACY),
                connector("CrosswareInboundConnector", UNIQUE_A),
            ),
        ),
        legacy_views()[1],
    ]


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("mail.contoso.com", "mail.contoso.com", True),
        ("MAIL.Contoso.com", "mail.contoso.com.", True),
        ("*.contoso.com", "mail.contoso.com", True),
        ("*.contoso.com", "*.contoso.com", True),
        ("*.contoso.com", "contoso.com", False),
        ("*.contoso.com", "a.b.contoso.com", False),
        ("*.contoso.com", "mail.fabrikam.com", False),
        ("mail.contoso.com", "*.contoso.com", False),
        ("", "mail.contoso.com", False),
        (None, "mail.contoso.com", False),
    ],
)
def test_certificate_name_matches(pattern, name, expected):
    assert certificate_name_matches(pattern, name) is expected


def test_domain_of_null_sender():
    assert domain_of("") == ""
    assert domain_of("User@Contoso.COM") == "contoso.com"


def test_unique_certificate_attributes_by_certificate():
    attribution = attribute_sender(upgraded_views(), certificate(UNIQUE_A), "")

    assert attribution is not None
    assert attribution.tenant_id == "tenant-a"
    assert attribution.connector == "CrosswareInboundConnector"
    assert attribution.step == STEP_CERTIFICATE


def test_unique_certificate_relays_null_sender_outside():
    views = upgraded_views()
    sender = attribute_sender(views, certificate(UNIQUE_A), "")
    decision = decide_recipient(views, certificate(UNIQUE_A), sender, "someone@outside.example")

    assert decision.accepted
    assert decision.attribution.tenant_id == "tenant-a"


def test_wildcard_connector_matches_unique_name():
    views = [TenantMailView("tenant-a", ("contoso.com", UNIQUE_A), (connector("Wild", "*.crosswaretls.com"),))]

    attribution = attribute_sender(views, certificate(UNIQUE_A), "")

    assert attribution is not None
    assert attribution.step == STEP_CERTIFICATE
    assert attribution.connector == "Wild"


def test_certificate_name_in_san_attributes():
    views = upgraded_views()

    attribution = attribute_sender(views, certificate("relay.crossware.co.nz", UNIQUE_A), "")

    assert attribution is not None
    assert attribution.tenant_id == "tenant-a"


def test_legacy_certificate_attributes_by_mail_from():
    attribution = attribute_sender(legacy_views(), certificate(LEGACY), "alice@fabrikam.com")

    assert attribution is not None
    assert attribution.tenant_id == "tenant-b"
    assert attribution.step == STEP_MAIL_FROM


def test_legacy_certificate_null_sender_outside_denied():
    views = legacy_views()
    sender = attribute_sender(views, certificate(LEGACY), "")
    decision = decide_recipient(views, certificate(LEGACY), sender, "someone@outside.example")

    assert sender is None
    assert not decision.accepted
    assert decision.reply == RELAY_ACCESS_DENIED
    assert decision.attribution is None


def test_legacy_certificate_null_sender_inside_by_recipient():
    views = legacy_views()
    decision = decide_recipient(views, certificate(LEGACY), None, "bob@contoso.com")

    assert decision.accepted
    assert decision.attribution.tenant_id == "tenant-a"
    assert decision.attribution.step == STEP_RCPT_TO
    assert decision.attribution.connector == "CrosswareInboundConnector"


def test_mail_from_needs_matching_connector():
    # Tenant A only has the unique-name connector; the legacy certificate matches none of it.
    views = [TenantMailView("tenant-a", ("contoso.com", UNIQUE_A), (connector("New", UNIQUE_A),))]

    assert attribute_sender(views, certificate(LEGACY), "alice@contoso.com") is None


def test_mail_from_respects_sender_domains():
    views = [TenantMailView("tenant-a", ("contoso.com",), (connector("Old", LEGACY, sender_domains=("smtp:fabrikam.com;1",)),))]

    assert attribute_sender(views, certificate(LEGACY), "alice@contoso.com") is None


def test_disabled_connector_does_not_match():
    views = [TenantMailView("tenant-a", ("contoso.com", UNIQUE_A), (connector("New", UNIQUE_A, enabled=False),))]

    assert attribute_sender(views, certificate(UNIQUE_A), "") is None


def test_enabled_as_text_is_understood():
    views = [TenantMailView("tenant-a", ("contoso.com", UNIQUE_A), (connector("New", UNIQUE_A) | {"Enabled": "False"},))]

    assert attribute_sender(views, certificate(UNIQUE_A), "") is None


def test_partner_connector_does_not_match():
    views = [TenantMailView("tenant-a", ("contoso.com", UNIQUE_A), (connector("New", UNIQUE_A, connector_type="Partner"),))]

    assert attribute_sender(views, certificate(UNIQUE_A), "") is None


def test_connector_type_case_is_ignored():
    views = [TenantMailView("tenant-a", ("contoso.com", UNIQUE_A), (connector("New", UNIQUE_A, connector_type="onPremises"),))]

    assert attribute_sender(views, certificate(UNIQUE_A), "") is not None


def test_name_not_accepted_falls_back_to_mail_from():
    # The connector exists but the unique name is not (yet) an accepted domain: step 1 fails.
    views = [TenantMailView("tenant-a", ("contoso.com",), (connector("New", UNIQUE_A),))]

    assert attribute_sender(views, certificate(UNIQUE_A), "") is None
    assert attribute_sender(views, certificate(UNIQUE_A), "alice@contoso.com").step == STEP_MAIL_FROM


def test_other_tenants_certificate_not_attributed():
    views = upgraded_views()

    attribution = attribute_sender(views, certificate(UNIQUE_B), "")

    assert attribution is None


def test_anonymous_inbound_has_no_connector():
    decision = decide_recipient(legacy_views(), None, None, "bob@fabrikam.com")

    assert decision.accepted
    assert decision.attribution.connector is None
    assert decision.attribution.tenant_id == "tenant-b"


def test_anonymous_relay_denied():
    decision = decide_recipient(legacy_views(), None, None, "someone@outside.example")

    assert decision.reply == RELAY_ACCESS_DENIED


def test_as_mail_view_accepts_exchange_shapes():
    item = {
        "tenant_id": "tenant-a",
        "accepted_domains": [{"DomainName": "Contoso.com"}, "contoso.onmicrosoft.com"],
        "inbound_connectors": [connector("Old", LEGACY)],
    }

    view = as_mail_view(item)

    assert view.tenant_id == "tenant-a"
    assert view.accepted_domains == ("contoso.com", "contoso.onmicrosoft.com")
    assert view.inbound_connectors[0]["Name"] == "Old"


def test_certificate_validity_period():
    presented = certificate(UNIQUE_A)

    assert not presented.is_expired(NOW)
    assert presented.is_expired(NOW + timedelta(days=91))
    assert presented.is_expired(NOW - timedelta(days=2))
