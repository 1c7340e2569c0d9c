"""Bad input and failures at the relay, over real SMTP sessions on loopback."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from sqlalchemy import update

from tenanttls.certificates.keystore import KeyStore
from tenanttls.relay import MessageRejected
from tenanttls.simulator.smtp import FrontDoor
from tenanttls.store.schema import tenants as tenants_table
from tests.fixtures.smtp import (
    KeyPair,
    add_tenant,
    outbound_message,
    relay_client_context,
    store_certificate,
    submit,
    switch_to_unique,
    wait_for,
)

TENANT_A = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
UNKNOWN_TENANT = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
UNIQUE_A = "q7k2m4p9x3c8v1b6n5z0w2r4ta.crosswaretls.com"


@pytest.fixture
def tenant(store, mail_views):
    add_tenant(store, TENANT_A, "contoso.onmicrosoft.com")
    mail_views.add_tenant(TENANT_A, ["contoso.onmicrosoft.com", "contoso.com"])


@pytest.fixture
def relay(relay_factory, front_door, tenant):
    return relay_factory(f"127.0.0.1:{front_door.port}")


def message(message_id: str = "<m@contoso.com>", tenant_id: str = TENANT_A) -> bytes:
    return outbound_message(tenant_id, "alice@contoso.com", "bob@contoso.com", message_id)


def raw_session(port: int, pki, lines: list[bytes]) -> list[bytes]:
    """Run STARTTLS, then send each line and read one reply per line; return the replies.

    aiosmtplib fixes line endings, so bytes that a broken client would send need a raw socket.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        reader = plain.makefile("rb")
        reader.readline()
        plain.sendall(b"EHLO client.example\r\n")
        _read_reply(reader)
        plain.sendall(b"STARTTLS\r\n")
        _read_reply(reader)
        with relay_client_context(pki).wrap_socket(plain, server_hostname="127.0.0.1") as secure:
            reader = secure.makefile("rb")
            secure.sendall(b"EHLO client.example\r\n")
            _read_reply(reader)
            replies = []
            for line in lines:
                secure.sendall(line)
                replies.append(_read_reply(reader))
            return replies


def _read_reply(reader) -> bytes:
    lines = []
    while True:
        line = reader.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


async def test_malformed_commands_keep_session(relay, front_door, smtp_pki):
    replies = await asyncio.to_thread(
        raw_session,
        relay.port,
        smtp_pki,
        [b"MAIL FROM:<<broken>>\r\n", b"FROBNICATE\r\n", b"RCPT TO:<bob@contoso.com>\r\n", b"MAIL FROM:<alice@contoso.com>\r\n"],
    )

    assert replies[0].startswith(b"553 5.1.3")
    assert replies[1].startswith(b"500")
    assert replies[2].startswith(b"503")
    assert replies[3].startswith(b"250")


async def test_bare_lf_rejected(relay, front_door, smtp_pki):
    data = b"Subject: bare\nX-MS-Exchange-CrossTenant-Id: " + TENANT_A.encode() + b"\n\nbody\n"
    replies = await asyncio.to_thread(
        raw_session,
        relay.port,
        smtp_pki,
        [b"MAIL FROM:<alice@contoso.com>\r\n", b"RCPT TO:<bob@contoso.com>\r\n", b"DATA\r\n", data + b"\r\n.\r\n"],
    )

    assert replies[3].startswith(b"550 5.6.11")
    assert len(relay.relay.queue) == 0


async def test_oversize_message_rejected(relay_factory, front_door, tenant, smtp_pki):
    relay = relay_factory(f"127.0.0.1:{front_door.port}", max_message_size=2000)
    big = message() + b"x" * 70 + b"\r\n"
    big = big + (b"y" * 70 + b"\r\n") * 40

    with pytest.raises(aiosmtplib.SMTPResponseException) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], big)

    assert error.value.code == 552
    assert len(relay.relay.queue) == 0


