from __future__ import annotations

import logging

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update
import pytest
from sqlalchemy import create_engine, select

from tenanttls.dns.publisher import Rfc2136Publisher, lookup_txt
from tenanttls.dns.server import BuiltinDnsServer
from tenanttls.dns.tsig import TsigKey
from tenanttls.errors import DnsError, InvalidInput
from tenanttls.store.schema import dns_records
from tests.fixtures.dns import publisher_for

ZONE = "crosswaretls.test"


def _query(server, name, rtype, *, tcp=False):
    query = dns.message.make_query(name, rtype)
    if tcp:
        return dns.query.tcp(query, server.host, timeout=2, port=server.port)
    return dns.query.udp(query, server.host, timeout=2, port=server.port)


def _update(server, *, signed=True):
    if not signed:
        return dns.update.UpdateMessage(ZONE)
    key = server.tsig.to_dnspython()
    return dns.update.UpdateMessage(ZONE, keyring=key, keyname=key.name, keyalgorithm=key.algorithm)


def test_apex_soa_and_ns(builtin_dns):
    soa = _query(builtin_dns, ZONE, "SOA")
    ns = _query(builtin_dns, ZONE, "NS", tcp=True)

    assert soa.rcode() == dns.rcode.NOERROR
    assert soa.answer[0][0].mname.to_text() == f"ns.{ZONE}."
    assert ns.answer[0][0].target.to_text() == f"ns.{ZONE}."
    assert ns.additional[0][0].address == "127.0.0.1"


def test_answers_are_authoritative(builtin_dns):
    response = _query(builtin_dns, ZONE, "SOA")

    assert response.flags & dns.flags.AA


def test_txt_added_and_removed(builtin_dns):
    publisher = publisher_for(builtin_dns)
    fqdn = f"_acme-challenge.abc.{ZONE}"

    publisher.add_txt(fqdn, "first")
    publisher.add_txt(fqdn, "second")
    both = lookup_txt(builtin_dns.host, builtin_dns.port, fqdn)
    publisher.remove_txt(fqdn, "first")
    remaining = lookup_txt(builtin_dns.host, builtin_dns.port, fqdn)

    assert sorted(both) == ["first", "second"]
    assert remaining == ["second"]


def test_question_case_echoed(builtin_dns):
    publisher_for(builtin_dns).add_txt(f"abc.{ZONE}", "MS=ms12345678")

    response = _query(builtin_dns, f"ABC.CrosswareTLS.test", "TXT")

    assert response.answer[0].name.to_text() == "ABC.CrosswareTLS.test."
    assert response.answer[0][0].strings == (b"MS=ms12345678",)


def test_unknown_name_nxdomain_with_soa(builtin_dns):
    response = _query(builtin_dns, f"nothing.{ZONE}", "TXT")

    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA
    assert response.authority[0].ttl == 60


def test_empty_non_terminal_nodata(builtin_dns):
    publisher_for(builtin_dns).add_txt(f"_acme-challenge.abc.{ZONE}", "token")

    response = _query(builtin_dns, f"abc.{ZONE}", "TXT")

    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_name_outside_zone_refused(builtin_dns):
    response = _query(builtin_dns, "example.com", "A")

    assert response.rcode() == dns.rcode.REFUSED


def test_update_bumps_serial(builtin_dns):
    before = _query(builtin_dns, ZONE, "SOA").answer[0][0].serial

    publisher_for(builtin_dns).add_txt(f"abc.{ZONE}", "value")
    after = _query(builtin_dns, ZONE, "SOA").answer[0][0].serial

    assert after == before + 1


def test_unsigned_update_notauth(builtin_dns):
    update = _update(builtin_dns, signed=False)
    update.add(f"abc.{ZONE}.", 60, "TXT", '"value"')

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == dns.rcode.NOTAUTH
    assert lookup_txt(builtin_dns.host, builtin_dns.port, f"abc.{ZONE}") == []


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (lambda server: TsigKey.generate(server.tsig.name), "BADSIG"),
        (lambda server: TsigKey.generate("unknown-key"), "BADKEY"),
        (lambda server: TsigKey(server.tsig.name, "hmac-sha512", server.tsig.secret), "BADKEY"),
    ],
    ids=["wrong-secret", "unknown-name", "wrong-algorithm"],
)
def test_bad_tsig_refused(builtin_dns, key, reason):
    publisher = Rfc2136Publisher(builtin_dns.host, builtin_dns.port, ZONE, key(builtin_dns))

    with pytest.raises(DnsError, match=f"DNS server refused the update: {reason}"):
        publisher.add_txt(f"abc.{ZONE}", "value")
    assert lookup_txt(builtin_dns.host, builtin_dns.port, f"abc.{ZONE}") == []


