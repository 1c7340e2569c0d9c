"""The SMTP front door over real STARTTLS sessions with real client certificates on loopback."""

from __future__ import annotations

import logging
import ssl
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import aiosmtplib
import pytest

from tenanttls.clock import ManualClock
from tenanttls.simulator.smtp import (
    ATTRIBUTION_HEADER,
    STEP_CERTIFICATE,
    STEP_MAIL_FROM,
    STEP_RCPT_TO,
    FrontDoor,
    TenantMailView,
    SmtpFrontDoorService,
    inspection_routes,
)
from tests.fixtures.smtp import LEGACY_NAME, wait_for

UNIQUE_A = "q7k2m4p9x3c8v1b6n5z0w2r4ta.crosswaretls.com"
TENANT_A = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
TENANT_B = "5c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"


def connector(name: str, certificate_name: str) -> dict:
    return {"Name": name, "Enabled": True, "ConnectorType": "OnPremises", "TlsSenderCertificateName": certificate_name, "SenderDomains": ["smtp:*;1"]}


class Views:
    """A view provider whose tenant A switches to the unique connector at `switch_at`."""

    def __init__(self, clock: ManualClock, switch_at=None) -> None:
        self.switch_at = switch_at if switch_at is not None else clock.now()

    def __call__(self, now):
        tenant_a_connectors = [connector("CrosswareInboundConnector-BACKUP", LEGACY_NAME)]
        tenant_a_domains = ["contoso.com"]
        if now >= self.switch_at:
            tenant_a_connectors.append(connector("CrosswareInboundConnector", UNIQUE_A))
            tenant_a_domains.append(UNIQUE_A)
        return [
            TenantMailView(TENANT_A, tuple(tenant_a_domains), tuple(tenant_a_connectors)),
            TenantMailView(TENANT_B, ("fabrikam.com",), (connector("CrosswareInboundConnector", LEGACY_NAME),)),
        ]


@pytest.fixture
def clock() -> ManualClock:
    # The test certificates are valid from yesterday, in real time.
    return ManualClock(datetime.now(timezone.utc))


@pytest.fixture
def views(clock) -> Views:
    return Views(clock)


@pytest.fixture
def door(smtp_pki, server_pair, clock, views):
    front_door = FrontDoor(views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path], clock=clock)
    front_door.start()
    yield front_door
    front_door.stop()


@pytest.fixture(scope="module")
def unique_pair(smtp_pki):
    return smtp_pki.client(UNIQUE_A)


def client_context(ca_path, pair=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_path))
    if pair is not None:
        context.load_cert_chain(pair.certificate, pair.key)
    return context


def message(mail_from: str, recipient: str, message_id: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = mail_from or "MAILER-DAEMON@contoso.com"
    email["To"] = recipient
    email["Subject"] = "Automatic reply" if not mail_from else "Hello"
    email["Message-ID"] = message_id
    email.set_content("body\n")
    return email


async def send(door, context, mail_from, recipient, message_id="<m1@test>"):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=door.port, start_tls=True, tls_context=context) as client:
        return await client.send_message(message(mail_from, recipient, message_id), sender=mail_from, recipients=[recipient])


async def test_unique_certificate_null_sender_outside(door, smtp_pki, unique_pair):
    await send(door, client_context(smtp_pki.ca_path, unique_pair), "", "someone@outside.example", "<auto-1@test>")

    [received] = door.messages()
    assert received.tenant_id == TENANT_A
    assert received.recipients[0].attribution.connector == "CrosswareInboundConnector"
    assert received.recipients[0].attribution.step == STEP_CERTIFICATE
    assert received.message_id == "<auto-1@test>"
    assert received.certificate.names == (UNIQUE_A,)
    assert received.content.startswith(f"{ATTRIBUTION_HEADER}: {TENANT_A}:0\r\n".encode())


async def test_legacy_null_sender_outside_rejected(door, smtp_pki, legacy_pair):
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(door, client_context(smtp_pki.ca_path, legacy_pair), "", "someone@outside.example")

    [error] = refused.value.recipients
    assert error.code == 550
    assert "5.7.64 TenantAttribution; Relay Access Denied" in error.message
    assert door.messages() == []
    mail, rcpt = door.decisions()
    assert mail.stage == "mail"
    assert mail.reply.startswith("250")
    assert mail.tenant_id is None  # neither the certificate nor the null sender names a tenant
    assert rcpt.stage == "rcpt"
    assert rcpt.reply.startswith("550 5.7.64")
    assert rcpt.certificate_names == (LEGACY_NAME,)