async def test_eight_bit_headers_pass_unchanged(relay, front_door, smtp_pki):
    content = (
        "From: Jörg <alice@contoso.com>\r\nTo: bob@contoso.com\r\nSubject: Grüße aus Zürich\r\n"
        f"Message-ID: <8bit@contoso.com>\r\nX-MS-Exchange-CrossTenant-Id: {TENANT_A}\r\n\r\nKäse\r\n"
    ).encode("utf-8")

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=True, tls_context=relay_client_context(smtp_pki)) as client:
        await client.sendmail("alice@contoso.com", ["bob@contoso.com"], content, mail_options=["BODY=8BITMIME"])

    assert wait_for(lambda: len(front_door.messages()) == 1)
    assert front_door.messages()[0].content.endswith(content)


async def test_unknown_tenant_deferred(relay, smtp_pki):
    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message(tenant_id=UNKNOWN_TENANT))

    assert error.value.code == 451
    assert "4.7.1" in error.value.message
    assert UNKNOWN_TENANT in error.value.message
    assert len(relay.relay.queue) == 0


async def test_unknown_tenant_accepted_once_added(relay, front_door, smtp_pki, store, mail_views):
    with pytest.raises(aiosmtplib.SMTPDataError):
        await submit(relay.port, smtp_pki, "alice@fabrikam.com", ["bob@fabrikam.com"], message(tenant_id=UNKNOWN_TENANT))

    add_tenant(store, UNKNOWN_TENANT, "fabrikam.onmicrosoft.com")
    mail_views.add_tenant(UNKNOWN_TENANT, ["fabrikam.com"])
    await submit(relay.port, smtp_pki, "alice@fabrikam.com", ["bob@fabrikam.com"], message(tenant_id=UNKNOWN_TENANT))

    assert wait_for(lambda: len(front_door.messages()) == 1)


async def test_missing_tenant_header_rejected(relay, smtp_pki):
    content = b"From: alice@contoso.com\r\nSubject: no header\r\n\r\nbody\r\n"

    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], content)

    assert error.value.code == 550
    assert "X-MS-Exchange-CrossTenant-Id" in error.value.message


async def test_unreadable_certificate_deferred(relay, smtp_pki, store, caplog):
    # The key was encrypted with another key-encryption key, so the relay cannot decrypt it.
    other_keystore = KeyStore(os.urandom(32))
    certificate_id = store_certificate(store, other_keystore, TENANT_A, smtp_pki.client(UNIQUE_A))
    switch_to_unique(store, TENANT_A, UNIQUE_A, certificate_id)

    with caplog.at_level(logging.ERROR, logger="tenanttls.relay"):
        with pytest.raises(aiosmtplib.SMTPDataError) as error:
            await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message())

    assert error.value.code == 451
    assert "4.7.5" in error.value.message
    assert any(TENANT_A in record.getMessage() for record in caplog.records)


async def test_loop_detected(relay, smtp_pki):
    content = f"X-TenantTLS-Relay: relay.crossware.co.nz; tenant={TENANT_A}\r\n".encode() + message()

    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], content)

    assert error.value.code == 554
    assert "5.4.6" in error.value.message


async def test_other_tenants_loop_header_passes(relay, front_door, smtp_pki):
    content = f"X-TenantTLS-Relay: relay.crossware.co.nz; tenant={UNKNOWN_TENANT}\r\n".encode() + message()

    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], content)

    assert wait_for(lambda: len(front_door.messages()) == 1)


async def test_too_many_recipients(relay_factory, front_door, tenant, smtp_pki):
    relay = relay_factory(f"127.0.0.1:{front_door.port}", max_recipients=2)

    errors, _ = await submit(relay.port, smtp_pki, "alice@contoso.com", ["a@contoso.com", "b@contoso.com", "c@contoso.com"], message())

    assert list(errors) == ["c@contoso.com"]
    assert errors["c@contoso.com"].code == 452


async def test_too_many_messages_per_connection(relay_factory, front_door, tenant, smtp_pki):
    relay = relay_factory(f"127.0.0.1:{front_door.port}", max_messages_per_connection=2)

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=True, tls_context=relay_client_context(smtp_pki)) as client:
        await client.sendmail("alice@contoso.com", ["bob@contoso.com"], message("<p1@contoso.com>"))
        await client.sendmail("alice@contoso.com", ["bob@contoso.com"], message("<p2@contoso.com>"))
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as error:
            await client.sendmail("alice@contoso.com", ["bob@contoso.com"], message("<p3@contoso.com>"))

    assert error.value.code == 451