def test_non_txt_update_refused(builtin_dns):
    update = _update(builtin_dns)
    update.add(f"www.{ZONE}.", 60, "A", "192.0.2.1")

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == dns.rcode.REFUSED
    assert _query(builtin_dns, f"www.{ZONE}", "A").rcode() == dns.rcode.NXDOMAIN


def test_refused_update_changes_nothing(builtin_dns):
    update = _update(builtin_dns)
    update.add(f"abc.{ZONE}.", 60, "TXT", '"kept out"')
    update.add(f"abc.{ZONE}.", 60, "A", "192.0.2.1")

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == dns.rcode.REFUSED
    assert lookup_txt(builtin_dns.host, builtin_dns.port, f"abc.{ZONE}") == []


def test_apex_records_survive_delete_all(builtin_dns):
    update = _update(builtin_dns)
    update.delete(f"{ZONE}.")

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == dns.rcode.NOERROR
    assert _query(builtin_dns, ZONE, "SOA").answer
    assert _query(builtin_dns, ZONE, "NS").answer


def test_delete_rrset(builtin_dns):
    publisher = publisher_for(builtin_dns)
    publisher.add_txt(f"abc.{ZONE}", "one")
    publisher.add_txt(f"abc.{ZONE}", "two")
    update = _update(builtin_dns)
    update.delete(f"abc.{ZONE}.", "TXT")

    dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert lookup_txt(builtin_dns.host, builtin_dns.port, f"abc.{ZONE}") == []


def test_other_zone_notauth(builtin_dns):
    key = builtin_dns.tsig.to_dnspython()
    update = dns.update.UpdateMessage("example.com", keyring=key, keyname=key.name, keyalgorithm=key.algorithm)
    update.add("abc.example.com.", 60, "TXT", '"value"')

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == dns.rcode.NOTAUTH


def test_name_outside_zone_notzone(builtin_dns):
    update = _update(builtin_dns)
    update.add("abc.example.com.", 60, "TXT", '"value"')

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == dns.rcode.NOTZONE


@pytest.mark.parametrize(
    ("prepare", "rcode"),
    [
        (lambda update: update.present(f"missing.{ZONE}."), dns.rcode.NXDOMAIN),
        (lambda update: update.present(f"abc.{ZONE}."), dns.rcode.NOERROR),
        (lambda update: update.present(f"abc.{ZONE}.", "TXT"), dns.rcode.NOERROR),
        (lambda update: update.present(f"abc.{ZONE}.", "TXT", '"other"'), dns.rcode.NXRRSET),
        (lambda update: update.present(f"abc.{ZONE}.", "TXT", '"existing"'), dns.rcode.NOERROR),
        (lambda update: update.absent(f"abc.{ZONE}."), dns.rcode.YXDOMAIN),
        (lambda update: update.absent(f"abc.{ZONE}.", "TXT"), dns.rcode.YXRRSET),
        (lambda update: update.absent(f"missing.{ZONE}.", "TXT"), dns.rcode.NOERROR),
    ],
)
def test_prerequisites(builtin_dns, prepare, rcode):
    publisher_for(builtin_dns).add_txt(f"abc.{ZONE}", "existing")
    update = _update(builtin_dns)
    prepare(update)
    update.add(f"new.{ZONE}.", 60, "TXT", '"added"')

    response = dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    assert response.rcode() == rcode
    added = lookup_txt(builtin_dns.host, builtin_dns.port, f"new.{ZONE}")
    assert added == (["added"] if rcode == dns.rcode.NOERROR else [])


