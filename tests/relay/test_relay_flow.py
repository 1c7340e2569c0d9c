"""The relay end to end: real SMTP sessions on loopback, real TLS client certificates, a real store,
and the simulator's front door as the tenants' smart host."""

from __future__ import annotations

import pytest

from tests.fixtures.smtp import (
    LEGACY_NAME,
    add_tenant,
    outbound_message,
    store_certificate,
    submit,
    switch_to_legacy,
    switch_to_unique,
    wait_for,
)

TENANT_A = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
TENANT_B = "5c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
UNIQUE_A = "q7k2m4p9x3c8v1b6n5z0w2r4ta.crosswaretls.com"


@pytest.fixture
def tenants(store, mail_views):
    add_tenant(store, TENANT_A, "contoso.onmicrosoft.com")
    add_tenant(store, TENANT_B, "fabrikam.onmicrosoft.com")
    mail_views.add_tenant(TENANT_A, ["contoso.onmicrosoft.com", "contoso.com"])
    mail_views.add_tenant(TENANT_B, ["fabrikam.onmicrosoft.com", "fabrikam.com"])


@pytest.fixture
def relay(relay_factory, front_door, tenants):
    return relay_factory(f"127.0.0.1:{front_door.port}")


def received_ids(front_door) -> list[str]:
    return [message.message_id for message in front_door.messages()]


def outcomes_of(relay, message_id: str) -> list[str]:
    return [line["outcome"] for line in relay.relay.outcomes() if line["message_id"] == message_id]


async def test_legacy_normal_mail_delivered(relay, front_door, smtp_pki):
    content = outbound_message(TENANT_A, "alice@contoso.com", "someone@outside.example", "<n1@contoso.com>")

    await submit(relay.port, smtp_pki, "alice@contoso.com", ["someone@outside.example"], content)

    assert wait_for(lambda: received_ids(front_door) == ["<n1@contoso.com>"])
    [received] = front_door.messages()
    assert received.tenant_id == TENANT_A
    assert received.recipients[0].attribution.step == "mail-from"
    assert received.certificate.names == (LEGACY_NAME,)
    # The relay writes the outcome after the front door's reply, so the front door can list the message first.
    assert wait_for(lambda: outcomes_of(relay, "<n1@contoso.com>") == ["delivered"])


async def test_loop_guard_header_added(relay, front_door, smtp_pki):
    content = outbound_message(TENANT_A, "alice@contoso.com", "bob@contoso.com", "<h1@contoso.com>")

    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], content)

    assert wait_for(lambda: len(front_door.messages()) == 1)
    delivered = front_door.messages()[0].content
    assert f"X-TenantTLS-Relay: relay.crossware.co.nz; tenant={TENANT_A}\r\n".encode() in delivered
    assert delivered.endswith(content)


async def test_legacy_null_sender_outside_dropped(relay, front_door, smtp_pki):
    content = outbound_message(TENANT_A, "", "someone@outside.example", "<oof1@contoso.com>", subject="Automatic reply")

    await submit(relay.port, smtp_pki, "", ["someone@outside.example"], content)

    assert wait_for(lambda: "dropped" in outcomes_of(relay, "<oof1@contoso.com>"))
    assert front_door.messages() == []
    [rejection] = [line for line in relay.relay.outcomes() if line["outcome"] == "dropped"]
    assert rejection["reply"].startswith("550 5.7.64")
    assert rejection["certificate"]["mode"] == "legacy"
    assert wait_for(lambda: len(relay.relay.queue) == 0)


async def test_unknown_sender_domain_bounces_with_dsn(relay, front_door, smtp_pki):
    content = outbound_message(TENANT_A, "alice@unknown.example", "someone@outside.example", "<u1@unknown.example>")

    await submit(relay.port, smtp_pki, "alice@unknown.example", ["someone@outside.example"], content)

    assert wait_for(lambda: "bounced" in outcomes_of(relay, "<u1@unknown.example>"))
    # The DSN goes to alice@unknown.example, which no tenant accepts, so it is rejected too and then dropped:
    # a DSN never gets a DSN.
    assert wait_for(lambda: any(line["kind"] == "dsn" and line["outcome"] == "dropped" for line in relay.relay.outcomes()))
    assert wait_for(lambda: len(relay.relay.queue) == 0)


async def test_dsn_reaches_inside_sender(relay, front_door, smtp_pki, mail_views):
    # The connector accepts only contoso.net senders, so carol's mail to outside is rejected.
    mail_views.set_sender_domains(TENANT_A, ["smtp:contoso.net;1"])
    content = outbound_message(TENANT_A, "carol@contoso.com", "x@outside.example", "<d1@contoso.com>")

    await submit(relay.port, smtp_pki, "carol@contoso.com", ["x@outside.example"], content)

    assert wait_for(lambda: len(front_door.messages()) == 1)
    [dsn] = front_door.messages()
    assert dsn.mail_from == ""
    assert dsn.recipients[0].recipient == "carol@contoso.com"
    assert dsn.recipients[0].attribution.tenant_id == TENANT_A
    assert b"multipart/report; report-type=delivery-status" in dsn.content
    assert b"Status: 5.7.64" in dsn.content
    assert b"Message-ID: <d1@contoso.com>" in dsn.content
    assert wait_for(lambda: outcomes_of(relay, "<d1@contoso.com>") == ["bounced"])


