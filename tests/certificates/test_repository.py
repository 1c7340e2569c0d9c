"""The certificate repository's queries on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone


from tenanttls.certificates import repository
from tenanttls.certificates.issuer import IssuedCertificate
from tenanttls.certificates.keystore import KeyStore

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
FIRST = KeyStore(bytes(range(32)))
SECOND = KeyStore(bytes(32))


def _issued(name: str) -> IssuedCertificate:
    return IssuedCertificate(name, "chain", "key", NOW, NOW, "1a", "local-ca")


def _store_keys(engine) -> None:
    with engine.begin() as connection:
        for index, keystore in enumerate((FIRST, FIRST, SECOND)):
            name = f"n{index}.crosswaretls.test"
            repository.insert_certificate(connection, None, _issued(name), keystore.encrypt(b"key", name.encode()), NOW)
        repository.save_account(connection, "https://acme.test/dir", SECOND.encrypt(b"key"), None, NOW)
        repository.insert_certificate(connection, None, _issued("old.crosswaretls.test"), b"\x09old format", NOW)


def test_count_key_ids(store):
    _store_keys(store.engine)

    with store.engine.connect() as connection:
        counts = repository.count_key_ids(connection)

    assert counts == {FIRST.key_id: 2, SECOND.key_id: 2}


def test_count_key_ids_empty(store):
    with store.engine.connect() as connection:
        assert repository.count_key_ids(connection) == {}
