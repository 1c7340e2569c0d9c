"""Delivery status notifications (RFC 3464) for recipients the relay could not deliver to.

The null-sender rules of RFC 5321 section 4.5.5 hold. A DSN is sent with an empty
MAIL FROM, and no DSN is ever sent for a message whose MAIL FROM was empty (an
automatic reply, or another DSN). So two systems cannot bounce mail back and forth.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

_CRLF = b"\r\n"
_STATUS = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class FailedRecipient:
    """A recipient the relay gave up on, with the reply that made it give up."""

    address: str
    reply: str  # "550 5.7.64 ..." as the remote server sent it, or the relay's own reason
    remote_mta: str | None = None


def should_send_dsn(mail_from: str) -> bool:
    """Return True when a failure may be reported to `mail_from` (never to the null sender)."""
    return bool(mail_from.strip().strip("<>"))


def status_of(reply: str, default: str = "5.0.0") -> str:
    """Return the enhanced status code (RFC 3463) in an SMTP reply, or `default`."""
    match = _STATUS.match(reply.strip())
    return match.group(1) if match else default


def header_block(content: bytes) -> bytes:
    """Return the header section of a message (up to the first empty line)."""
    end = content.find(b"\r\n\r\n")
    return content if end < 0 else content[: end + 2]


def build_dsn(
    *,
    reporting_mta: str,
    mail_from: str,
    original_headers: bytes,
    failures: list[FailedRecipient],
    arrival: datetime,
    now: datetime,
    original_message_id: str | None = None,
) -> bytes:
    """Return a multipart/report DSN (RFC 3464) to `mail_from` for `failures`, with CRLF line endings."""
    if not should_send_dsn(mail_from):
        raise ValueError("a DSN is never sent to the null sender")

    boundary = f"tenanttls-dsn-{uuid.uuid4().hex}"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{mail_from}>",
        "Subject: Undeliverable: delivery status notification (failure)",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{uuid.uuid4().hex}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    if original_message_id:
        lines.append(f"In-Reply-To: {original_message_id}")
        lines.append(f"References: {original_message_id}")

    explanation = [
        "Your message could not be delivered to these recipients:",
        "",
        *(f"  {failure.address}: {failure.reply}" for failure in failures),
    ]
    status_fields = [f"Reporting-MTA: dns; {reporting_mta}", f"Arrival-Date: {format_datetime(arrival)}", ""]
    for failure in failures:
        status_fields += [
            f"Final-Recipient: rfc822; {failure.address}",
            "Action: failed",
            f"Status: {status_of(failure.reply)}",
        ]
        if failure.remote_mta:
            status_fields.append(f"Remote-MTA: dns; {failure.remote_mta}")
        status_fields += [f"Diagnostic-Code: smtp; {failure.reply}", ""]

    transfer_encoding = "7bit" if original_headers.isascii() else "8bit"
    parts = [
        "\r\n".join(lines).encode("ascii"),
        b"",
        f"--{boundary}".encode(),
        b"Content-Type: text/plain; charset=us-ascii",
        b"",
        "\r\n".join(explanation).encode("ascii", errors="replace"),
        f"--{boundary}".encode(),
        b"Content-Type: message/delivery-status",
        b"",
        "\r\n".join(status_fields).encode("ascii", errors="replace"),
        f"--{boundary}".encode(),
        b"Content-Type: text/rfc822-headers",
        f"Content-Transfer-Encoding: {transfer_encoding}".encode(),
        b"",
        original_headers.rstrip(_CRLF),
        f"--{boundary}--".encode(),
        b"",
    ]
    return _CRLF.join(parts)