async def test_legacy_normal_mail_by_mail_from(door, smtp_pki, legacy_pair):
    await send(door, client_context(smtp_pki.ca_path, legacy_pair), "alice@fabrikam.com", "someone@outside.example")

    [received] = door.messages()
    assert received.tenant_id == TENANT_B
    assert received.recipients[0].attribution.step == STEP_MAIL_FROM


async def test_legacy_null_sender_inside_by_recipient(door, smtp_pki, legacy_pair):
    await send(door, client_context(smtp_pki.ca_path, legacy_pair), "", "bob@contoso.com")

    [received] = door.messages()
    assert received.tenant_id == TENANT_A
    assert received.recipients[0].attribution.step == STEP_RCPT_TO


async def test_expired_certificate_deferred(door, smtp_pki):
    expired = smtp_pki.expired_client(UNIQUE_A)

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await send(door, client_context(smtp_pki.ca_path, expired), "alice@contoso.com", "someone@outside.example")

    assert refused.value.code == 451
    assert "4.7.0" in refused.value.message
    assert "CertificateExpired" in refused.value.message
    assert door.decisions()[0].stage == "mail"


async def test_expiry_follows_simulator_clock(door, smtp_pki, unique_pair, clock):
    clock.advance(timedelta(days=400))

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await send(door, client_context(smtp_pki.ca_path, unique_pair), "", "someone@outside.example")

    assert "CertificateExpired" in refused.value.message


async def test_untrusted_ca_fails_handshake(door, smtp_pki, untrusted_pki):
    stranger = untrusted_pki.client(UNIQUE_A)

    with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError, ConnectionError)):
        await send(door, client_context(smtp_pki.ca_path, stranger), "", "someone@outside.example")

    assert door.messages() == []


async def test_failed_handshakes_logged_once(door, smtp_pki, untrusted_pki, caplog):
    stranger = untrusted_pki.client(UNIQUE_A)

    with caplog.at_level(logging.INFO):
        for _ in range(2):
            with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError, ConnectionError)):
                await send(door, client_context(smtp_pki.ca_path, stranger), "", "someone@outside.example")
        assert wait_for(lambda: door.handshake_failures == 2)

    warnings = [record.getMessage() for record in caplog.records if "TLS handshake failed" in record.getMessage()]
    assert len(warnings) == 1
    assert "reason=client certificate failed verification" in warnings[0]
    assert not [record for record in caplog.records if record.exc_info]


async def test_trust_adds_ca_while_running(door, smtp_pki, untrusted_pki):
    stranger = untrusted_pki.client(UNIQUE_A)
    door.trust(untrusted_pki.ca_path)

    await send(door, client_context(smtp_pki.ca_path, stranger), "", "someone@outside.example")

    assert door.messages()[0].tenant_id == TENANT_A


async def test_no_certificate_is_anonymous(door, smtp_pki):
    context = client_context(smtp_pki.ca_path)

    await send(door, context, "", "bob@fabrikam.com")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await send(door, context, "alice@fabrikam.com", "someone@outside.example")

    [received] = door.messages()
    assert received.tenant_id == TENANT_B
    assert received.recipients[0].attribution.connector is None
    assert received.certificate is None


async def test_connector_change_waits_for_view(smtp_pki, server_pair, unique_pair, clock):
    views = Views(clock, switch_at=clock.now() + timedelta(minutes=30))
    with FrontDoor(views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path], clock=clock) as door:
        context = client_context(smtp_pki.ca_path, unique_pair)
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await send(door, context, "", "someone@outside.example")

        clock.advance(timedelta(minutes=31))
        await send(door, context, "", "someone@outside.example")

    assert door.messages()[0].tenant_id == TENANT_A


async def test_mixed_recipients_split(door, smtp_pki, legacy_pair):
    context = client_context(smtp_pki.ca_path, legacy_pair)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=door.port, start_tls=True, tls_context=context) as client:
        errors, _ = await client.send_message(
            message("", "bob@contoso.com", "<mixed@test>"), sender="", recipients=["bob@contoso.com", "x@outside.example"]
        )

    assert list(errors) == ["x@outside.example"]
    [received] = door.messages()
    assert [decision.recipient for decision in received.recipients] == ["bob@contoso.com"]


async def test_plain_text_session_is_anonymous(door):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=door.port, start_tls=False) as client:
        await client.sendmail("", ["bob@contoso.com"], b"Subject: plain\r\n\r\nbody\r\n")

    [received] = door.messages()
    assert received.tls is False
    assert received.tenant_id == TENANT_A


def inspection_client(door):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    return TestClient(Starlette(routes=inspection_routes(lambda: door)))


