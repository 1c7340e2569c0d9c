from __future__ import annotations

import logging
import stat
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert, select

from tenanttls.certificates.acme_issuer import AcmeAccounts, AcmeIssuer
from tenanttls.certificates.identities import IdentityService
from tenanttls.certificates.issuer import LocalCaIssuer
from tenanttls.certificates.keystore import KeyStore
from tenanttls.certificates.service import CertificateService
from tenanttls.dns.publisher import Rfc2136Publisher
from tenanttls.errors import CertificateError, ConfigurationError, NotFoundError
from tenanttls.store.schema import certificates, relay_assignments, tenants
from tests.fixtures.dns import free_port

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0b6e3f4a-2c1d-4e5f-8a9b-0c1d2e3f4a5b"
KEY = bytes(range(32))


@pytest.fixture
def issuer(tmp_path, clock):
    return LocalCaIssuer(tmp_path / "ca", lifetime=timedelta(days=90), clock=clock)


@pytest.fixture
def service(engine, issuer, clock):
    return CertificateService(engine, issuer, KeyStore(KEY), clock)


@pytest.fixture
def name(engine, clock):
    return IdentityService(engine, "crosswaretls.test", clock).allocate(TENANT).name


def _add_tenant(engine, clock, tenant_id, mode, certificate_id=None, certificate_name="*.crossware.co.nz"):
    with engine.begin() as connection:
        connection.execute(
            insert(tenants).values(
                tenant_id=tenant_id, initial_domain=f"{tenant_id[:8]}.onmicrosoft.com", created_at=clock.now()
            )
        )
        connection.execute(
            insert(relay_assignments).values(
                tenant_id=tenant_id,
                mode=mode,
                certificate_name=certificate_name,
                certificate_id=certificate_id,
                changed_at=clock.now(),
                version=1,
            )
        )


def _assignment(engine, tenant_id):
    with engine.connect() as connection:
        return connection.execute(select(relay_assignments).where(relay_assignments.c.tenant_id == tenant_id)).one()


def test_ensure_issues_and_stores(service, name):
    stored = service.ensure_certificate(TENANT, name)

    assert stored.name == name
    assert stored.status == "active"
    assert stored.backend == "local-ca"
    assert service.active_certificate(TENANT) == stored


def test_ensure_is_idempotent(service, name):
    first = service.ensure_certificate(TENANT, name)

    second = service.ensure_certificate(TENANT, name)

    assert second.id == first.id


def test_key_encrypted_at_rest(service, engine, name):
    stored = service.ensure_certificate(TENANT, name)
    _, key_pem = service.load_key_pair(stored.id)

    with engine.connect() as connection:
        ciphertext = connection.execute(select(certificates.c.key_ciphertext)).scalar_one()

    assert b"PRIVATE KEY" not in ciphertext
    assert key_pem.splitlines()[1].encode() not in ciphertext
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_key_pair_matches(service, name):
    stored = service.ensure_certificate(TENANT, name)

    chain_pem, key_pem = service.load_key_pair(stored.id)

    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert leaf.public_key() == key.public_key()


def test_wrong_key_encryption_key_rejected(engine, issuer, clock, service, name):
    stored = service.ensure_certificate(TENANT, name)
    other = CertificateService(engine, issuer, KeyStore(bytes(32)), clock)

    with pytest.raises(CertificateError, match="configure the original key_encryption_key"):
        other.load_key_pair(stored.id)


def test_other_key_rejected_before_order(engine, issuer, clock, service, name):
    stored = service.ensure_certificate(TENANT, name)
    other = CertificateService(engine, issuer, KeyStore(bytes(32)), clock)
    other_name = IdentityService(engine, "crosswaretls.test", clock).allocate(OTHER_TENANT).name

    with pytest.raises(ConfigurationError, match=f"has key id {KeyStore(bytes(32)).key_id}, but the store"):
        other.renew(TENANT)
    with pytest.raises(ConfigurationError, match=f"encrypted with key id {KeyStore(KEY).key_id} \\(1 key\\)"):
        other.ensure_certificate(OTHER_TENANT, other_name)

    with engine.connect() as connection:
        rows = connection.execute(select(certificates.c.id, certificates.c.status)).all()
    assert [tuple(row) for row in rows] == [(stored.id, "active")]


