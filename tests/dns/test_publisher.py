from __future__ import annotations

import os

import pytest

from tenanttls.certificates.names import new_label
from tenanttls.config import load_settings
from tenanttls.dns.publisher import Rfc2136Publisher, build_publisher, lookup_txt, parse_server
from tenanttls.dns.tsig import TsigKey
from tenanttls.errors import ConfigurationError, DnsError, InvalidInput
from tests.fixtures.dns import free_port, publisher_for


@pytest.fixture
def store_backend() -> str:
    """These tests are about the RFC 2136 wire; the built-in server's store runs on SQLite only."""
    return "sqlite"


@pytest.fixture(params=[pytest.param("knot", marks=pytest.mark.knot), "builtin"])
def server(request):
    """Each publisher test runs against Knot and against the built-in server."""
    if request.param == "knot":
        return request.getfixturevalue("knot")
    return request.getfixturevalue("builtin_dns")


def _challenge_name(server) -> str:
    return f"_acme-challenge.{new_label()}.{server.zone}"


def test_two_challenges_coexist(server):
    publisher = publisher_for(server)
    fqdn = _challenge_name(server)

    publisher.add_txt(fqdn, "token-for-name")
    publisher.add_txt(fqdn, "token-for-wildcard")

    assert sorted(publisher.lookup_txt(fqdn)) == ["token-for-name", "token-for-wildcard"]


def test_remove_leaves_other_record(server):
    publisher = publisher_for(server)
    fqdn = _challenge_name(server)
    publisher.add_txt(fqdn, "first")
    publisher.add_txt(fqdn, "second")

    publisher.remove_txt(fqdn, "first")

    assert publisher.lookup_txt(fqdn) == ["second"]


def test_remove_absent_record_succeeds(server):
    publisher = publisher_for(server)
    fqdn = _challenge_name(server)

    publisher.remove_txt(fqdn, "never-added")

    assert publisher.lookup_txt(fqdn) == []


def test_wait_until_visible_returns(server):
    publisher = publisher_for(server)
    fqdn = f"{new_label()}.{server.zone}"
    publisher.add_txt(fqdn, "MS=ms12345678")

    publisher.wait_until_visible(fqdn, "MS=ms12345678", timeout=5)

    assert lookup_txt(server.host, server.port, fqdn) == ["MS=ms12345678"]


def test_wait_for_missing_record_times_out(server):
    publisher = publisher_for(server, poll_interval=0.05)
    fqdn = _challenge_name(server)

    with pytest.raises(DnsError, match=f"TXT record at {fqdn} is not visible"):
        publisher.wait_until_visible(fqdn, "never-added", timeout=0.3)


def test_wait_until_absent_after_remove(server):
    publisher = publisher_for(server)
    fqdn = _challenge_name(server)
    publisher.add_txt(fqdn, "token")
    publisher.remove_txt(fqdn, "token")

    publisher.wait_until_absent(fqdn, "token", timeout=5)

    assert publisher.lookup_txt(fqdn) == []


def test_long_value_split_into_strings(server):
    publisher = publisher_for(server)
    fqdn = _challenge_name(server)
    value = "v" * 300

    publisher.add_txt(fqdn, value)

    assert publisher.lookup_txt(fqdn) == [value]


def test_value_with_quotes_and_spaces(server):
    publisher = publisher_for(server)
    fqdn = _challenge_name(server)
    value = 'a "quoted" value; with spaces'

    publisher.add_txt(fqdn, value)
    publisher.remove_txt(fqdn, value)

    assert publisher.lookup_txt(fqdn) == []


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (lambda server: TsigKey.generate(server.tsig.name), "BADSIG"),
        (lambda server: TsigKey.generate("unknown-key"), "BADKEY"),
        (lambda server: TsigKey(server.tsig.name, "hmac-sha512", server.tsig.secret), "BADKEY"),
        (lambda server: None, "NOTAUTH"),
    ],
    ids=["wrong-secret", "unknown-key", "wrong-algorithm", "unsigned"],
)
def test_bad_key_refused(server, key, reason):
    publisher = Rfc2136Publisher(server.host, server.port, server.zone, key(server))
    fqdn = _challenge_name(server)

    with pytest.raises(DnsError, match=f"^DNS server refused the update: {reason}"):
        publisher.add_txt(fqdn, "token")
    assert lookup_txt(server.host, server.port, fqdn) == []


def test_name_outside_zone_rejected(server):
    publisher = publisher_for(server)

    with pytest.raises(InvalidInput, match="outside zone"):
        publisher.add_txt("_acme-challenge.example.com", "token")


def test_unreachable_server_reported():
    publisher = Rfc2136Publisher("127.0.0.1", free_port(), "crosswaretls.test", None, timeout=1, attempts=2, sleep=lambda _: None)

    with pytest.raises(DnsError, match="unreachable or timed out after 2 attempts"):
        publisher.add_txt("abc.crosswaretls.test", "token")


def test_invalid_zone_rejected():
    with pytest.raises(ConfigurationError, match="invalid DNS zone"):
        Rfc2136Publisher("127.0.0.1", 53, "not a zone", None)


@pytest.mark.knot
def test_repr_hides_secret(knot):
    publisher = publisher_for(knot)

    assert knot.tsig.secret_base64 not in repr(publisher)
    assert knot.tsig.name in repr(publisher)


@pytest.mark.knot
def test_knot_runs_unprivileged(knot):
    if os.geteuid() != 0:
        pytest.skip("only root switches knotd to the knot user")

    status = open(f"/proc/{knot.pid}/status").read()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))

    assert uid_line.split()[1] != "0"


@pytest.mark.knot
def test_build_publisher_from_settings(knot, monkeypatch):
    monkeypatch.setenv("TEST_TSIG", knot.tsig_key)
    settings = load_settings(
        environ={},
        dns_backend="rfc2136",
        dns_server=knot.address,
        dns_tsig_key="env:TEST_TSIG",
        provider_zone=knot.zone,
    )
    publisher = build_publisher(settings)
    fqdn = _challenge_name(knot)

    publisher.add_txt(fqdn, "token")

    assert publisher.lookup_txt(fqdn) == ["token"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:5353", ("127.0.0.1", 5353)), ("[::1]:53", ("::1", 53)), ("ns1.example.net", ("ns1.example.net", 53))],
)
def test_parse_server(text, expected):
    assert parse_server(text) == expected


def test_parse_server_bad_port():
    with pytest.raises(ConfigurationError, match="invalid dns_server '127.0.0.1:domain': the port 'domain' is not"):
        parse_server("127.0.0.1:domain")


@pytest.mark.parametrize("text", ["127.0.0.1:70000", "127.0.0.1:0", "[::1]:-5"])
def test_parse_server_port_out_of_range(text):
    with pytest.raises(ConfigurationError, match="invalid dns_server .*outside 1-65535"):
        parse_server(text)