async def test_connection_from_other_network_rejected(relay_factory, front_door, tenant, smtp_pki):
    relay = relay_factory(f"127.0.0.1:{front_door.port}", allowed_networks=("10.0.0.0/8",))

    with pytest.raises(aiosmtplib.SMTPConnectError) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message())

    assert "554" in str(error.value)


async def test_starttls_required(relay):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=False) as client:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as error:
            await client.mail("alice@contoso.com")

    assert error.value.code == 530


async def test_hook_changes_message(relay_factory, front_door, tenant, smtp_pki):
    async def stamp_signature(inbound):
        return inbound.content.replace(b"This is a test message.", b"This is a test message.\r\n-- \r\nSigned")

    relay = relay_factory(f"127.0.0.1:{front_door.port}", hook=stamp_signature)
    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message())

    assert wait_for(lambda: len(front_door.messages()) == 1)
    assert front_door.messages()[0].content.endswith(b"-- \r\nSigned\r\n")


@pytest.mark.parametrize(
    ("failure", "code"),
    [(MessageRejected("550 5.7.1 Blocked by policy"), 550), (RuntimeError("bug in hook"), 451)],
)
async def test_hook_failure_replies(relay_factory, front_door, tenant, smtp_pki, failure, code):
    async def failing(inbound):
        raise failure

    relay = relay_factory(f"127.0.0.1:{front_door.port}", hook=failing)

    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message())

    assert error.value.code == code
    assert len(relay.relay.queue) == 0