def test_renewal_pass_with_other_key_rejected(engine, issuer, clock, service, name):
    stored = service.ensure_certificate(TENANT, name)
    clock.advance(timedelta(days=61))
    other = CertificateService(engine, issuer, KeyStore(bytes(32)), clock)

    with pytest.raises(ConfigurationError, match="configure the original key_encryption_key"):
        other.renew_due()

    assert service.active_certificate(TENANT).id == stored.id


def test_acme_account_with_other_key_rejected(engine, service, name, clock):
    from cryptography.hazmat.primitives.asymmetric import ec

    service.ensure_certificate(TENANT, name)
    accounts = AcmeAccounts(engine, KeyStore(bytes(32)), clock)

    with pytest.raises(ConfigurationError, match="configure the original key_encryption_key"):
        accounts.save("https://acme.test/directory", ec.generate_private_key(ec.SECP256R1()), None)

    assert accounts.load("https://acme.test/directory") is None


def test_unknown_certificate_not_found(service):
    with pytest.raises(NotFoundError, match="certificate 999 not found"):
        service.load_key_pair(999)


def test_key_files_written_0600(service, name, tmp_path):
    stored = service.ensure_certificate(TENANT, name)

    chain_path, key_path = service.write_key_pair(stored.id, tmp_path / "relay")

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(chain_path.stat().st_mode) == 0o600
    assert key_path.read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_key_never_logged(service, name, caplog):
    with caplog.at_level(logging.DEBUG):
        stored = service.ensure_certificate(TENANT, name)
        _, key_pem = service.load_key_pair(stored.id)

    assert key_pem.splitlines()[1] not in caplog.text


def test_not_due_before_window(service, name, clock):
    stored = service.ensure_certificate(TENANT, name)

    clock.advance(timedelta(days=59))

    assert not service.is_due(stored)
    assert service.renew_due().renewed == []


def test_due_after_two_thirds(service, name, clock):
    stored = service.ensure_certificate(TENANT, name)

    clock.advance(timedelta(days=61))

    assert service.is_due(stored)


def test_renewal_swaps_relay_certificate(service, engine, name, clock):
    old = service.ensure_certificate(TENANT, name)
    _add_tenant(engine, clock, TENANT, "unique", old.id, name)
    clock.advance(timedelta(days=61))

    report = service.renew_due()

    new = service.active_certificate(TENANT)
    assignment = _assignment(engine, TENANT)
    assert [renewal.new_certificate_id for renewal in report.renewed] == [new.id]
    assert new.id != old.id
    assert new.name == old.name == name
    assert new.serial != old.serial
    assert assignment.certificate_id == new.id
    assert assignment.certificate_name == name
    assert assignment.version == 2
    with engine.connect() as connection:
        old_status = connection.execute(select(certificates.c.status).where(certificates.c.id == old.id)).scalar_one()
    assert old_status == "superseded"


def test_renewed_key_pair_served(service, engine, name, clock):
    old = service.ensure_certificate(TENANT, name)
    _add_tenant(engine, clock, TENANT, "unique", old.id, name)
    clock.advance(timedelta(days=61))
    service.renew_due()

    chain_pem, _ = service.load_key_pair(_assignment(engine, TENANT).certificate_id)

    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    assert leaf.not_valid_after_utc == clock.now() + timedelta(days=90)
    assert leaf.subject.rfc4514_string() == f"CN={name}"


def test_renewal_leaves_legacy_assignment(service, engine, name, clock):
    service.ensure_certificate(TENANT, name)
    _add_tenant(engine, clock, TENANT, "legacy")
    clock.advance(timedelta(days=61))

    service.renew_due()

    assignment = _assignment(engine, TENANT)
    assert assignment.mode == "legacy"
    assert assignment.certificate_id is None
    assert assignment.version == 1


def test_ensure_renews_inside_window(service, name, clock):
    old = service.ensure_certificate(TENANT, name)
    clock.advance(timedelta(days=61))

    new = service.ensure_certificate(TENANT, name)

    assert new.id != old.id
    assert new.name == name