async def test_switch_picked_up_without_restart(relay, front_door, smtp_pki, store, keystore, mail_views):
    first = outbound_message(TENANT_A, "", "someone@outside.example", "<s1@contoso.com>")
    await submit(relay.port, smtp_pki, "", ["someone@outside.example"], first)
    assert wait_for(lambda: "dropped" in outcomes_of(relay, "<s1@contoso.com>"))

    pair = smtp_pki.client(UNIQUE_A)
    certificate_id = store_certificate(store, keystore, TENANT_A, pair)
    mail_views.upgrade(TENANT_A, UNIQUE_A)
    switch_to_unique(store, TENANT_A, UNIQUE_A, certificate_id)

    second = outbound_message(TENANT_A, "", "someone@outside.example", "<s2@contoso.com>")
    await submit(relay.port, smtp_pki, "", ["someone@outside.example"], second)

    assert wait_for(lambda: received_ids(front_door) == ["<s2@contoso.com>"])
    [received] = front_door.messages()
    assert received.certificate.names == (UNIQUE_A,)
    assert received.recipients[0].attribution.step == "certificate"
    assert received.recipients[0].attribution.connector == "CrosswareInboundConnector"
    [delivered] = [line for line in relay.relay.outcomes() if line["outcome"] == "delivered"]
    assert delivered["certificate"]["mode"] == "unique"
    assert delivered["certificate"]["id"] == certificate_id


async def test_rollback_presents_legacy_again(relay, front_door, smtp_pki, store, keystore, mail_views):
    pair = smtp_pki.client(UNIQUE_A)
    certificate_id = store_certificate(store, keystore, TENANT_A, pair)
    mail_views.upgrade(TENANT_A, UNIQUE_A)
    switch_to_unique(store, TENANT_A, UNIQUE_A, certificate_id)
    await submit(relay.port, smtp_pki, "alice@contoso.com", ["x@outside.example"],
                 outbound_message(TENANT_A, "alice@contoso.com", "x@outside.example", "<r1@contoso.com>"))
    assert wait_for(lambda: len(front_door.messages()) == 1)

    switch_to_legacy(store, TENANT_A)
    await submit(relay.port, smtp_pki, "alice@contoso.com", ["x@outside.example"],
                 outbound_message(TENANT_A, "alice@contoso.com", "x@outside.example", "<r2@contoso.com>"))

    assert wait_for(lambda: len(front_door.messages()) == 2)
    names = [message.certificate.names for message in front_door.messages()]
    assert names == [(UNIQUE_A,), (LEGACY_NAME,)]


async def test_connections_reused_per_tenant(relay, front_door, smtp_pki):
    for number in range(5):
        content = outbound_message(TENANT_A, "alice@contoso.com", "bob@contoso.com", f"<c{number}@contoso.com>")
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], content)
        assert wait_for(lambda: len(front_door.messages()) == number + 1)

    assert relay.relay.pool.opened == 1


async def test_connections_not_reused_when_off(relay_factory, front_door, smtp_pki, tenants):
    relay = relay_factory(f"127.0.0.1:{front_door.port}", reuse_connections=False)
    for number in range(3):
        content = outbound_message(TENANT_A, "alice@contoso.com", "bob@contoso.com", f"<o{number}@contoso.com>")
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], content)
        assert wait_for(lambda: len(front_door.messages()) == number + 1)

    assert relay.relay.pool.opened == 3


async def test_switch_opens_new_connection(relay, front_door, smtp_pki, store, keystore, mail_views):
    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"],
                 outbound_message(TENANT_A, "alice@contoso.com", "bob@contoso.com", "<w1@contoso.com>"))
    assert wait_for(lambda: len(front_door.messages()) == 1)

    certificate_id = store_certificate(store, keystore, TENANT_A, smtp_pki.client(UNIQUE_A))
    mail_views.upgrade(TENANT_A, UNIQUE_A)
    switch_to_unique(store, TENANT_A, UNIQUE_A, certificate_id)
    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"],
                 outbound_message(TENANT_A, "alice@contoso.com", "bob@contoso.com", "<w2@contoso.com>"))

    assert wait_for(lambda: len(front_door.messages()) == 2)
    assert relay.relay.pool.opened == 2
    assert front_door.messages()[1].certificate.names == (UNIQUE_A,)
