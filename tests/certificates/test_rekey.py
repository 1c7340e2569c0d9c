"""Re-encrypting the stored keys under a new key-encryption key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from tenanttls.certificates import repository
from tenanttls.certificates.acme_issuer import AcmeAccounts
from tenanttls.certificates.identities import IdentityService
from tenanttls.certificates.keystore import KeyStore, key_id_of
from tenanttls.certificates.local_ca import LocalCaIssuer
from tenanttls.certificates.rekey import reencrypt_keys
from tenanttls.certificates.service import CertificateService
from tenanttls.errors import ConfigurationError
from tenanttls.store.schema import certificates

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OLD = KeyStore(bytes(range(32)))
NEW = KeyStore(bytes(32))
THIRD = KeyStore(bytes([7]) * 32)
DIRECTORY = "https://acme.test/directory"


@pytest.fixture
def stored(engine, clock, tmp_path):
    """The id of a certificate and an ACME account, both stored under OLD."""
    name = IdentityService(engine, "crosswaretls.test", clock).allocate(TENANT).name
    issuer = LocalCaIssuer(tmp_path / "ca", clock=clock)
    certificate = CertificateService(engine, issuer, OLD, clock).ensure_certificate(TENANT, name)
    AcmeAccounts(engine, OLD, clock).save(DIRECTORY, ec.generate_private_key(ec.SECP256R1()), "https://acme.test/acct/1")
    return certificate.id


def _key_ids(engine):
    with engine.connect() as connection:
        return [key_id_of(bytes(value)) for value in connection.execute(select(certificates.c.key_ciphertext)).scalars()]


def test_keys_readable_with_new_key(engine, clock, tmp_path, stored):
    report = reencrypt_keys(engine, OLD, NEW)

    service = CertificateService(engine, LocalCaIssuer(tmp_path / "ca", clock=clock), NEW, clock)
    chain_pem, key_pem = service.load_key_pair(stored)
    account = AcmeAccounts(engine, NEW, clock).load(DIRECTORY)
    assert (report.certificate_keys, report.account_keys, report.already_new) == (1, 1, 0)
    assert "PRIVATE KEY" in key_pem
    assert account is not None
    assert account[1] == "https://acme.test/acct/1"
    assert _key_ids(engine) == [NEW.key_id]


def test_mixed_store_repaired(engine, clock, tmp_path, stored):
    issued = LocalCaIssuer(tmp_path / "ca", clock=clock).issue("other.crosswaretls.test")
    with engine.begin() as connection:
        repository.insert_certificate(
            connection, None, issued, NEW.encrypt(issued.key_pem.encode(), issued.name.encode()), clock.now()
        )

    report = reencrypt_keys(engine, OLD, NEW)

    assert (report.certificate_keys, report.account_keys, report.already_new) == (1, 1, 1)
    assert _key_ids(engine) == [NEW.key_id, NEW.key_id]


def test_dry_run_changes_nothing(engine, stored):
    report = reencrypt_keys(engine, OLD, NEW, dry_run=True)

    assert report.certificate_keys == 1
    assert report.dry_run
    assert _key_ids(engine) == [OLD.key_id]


def test_third_key_rejected(engine, stored):
    with pytest.raises(ConfigurationError, match=f"key id {OLD.key_id} \\(2\\), which is neither the old key"):
        reencrypt_keys(engine, THIRD, NEW)

    assert _key_ids(engine) == [OLD.key_id]