async def test_inspection_routes(door, smtp_pki, legacy_pair):
    await send(door, client_context(smtp_pki.ca_path, legacy_pair), "alice@fabrikam.com", "someone@outside.example", "<i@test>")
    client = inspection_client(door)

    body = client.get("/_simulator/messages").json()
    filtered = client.get("/_simulator/messages", params={"tenant": TENANT_A}).json()
    cleared = client.delete("/_simulator/messages")

    assert body["messages"][0]["message_id"] == "<i@test>"
    assert body["messages"][0]["tenant_id"] == TENANT_B
    assert body["messages"][0]["step"] == STEP_MAIL_FROM
    assert [d["stage"] for d in body["decisions"]] == ["mail", "rcpt", "data"]
    assert body["decisions"][0]["tenant_id"] == TENANT_B
    assert body["decisions"][0]["step"] == STEP_MAIL_FROM
    assert filtered["messages"] == []
    assert cleared.status_code == 200
    assert door.messages() == []


def test_inspection_routes_without_front_door():
    response = inspection_client(None).get("/_simulator/messages")

    assert response.status_code == 404
    assert "not running" in response.json()["error"]


async def test_attributed_tenant_by_queued_id(door, smtp_pki, unique_pair):
    errors, reply = await send(door, client_context(smtp_pki.ca_path, unique_pair), "", "someone@outside.example")

    queued_id = reply.split("<", 1)[1].split(">", 1)[0]
    assert door.attributed_tenant(queued_id) == TENANT_A
    assert door.attributed_tenant("unknown") is None


async def test_trust_pem_route(smtp_pki, untrusted_pki, server_pair, clock, views, tmp_path):
    front_door = FrontDoor(views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path],
                           clock=clock, client_ca_dir=tmp_path / "client-cas")
    with front_door:
        client = inspection_client(front_door)
        rejected = client.post("/_simulator/smtp/trusted-cas", content=b"not a certificate")
        trusted = client.post("/_simulator/smtp/trusted-cas", content=untrusted_pki.ca_path.read_bytes())
        await send(front_door, client_context(smtp_pki.ca_path, untrusted_pki.client(UNIQUE_A)), "", "someone@outside.example")

    assert rejected.status_code == 400
    assert "expected one PEM certificate (-----BEGIN CERTIFICATE-----)" in rejected.json()["error"]
    assert "cryptography.io" not in rejected.json()["error"]
    assert trusted.status_code == 200
    assert len(list((tmp_path / "client-cas").glob("*.pem"))) == 1
    assert front_door.messages()[0].tenant_id == TENANT_A


async def test_untrusted_ca_recorded(door, smtp_pki, untrusted_pki):
    stranger = untrusted_pki.client(UNIQUE_A)

    with pytest.raises((aiosmtplib.SMTPException, ssl.SSLError, ConnectionError)):
        await send(door, client_context(smtp_pki.ca_path, stranger), "", "someone@outside.example")

    assert wait_for(lambda: len(door.decisions()) == 1)
    [decision] = door.decisions()
    assert decision.stage == "tls"
    assert decision.peer.startswith("127.0.0.1:")
    assert decision.reason.startswith("client certificate failed verification")
    assert decision.to_json()["code"] is None


async def test_utf8_subject_decoded(door, smtp_pki, unique_pair):
    context = client_context(smtp_pki.ca_path, unique_pair)
    raw = "From: alice@contoso.com\r\nTo: bob@contoso.com\r\nSubject: Grüße aus München\r\nMessage-ID: <raw@test>\r\n\r\nbody\r\n"
    encoded = message("alice@contoso.com", "bob@contoso.com", "<encoded@test>")
    del encoded["Subject"]
    encoded["Subject"] = "Grüße aus München"  # written as an RFC 2047 encoded word

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=door.port, start_tls=True, tls_context=context) as client:
        await client.sendmail("alice@contoso.com", ["bob@contoso.com"], raw.encode("utf-8"), mail_options=["SMTPUTF8"])
        await client.send_message(encoded)

    raw_received, encoded_received = door.messages()
    assert b"=?utf-8?" in encoded_received.content
    assert raw_received.subject == "Grüße aus München"
    assert encoded_received.subject == "Grüße aus München"


async def test_inspection_unknown_tenant_rejected(door, smtp_pki, legacy_pair):
    await send(door, client_context(smtp_pki.ca_path, legacy_pair), "alice@fabrikam.com", "someone@outside.example")
    client = inspection_client(door)

    bogus = client.get("/_simulator/messages", params={"tenant": "bogus"})
    by_domain = client.get("/_simulator/messages", params={"tenant": "fabrikam.com"})

    assert bogus.status_code == 400
    assert "invalid tenant 'bogus'" in bogus.json()["error"]
    assert by_domain.status_code == 200
    assert [m["tenant_id"] for m in by_domain.json()["messages"]] == [TENANT_B]