def test_zone_kept_in_store_across_restart(store):
    engine = store.engine
    with BuiltinDnsServer(engine, ZONE) as server:
        publisher_for(server).add_txt(f"abc.{ZONE}", "MS=ms87654321")

    with BuiltinDnsServer(engine, ZONE) as server:
        values = lookup_txt(server.host, server.port, f"abc.{ZONE}")

    with engine.connect() as connection:
        stored = connection.execute(select(dns_records.c.value).where(dns_records.c.rtype == "TXT")).scalars().all()
    assert values == ["MS=ms87654321"]
    assert stored == ['"MS=ms87654321"']


def test_unsigned_updates_accepted_without_key(store):
    with BuiltinDnsServer(store.engine, ZONE) as server:
        Rfc2136Publisher(server.host, server.port, ZONE, None).add_txt(f"abc.{ZONE}", "value")
        values = lookup_txt(server.host, server.port, f"abc.{ZONE}")

    assert values == ["value"]


def test_large_answer_truncated_over_udp(builtin_dns):
    publisher = publisher_for(builtin_dns)
    for index in range(12):
        publisher.add_txt(f"big.{ZONE}", f"{index:02d}" + "x" * 60)

    udp = _query(builtin_dns, f"big.{ZONE}", "TXT")
    tcp = _query(builtin_dns, f"big.{ZONE}", "TXT", tcp=True)

    assert udp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 12


def test_port_before_start_raises(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'dns.db'}")
    server = BuiltinDnsServer(engine, ZONE)

    with pytest.raises(DnsError, match="not started"):
        server.port


def test_port_in_use_raises(builtin_dns, store):
    server = BuiltinDnsServer(store.engine, ZONE, port=builtin_dns.port)

    with pytest.raises(DnsError, match="cannot bind the built-in DNS server"):
        server.start()


@pytest.mark.parametrize("port", [70000, -5, 65536])
def test_port_out_of_range_rejected(tmp_path, port):
    engine = create_engine(f"sqlite:///{tmp_path / 'dns.db'}")

    with pytest.raises(InvalidInput, match=f"invalid DNS server port {port}: use 1-65535, or 0"):
        BuiltinDnsServer(engine, ZONE, port=port)


def test_ipv6_address_in_brackets(store):
    with BuiltinDnsServer(store.engine, ZONE, host="::1") as server:
        address, port = server.address, server.port

    assert address == f"[::1]:{port}"


def test_rejected_update_logged_once_as_warning(builtin_dns, caplog):
    caplog.set_level(logging.INFO, logger="tenanttls.dns")
    for _ in range(3):
        update = _update(builtin_dns)
        update.add(f"abc.{ZONE}.", 60, "A", "192.0.2.1")
        dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    rejected = [record for record in caplog.records if "dns update rejected" in record.getMessage()]
    assert len(rejected) == 1
    assert rejected[0].levelno == logging.WARNING
    message = rejected[0].getMessage()
    assert "peer=127.0.0.1:" in message
    assert f"key={builtin_dns.tsig.name}" in message
    assert "rcode=REFUSED" in message
    assert "updates of A records are not allowed: this server accepts updates of TXT records only" in message


def test_other_zone_logged_as_warning(builtin_dns, caplog):
    key = builtin_dns.tsig.to_dnspython()
    update = dns.update.UpdateMessage("example.com", keyring=key, keyname=key.name, keyalgorithm=key.algorithm)
    update.add("abc.example.com.", 60, "TXT", '"value"')

    dns.query.tcp(update, builtin_dns.host, timeout=2, port=builtin_dns.port)

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("rcode=NOTAUTH" in message and "not authoritative for zone 'example.com'" in message for message in warnings)


@pytest.mark.parametrize("store_backend", ["postgresql"])
def test_store_outage_answered_servfail(store, store_url, database_outage, caplog):
    block, allow = database_outage
    caplog.set_level(logging.WARNING, logger="tenanttls.dns")
    with BuiltinDnsServer(store.engine, ZONE) as server:
        block(store_url)
        during = _query(server, f"abc.{ZONE}", "TXT", tcp=True)
        allow(store_url)
        after = _query(server, f"abc.{ZONE}", "TXT", tcp=True)

    assert during.rcode() == dns.rcode.SERVFAIL
    assert after.rcode() == dns.rcode.NXDOMAIN
    assert "dns request failed, store unreachable" in caplog.text
    assert "Traceback" not in caplog.text