def test_renew_now(service, name):
    old = service.ensure_certificate(TENANT, name)

    new = service.renew(TENANT)

    assert new.id != old.id
    assert service.active_certificate(TENANT).id == new.id


def test_renew_without_certificate_raises(service):
    with pytest.raises(NotFoundError, match=f"tenant {TENANT} has no active certificate"):
        service.renew(TENANT)


def test_orders_per_hour_defers_rest(engine, issuer, clock):
    service = CertificateService(engine, issuer, KeyStore(KEY), clock, orders_per_hour=2)
    identities = IdentityService(engine, "crosswaretls.test", clock)
    tenant_ids = [TENANT, OTHER_TENANT, "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"]
    for tenant_id in tenant_ids:
        service.ensure_certificate(tenant_id, identities.allocate(tenant_id).name)
    clock.advance(timedelta(days=61))

    report = service.renew_due()

    assert len(report.due) == 3
    assert len(report.renewed) == 2
    assert len(report.deferred) == 1


def test_orders_spread_over_the_hour(engine, issuer, clock):
    service = CertificateService(engine, issuer, KeyStore(KEY), clock, orders_per_hour=4)
    identities = IdentityService(engine, "crosswaretls.test", clock)
    for tenant_id in (TENANT, OTHER_TENANT):
        service.ensure_certificate(tenant_id, identities.allocate(tenant_id).name)
    clock.advance(timedelta(days=61))
    started = clock.now()

    report = service.renew_due()

    created = sorted(certificate.created_at for certificate in map(service.active_certificate, (TENANT, OTHER_TENANT)))
    assert len(report.renewed) == 2
    assert created[0] >= started
    assert created[1] - created[0] >= timedelta(minutes=15)


def test_limit_caps_renewals(service, engine, clock):
    identities = IdentityService(engine, "crosswaretls.test", clock)
    for tenant_id in (TENANT, OTHER_TENANT):
        service.ensure_certificate(tenant_id, identities.allocate(tenant_id).name)
    clock.advance(timedelta(days=61))

    report = service.renew_due(limit=1)

    assert len(report.renewed) == 1
    assert len(report.deferred) == 1


def test_dry_run_changes_nothing(service, name, clock):
    old = service.ensure_certificate(TENANT, name)
    clock.advance(timedelta(days=61))

    report = service.renew_due(dry_run=True)

    assert [certificate.id for certificate in report.due] == [old.id]
    assert report.renewed == []
    assert service.active_certificate(TENANT).id == old.id


def test_released_identity_not_renewed(service, engine, clock):
    identities = IdentityService(engine, "crosswaretls.test", clock)
    for tenant_id in (TENANT, OTHER_TENANT):
        service.ensure_certificate(tenant_id, identities.allocate(tenant_id).name)
    identities.release(OTHER_TENANT)
    clock.advance(timedelta(days=61))

    report = service.renew_due()

    assert [certificate.tenant_id for certificate in report.due] == [TENANT]
    assert [certificate.tenant_id for certificate in report.released] == [OTHER_TENANT]
    assert [renewal.tenant_id for renewal in report.renewed] == [TENANT]
    assert service.is_due(service.active_certificate(OTHER_TENANT))


def test_failed_renewal_keeps_old_certificate(engine, service, name, clock, tmp_path):
    old = service.ensure_certificate(TENANT, name)
    _add_tenant(engine, clock, TENANT, "unique", old.id, name)
    clock.advance(timedelta(days=61))
    down = AcmeIssuer(
        f"https://127.0.0.1:{free_port()}/dir",
        Rfc2136Publisher("127.0.0.1", free_port(), "crosswaretls.test", None),
        AcmeAccounts(engine, KeyStore(KEY), clock),
        network_timeout=2,
    )
    failing = CertificateService(engine, down, KeyStore(KEY), clock)

    report = failing.renew_due()

    assert len(report.failed) == 1
    assert "is unreachable" in report.failed[0].error
    assert service.active_certificate(TENANT).id == old.id
    assert _assignment(engine, TENANT).certificate_id == old.id


def test_invalid_renewal_fraction_rejected(engine, issuer, clock):
    with pytest.raises(ConfigurationError, match="invalid renewal_fraction"):
        CertificateService(engine, issuer, KeyStore(KEY), clock, renewal_fraction=1.5)
