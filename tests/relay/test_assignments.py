"""Relay assignments read from a real store, and the client contexts built from them."""

from __future__ import annotations

import os
import ssl

import pytest
from sqlalchemy import update

from tenanttls.certificates.keystore import KeyStore
from tenanttls.errors import CertificateError
from tenanttls.relay.assignments import AssignmentReader
from tenanttls.relay.certificates import ClientContexts, StoreKeyPairs
from tenanttls.relay.settings import LegacyCertificate
from tenanttls.store.schema import tenants as tenants_table
from tests.fixtures.smtp import LEGACY_NAME, add_tenant, store_certificate, switch_to_unique

TENANT = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
UNIQUE = "q7k2m4p9x3c8v1b6n5z0w2r4ta.crosswaretls.com"


class FakeTime:
    """A monotonic time source the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tenant(store):
    add_tenant(store, TENANT, "contoso.onmicrosoft.com")


def test_legacy_assignment_read(store, tenant):
    assignment = AssignmentReader(store.engine).get(TENANT)

    assert assignment.mode == "legacy"
    assert assignment.certificate_name == LEGACY_NAME
    assert assignment.certificate_id is None
    assert assignment.initial_domain == "contoso.onmicrosoft.com"


def test_unknown_tenant_has_none(store):
    assert AssignmentReader(store.engine).get(TENANT) is None


def test_default_destination_is_exchange(store, tenant):
    assignment = AssignmentReader(store.engine).get(TENANT)

    assert assignment.destination() == ("contoso.mail.protection.outlook.com", 25)
    assert assignment.destination("127.0.0.1:2526") == ("127.0.0.1", 2526)


def test_destination_from_store(store, tenant):
    with store.write() as connection:
        connection.execute(update(tenants_table).where(tenants_table.c.tenant_id == TENANT).values(smart_host="mx.contoso.test:587"))

    assert AssignmentReader(store.engine).get(TENANT).destination() == ("mx.contoso.test", 587)


def test_switch_seen_after_max_age(store, keystore, smtp_pki, tenant):
    clock = FakeTime()
    reader = AssignmentReader(store.engine, max_age=1.0, monotonic=clock)
    assert reader.get(TENANT).mode == "legacy"

    certificate_id = store_certificate(store, keystore, TENANT, smtp_pki.client(UNIQUE))
    switch_to_unique(store, TENANT, UNIQUE, certificate_id)
    cached = reader.get(TENANT)
    clock.now += 1.5
    fresh = reader.get(TENANT)

    assert cached.mode == "legacy"
    assert fresh.mode == "unique"
    assert fresh.certificate_id == certificate_id
    assert fresh.version > cached.version


def test_load_all_fills_cache(store, tenant):
    reader = AssignmentReader(store.engine, max_age=60)

    assert reader.load_all() == 1
    with store.write() as connection:
        connection.execute(update(tenants_table).where(tenants_table.c.tenant_id == TENANT).values(smart_host="changed.test"))
    assert reader.get(TENANT).smart_host is None
    reader.forget(TENANT)
    assert reader.get(TENANT).smart_host == "changed.test"


def contexts_for(legacy_pair, key_pairs, smtp_pki, **options) -> ClientContexts:
    legacy = LegacyCertificate(LEGACY_NAME, legacy_pair.certificate, legacy_pair.key)
    return ClientContexts(legacy, key_pairs, server_ca=smtp_pki.ca_path, **options)


def test_legacy_context_shared(store, legacy_pair, smtp_pki, tenant):
    add_tenant(store, "5c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "fabrikam.onmicrosoft.com")
    reader = AssignmentReader(store.engine)
    contexts = contexts_for(legacy_pair, None, smtp_pki)

    first = contexts.context_for(reader.get(TENANT))
    second = contexts.context_for(reader.get("5c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"))

    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname is True


def test_unique_context_from_store(store, keystore, legacy_pair, smtp_pki, tenant):
    certificate_id = store_certificate(store, keystore, TENANT, smtp_pki.client(UNIQUE))
    switch_to_unique(store, TENANT, UNIQUE, certificate_id)
    contexts = contexts_for(legacy_pair, StoreKeyPairs(store.engine, keystore), smtp_pki)

    context = contexts.context_for(AssignmentReader(store.engine).get(TENANT))

    assert isinstance(context, ssl.SSLContext)
    assert len(contexts) == 1
    contexts.close()


def test_key_files_removed_after_load(store, keystore, legacy_pair, smtp_pki, tenant):
    certificate_id = store_certificate(store, keystore, TENANT, smtp_pki.client(UNIQUE))
    switch_to_unique(store, TENANT, UNIQUE, certificate_id)
    contexts = contexts_for(legacy_pair, StoreKeyPairs(store.engine, keystore), smtp_pki)

    contexts.context_for(AssignmentReader(store.engine).get(TENANT))

    assert list(contexts._folder.iterdir()) == []
    assert contexts._folder.stat().st_mode & 0o077 == 0


def test_wrong_key_encryption_key_names_tenant(store, keystore, legacy_pair, smtp_pki, tenant):
    certificate_id = store_certificate(store, keystore, TENANT, smtp_pki.client(UNIQUE))
    switch_to_unique(store, TENANT, UNIQUE, certificate_id)
    contexts = contexts_for(legacy_pair, StoreKeyPairs(store.engine, KeyStore(os.urandom(32))), smtp_pki)

    with pytest.raises(CertificateError) as error:
        contexts.context_for(AssignmentReader(store.engine).get(TENANT))

    assert TENANT in str(error.value)
    assert UNIQUE in str(error.value)


def test_unique_without_key_store_fails(store, keystore, legacy_pair, smtp_pki, tenant):
    certificate_id = store_certificate(store, keystore, TENANT, smtp_pki.client(UNIQUE))
    switch_to_unique(store, TENANT, UNIQUE, certificate_id)
    contexts = contexts_for(legacy_pair, None, smtp_pki)

    with pytest.raises(CertificateError) as error:
        contexts.context_for(AssignmentReader(store.engine).get(TENANT))

    assert "key_encryption_key" in str(error.value)


def test_missing_legacy_file_names_setting(store, legacy_pair, smtp_pki, tenant, tmp_path):
    legacy = LegacyCertificate(LEGACY_NAME, tmp_path / "missing.pem", legacy_pair.key)
    contexts = ClientContexts(legacy, None, server_ca=smtp_pki.ca_path)

    with pytest.raises(CertificateError) as error:
        contexts.context_for(AssignmentReader(store.engine).get(TENANT))

    assert "legacy_certificate" in str(error.value)
    assert TENANT in str(error.value)


def test_least_recently_used_dropped(store, keystore, legacy_pair, smtp_pki):
    tenant_ids = ["0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6" + str(number) for number in range(3)]
    for number, tenant_id in enumerate(tenant_ids):
        add_tenant(store, tenant_id, f"tenant{number}.onmicrosoft.com")
        name = f"name{number}.crosswaretls.com"
        switch_to_unique(store, tenant_id, name, store_certificate(store, keystore, tenant_id, smtp_pki.client(name)))
    reader = AssignmentReader(store.engine)
    contexts = contexts_for(legacy_pair, StoreKeyPairs(store.engine, keystore), smtp_pki, max_contexts=2)

    first = contexts.context_for(reader.get(tenant_ids[0]))
    for tenant_id in tenant_ids[1:]:
        contexts.context_for(reader.get(tenant_id))
    again = contexts.context_for(reader.get(tenant_ids[0]))

    assert len(contexts) == 2
    assert again is not first
