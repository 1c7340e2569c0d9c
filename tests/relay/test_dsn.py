"""Delivery status notifications and the null-sender rules."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default

import pytest

from tenanttls.relay.dsn import FailedRecipient, build_dsn, header_block, should_send_dsn, status_of

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
HEADERS = b"From: alice@contoso.com\r\nTo: x@outside.example\r\nSubject: Hi\r\nMessage-ID: <m1@contoso.com>\r\n\r\n"


def dsn(**overrides) -> bytes:
    values = dict(
        reporting_mta="relay.crossware.co.nz",
        mail_from="alice@contoso.com",
        original_headers=HEADERS,
        failures=[FailedRecipient("x@outside.example", "550 5.7.64 TenantAttribution; Relay Access Denied", "contoso.mail.protection.outlook.com")],
        arrival=NOW,
        now=NOW,
        original_message_id="<m1@contoso.com>",
    )
    values.update(overrides)
    return build_dsn(**values)


@pytest.mark.parametrize(("mail_from", "expected"), [("", False), ("<>", False), (" ", False), ("alice@contoso.com", True)])
def test_should_send_dsn(mail_from, expected):
    assert should_send_dsn(mail_from) is expected


def test_dsn_never_to_null_sender():
    with pytest.raises(ValueError):
        dsn(mail_from="")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("550 5.7.64 TenantAttribution; Relay Access Denied", "5.7.64"),
        ("550 4.4.7 Message expired", "4.4.7"),
        ("554 Transaction failed", "5.0.0"),
    ],
)
def test_status_of(reply, expected):
    assert status_of(reply) == expected


def test_dsn_is_multipart_report():
    parsed = message_from_bytes(dsn(), policy=default)

    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    assert parsed["To"] == "alice@contoso.com"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<m1@contoso.com>"
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers",
    ]


def test_dsn_status_fields():
    content = dsn()

    assert b"Reporting-MTA: dns; relay.crossware.co.nz\r\n" in content
    assert b"Final-Recipient: rfc822; x@outside.example\r\n" in content
    assert b"Action: failed\r\n" in content
    assert b"Status: 5.7.64\r\n" in content
    assert b"Remote-MTA: dns; contoso.mail.protection.outlook.com\r\n" in content
    assert b"Diagnostic-Code: smtp; 550 5.7.64 TenantAttribution; Relay Access Denied\r\n" in content


def test_dsn_has_only_crlf_line_endings():
    content = dsn()

    assert b"\n" not in content.replace(b"\r\n", b"")


def test_dsn_keeps_eight_bit_headers():
    headers = "Subject: Grüße\r\n\r\n".encode()

    content = dsn(original_headers=headers)

    assert "Subject: Grüße".encode() in content
    assert b"Content-Transfer-Encoding: 8bit" in content


def test_header_block_stops_at_body():
    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n") == b"A: 1\r\nB: 2\r\n"