class PlainSmtpServer:
    """An SMTP server on a free port that offers no STARTTLS and records what it receives."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope.original_content)
        return "250 OK"

    def start(self) -> PlainSmtpServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(lambda: SMTP(self, hostname="plain.example", loop=self._loop), "127.0.0.1", 0), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


async def test_never_delivers_in_plain_text(relay_factory, tenant, smtp_pki):
    plain = PlainSmtpServer().start()
    try:
        relay = relay_factory(f"127.0.0.1:{plain.port}")
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message("<plain@contoso.com>"))

        assert wait_for(lambda: any(line["outcome"] == "deferred" for line in relay.relay.outcomes()))
        assert plain.received == []
        assert len(relay.relay.queue) == 1
    finally:
        plain.stop()


async def test_retry_after_smart_host_returns(relay_factory, mail_views, tenant, smtp_pki, server_pair, store, keystore, caplog):
    door = FrontDoor(mail_views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path])
    door.start()
    port = door.port
    door.stop()
    relay = relay_factory(f"127.0.0.1:{port}")

    # 1. Nothing listens: the message is queued and the attempts are deferred.
    await submit(relay.port, smtp_pki, "alice@contoso.com", ["x@outside.example"], message("<retry@contoso.com>"))
    assert wait_for(lambda: any(line["outcome"] == "deferred" for line in relay.relay.outcomes()))

    # 2. A certificate that cannot be decrypted: still deferred, logged with the tenant id, never sent.
    broken_id = store_certificate(store, KeyStore(os.urandom(32)), TENANT_A, smtp_pki.client(UNIQUE_A))
    with caplog.at_level(logging.ERROR, logger="tenanttls.relay"):
        switch_to_unique(store, TENANT_A, UNIQUE_A, broken_id)
        assert wait_for(lambda: any("4.7.5" in (line["reply"] or "") for line in relay.relay.outcomes()))
    assert any(TENANT_A in record.getMessage() and "certificate" in record.getMessage() for record in caplog.records)

    # 3. The smart host is back and the tenant has a working certificate: delivered once.
    revived = FrontDoor(mail_views, certificate=server_pair.certificate, key=server_pair.key, trusted_cas=[smtp_pki.ca_path], port=port)
    revived.start()
    try:
        mail_views.upgrade(TENANT_A, UNIQUE_A)
        switch_to_unique(store, TENANT_A, UNIQUE_A, store_certificate(store, keystore, TENANT_A, smtp_pki.client(UNIQUE_A)))
        assert wait_for(lambda: len(revived.messages()) == 1)
        assert revived.messages()[0].certificate.names == (UNIQUE_A,)
        assert wait_for(lambda: len(relay.relay.queue) == 0)
    finally:
        revived.stop()


async def test_smart_host_from_store(relay_factory, front_door, tenant, smtp_pki, store):
    with store.write() as connection:
        connection.execute(update(tenants_table).where(tenants_table.c.tenant_id == TENANT_A).values(smart_host=f"127.0.0.1:{front_door.port}"))
    relay = relay_factory(None)

    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message("<own@contoso.com>"))

    assert wait_for(lambda: len(front_door.messages()) == 1)


async def test_untrusted_smart_host_deferred(relay_factory, tenant, smtp_pki, untrusted_pki, mail_views):
    # A smart host whose server certificate the relay does not trust gets nothing.
    stranger = untrusted_pki.server("stranger")
    door = FrontDoor(mail_views, certificate=stranger.certificate, key=stranger.key, trusted_cas=[smtp_pki.ca_path])
    door.start()
    try:
        relay = relay_factory(f"127.0.0.1:{door.port}")
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message("<t@contoso.com>"))

        assert wait_for(lambda: any(line["outcome"] == "deferred" for line in relay.relay.outcomes()))
        assert door.messages() == []
        deferred = next(line for line in relay.relay.outcomes() if line["outcome"] == "deferred")
        assert f"the server certificate of 127.0.0.1:{door.port} failed verification" in deferred["reply"]
    finally:
        door.stop()


async def test_auth_not_offered(relay, smtp_pki):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=True,
                               tls_context=relay_client_context(smtp_pki)) as client:
        await client.ehlo()
        extensions = set(client.esmtp_extensions)
        auth_reply = await client.execute_command(b"AUTH", b"PLAIN", b"AGFsaWNlAHNlY3JldA==")
        mail_reply = await client.mail("alice@contoso.com")

    assert "starttls" not in extensions  # the second EHLO, inside TLS
    assert "auth" not in extensions
    assert auth_reply.code == 500
    assert mail_reply.code == 250


async def test_refused_connection_reply(relay_factory, tenant, smtp_pki):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    relay = relay_factory(f"127.0.0.1:{port}")

    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message("<refused@contoso.com>"))

    assert wait_for(lambda: any(line["outcome"] == "deferred" for line in relay.relay.outcomes()))
    deferred = next(line for line in relay.relay.outcomes() if line["outcome"] == "deferred")
    assert deferred["reply"] == f"451 4.4.1 connection refused by 127.0.0.1:{port}"


async def test_mismatched_store_key_logged(relay, smtp_pki, store, keystore, caplog):
    unique = smtp_pki.client(UNIQUE_A)
    other = smtp_pki.client("other.crosswaretls.com")
    mismatched = KeyPair(UNIQUE_A, unique.certificate, other.key)
    switch_to_unique(store, TENANT_A, UNIQUE_A, store_certificate(store, keystore, TENANT_A, mismatched))

    with caplog.at_level(logging.ERROR, logger="tenanttls.relay"):
        with pytest.raises(aiosmtplib.SMTPDataError) as error:
            await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message())

    assert error.value.code == 451
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert f"invalid TLS client certificate {UNIQUE_A}" in logged
    assert "the certificate and the private key do not match" in logged
    assert "PEM lib" not in logged


async def test_failed_handshake_one_line(relay, untrusted_pki, caplog):
    # A client that trusts another CA rejects the relay's certificate, three times in a row.
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            with pytest.raises(ssl.SSLCertVerificationError):
                async with aiosmtplib.SMTP(hostname="127.0.0.1", port=relay.port, start_tls=True,
                                           tls_context=relay_client_context(untrusted_pki)):
                    pass
        assert wait_for(lambda: relay.relay.handshakes.total == 3)

    warnings = [record for record in caplog.records if "TLS handshake failed" in record.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "peer=127.0.0.1:" in warnings[0].getMessage()
    assert "reason=" in warnings[0].getMessage()
    assert not [record for record in caplog.records if record.exc_info]
