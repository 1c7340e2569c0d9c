from __future__ import annotations

import logging
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenanttls.certificates.issuer import LocalCaIssuer, check_certificate
from tenanttls.errors import CertificateError, ConfigurationError, InvalidInput

NAME = "abcdefghijklmnopqrstuvwxyz.crosswaretls.test"


def test_leaf_carries_exactly_the_name(tmp_path, clock):
    issuer = LocalCaIssuer(tmp_path / "ca", clock=clock)

    issued = issuer.issue(NAME.upper())

    leaf = x509.load_pem_x509_certificates(issued.chain_pem.encode())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [NAME]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NAME
    assert issued.name == NAME


def test_leaf_allows_client_and_server_auth(tmp_path, clock):
    issuer = LocalCaIssuer(tmp_path / "ca", clock=clock)

    issued = issuer.issue(NAME)

    leaf = x509.load_pem_x509_certificates(issued.chain_pem.encode())[0]
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


def test_chain_is_leaf_then_intermediate(tmp_path, clock):
    issuer = LocalCaIssuer(tmp_path / "ca", clock=clock)

    issued = issuer.issue(NAME)

    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    assert len(chain) == 2
    assert chain[1].issuer == issuer.trust_roots()[0].subject
    assert check_certificate(issued, NAME, issuer.trust_roots(), timedelta(days=30), now=clock.now()) == []


def test_validity_follows_clock(tmp_path, clock):
    issuer = LocalCaIssuer(tmp_path / "ca", lifetime=timedelta(days=10), clock=clock)

    issued = issuer.issue(NAME)

    assert issued.not_after == clock.now() + timedelta(days=10)
    assert issued.not_before < clock.now()
    assert issued.backend == "local-ca"


def test_ca_reused_across_instances(tmp_path, clock):
    first = LocalCaIssuer(tmp_path / "ca", clock=clock)
    second = LocalCaIssuer(tmp_path / "ca", clock=clock)

    assert first.trust_roots() == second.trust_roots()
    assert second.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_ca_keys_written_0600(tmp_path, clock):
    LocalCaIssuer(tmp_path / "ca", clock=clock)

    for name in ("ca.key", "intermediate.key"):
        assert stat.S_IMODE((tmp_path / "ca" / name).stat().st_mode) == 0o600


def test_unusable_against_exchange_logged(tmp_path, clock, caplog):
    with caplog.at_level(logging.WARNING):
        LocalCaIssuer(tmp_path / "ca", clock=clock)

    assert "Exchange Online does not trust this CA" in caplog.text


def test_unusable_warning_once_per_ca(tmp_path, clock, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            LocalCaIssuer(tmp_path / "ca", clock=clock)
        LocalCaIssuer(tmp_path / "other", clock=clock)

    warnings = [record.getMessage() for record in caplog.records if "local CA in use" in record.getMessage()]
    assert len(warnings) == 2
    assert str(tmp_path / "other") in warnings[1]


def test_key_never_logged(tmp_path, clock, caplog):
    issuer = LocalCaIssuer(tmp_path / "ca", clock=clock)

    with caplog.at_level(logging.DEBUG):
        issued = issuer.issue(NAME)

    body = issued.key_pem.splitlines()[1]
    assert body not in caplog.text
    assert body not in repr(issued)


def test_invalid_name_rejected(tmp_path, clock):
    issuer = LocalCaIssuer(tmp_path / "ca", clock=clock)

    with pytest.raises(CertificateError, match="invalid certificate name"):
        issuer.issue("not a name")


def test_tiny_lifetime_rejected(tmp_path, clock):
    with pytest.raises(ConfigurationError, match="invalid certificate_lifetime 1m for the local CA: use more than 5m"):
        LocalCaIssuer(tmp_path / "ca", lifetime=timedelta(minutes=1), clock=clock)
