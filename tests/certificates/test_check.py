from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenanttls.certificates.issuer import LocalCaIssuer, check_certificate, issued_from_pem
from tenanttls.errors import CertificateError

NAME = "abcdefghijklmnopqrstuvwxyz.crosswaretls.test"
WINDOW = timedelta(days=30)


@pytest.fixture
def issuer(tmp_path, clock):
    return LocalCaIssuer(tmp_path / "ca", clock=clock)


def _leaf_from_intermediate(tmp_path, clock, *, usages, common_name=NAME):
    """Sign a leaf for NAME with the local CA's intermediate, with the given extended key usages."""
    intermediate_key = serialization.load_pem_private_key((tmp_path / "ca" / "intermediate.key").read_bytes(), None)
    intermediate_pem = (tmp_path / "ca" / "intermediate.pem").read_text()
    intermediate = x509.load_pem_x509_certificate(intermediate_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(clock.now() - timedelta(minutes=1))
        .not_valid_after(clock.now() + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    leaf = builder.sign(intermediate_key, hashes.SHA256())
    chain_pem = leaf.public_bytes(serialization.Encoding.PEM).decode() + intermediate_pem
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return issued_from_pem(NAME, chain_pem, key_pem, "local-ca")


def test_good_certificate_passes(issuer, clock):
    issued = issuer.issue(NAME)

    warnings = check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())

    assert warnings == []


def test_wrong_name_rejected(issuer, clock):
    issued = issuer.issue("other.crosswaretls.test")

    with pytest.raises(CertificateError, match="wrong name.*expected exactly"):
        check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())


def test_missing_intermediate_rejected(issuer, clock):
    issued = issuer.issue(NAME)
    leaf_only = issued.chain_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"

    with pytest.raises(CertificateError, match="intermediate certificate is missing"):
        check_certificate(
            dataclasses.replace(issued, chain_pem=leaf_only), NAME, issuer.trust_roots(), WINDOW, now=clock.now()
        )


def test_foreign_root_rejected(issuer, tmp_path, clock):
    issued = issuer.issue(NAME)
    other = LocalCaIssuer(tmp_path / "other-ca", clock=clock)

    with pytest.raises(CertificateError, match="does not verify against the CA's roots"):
        check_certificate(issued, NAME, other.trust_roots(), WINDOW, now=clock.now())


def test_chain_order_checked_without_roots(issuer, clock):
    issued = issuer.issue(NAME)
    other = issuer.issue("other.crosswaretls.test")
    leaf = issued.chain_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    wrong_parent = other.chain_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"

    with pytest.raises(CertificateError, match="certificate 1 .* is not signed by certificate 2"):
        check_certificate(
            dataclasses.replace(issued, chain_pem=leaf + wrong_parent), NAME, None, WINDOW, now=clock.now()
        )


def test_mismatched_key_rejected(issuer, clock):
    issued = issuer.issue(NAME)
    other = issuer.issue(NAME)

    with pytest.raises(CertificateError, match="does not match the certificate's public key"):
        check_certificate(
            dataclasses.replace(issued, key_pem=other.key_pem), NAME, issuer.trust_roots(), WINDOW, now=clock.now()
        )


def test_short_validity_rejected(tmp_path, clock):
    issuer = LocalCaIssuer(tmp_path / "ca", lifetime=timedelta(days=7), clock=clock)
    issued = issuer.issue(NAME)

    with pytest.raises(CertificateError) as raised:
        check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())

    message = str(raised.value)
    assert "in 7d, which is inside its renewal window of 30d" in message
    assert "renewal_fraction" in message
    assert "certificate_lifetime" in message


def test_expired_rejected(issuer, clock):
    issued = issuer.issue(NAME)
    clock.advance(timedelta(days=100))

    with pytest.raises(CertificateError):
        check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())


def test_missing_client_auth_warns(issuer, tmp_path, clock):
    issued = _leaf_from_intermediate(tmp_path, clock, usages=[ExtendedKeyUsageOID.SERVER_AUTH])

    warnings = check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())

    assert len(warnings) == 1
    assert "clientAuth" in warnings[0]
    assert "acme_profile" in warnings[0]


def test_no_extended_key_usage_allows_client_auth(issuer, tmp_path, clock):
    issued = _leaf_from_intermediate(tmp_path, clock, usages=None)

    assert check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now()) == []


def test_missing_common_name_accepted(issuer, tmp_path, clock):
    issued = _leaf_from_intermediate(
        tmp_path, clock, usages=[ExtendedKeyUsageOID.CLIENT_AUTH], common_name=None
    )

    warnings = check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())

    assert warnings == []


def test_wrong_common_name_rejected(issuer, tmp_path, clock):
    issued = _leaf_from_intermediate(
        tmp_path, clock, usages=[ExtendedKeyUsageOID.CLIENT_AUTH], common_name="other.crosswaretls.test"
    )

    with pytest.raises(CertificateError, match="wrong subject common name"):
        check_certificate(issued, NAME, issuer.trust_roots(), WINDOW, now=clock.now())


def test_invalid_pem_rejected(issuer, clock):
    issued = issuer.issue(NAME)

    with pytest.raises(CertificateError, match="not valid PEM|is empty"):
        check_certificate(
            dataclasses.replace(issued, chain_pem="garbage"), NAME, issuer.trust_roots(), WINDOW, now=clock.now()
        )
