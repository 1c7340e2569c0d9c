from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tenanttls.errors import StoreError
from tenanttls.store.db import current_revision, head_revision, open_store, safe_url
from tenanttls.store.schema import metadata


def test_open_creates_and_migrates(store_url):
    store = open_store(store_url, create=True)

    assert store.revision == head_revision()
    assert current_revision(store.engine) == head_revision()
    store.close()


def test_open_uninitialised_without_create(store_url):
    with pytest.raises(StoreError) as error:
        open_store(store_url)

    assert "tenanttls init" in str(error.value)


def test_open_twice_keeps_data(store):
    with store.write() as connection:
        connection.execute(
            text("INSERT INTO acme_accounts VALUES ('d', :key, NULL, '2026-01-01 00:00:00+00')"), {"key": b"\x00"}
        )

    again = open_store(store.url)
    with again.engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM acme_accounts")).scalar_one()
    assert count == 1
    again.close()


def test_newer_schema_rejected(store):
    with store.write() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(StoreError) as error:
        open_store(store.url, create=True)

    message = str(error.value)
    assert "9999" in message
    assert head_revision() in message
    assert "newer" in message


def test_newer_schema_left_unchanged(store):
    with store.write() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(StoreError):
        open_store(store.url, create=True)

    assert current_revision(store.engine) == "9999"


def test_migration_matches_schema(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)

    assert differences == []


def test_invalid_url():
    with pytest.raises(StoreError) as error:
        open_store("not a url")

    assert "invalid database URL" in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql//user:SECRET-PW@host/db",
        "postgresql://user:SECRET-PW@127.0.0.1:notaport/db",
        "postgresql://user:SECRET-PW@127.0.0.1:99999/db",
        "mysql://user:SECRET-PW@127.0.0.1/db",
    ],
)
def test_invalid_url_masks_password(url):
    with pytest.raises(StoreError) as error:
        open_store(url)

    assert "invalid database URL" in str(error.value)
    assert "SECRET-PW" not in str(error.value)
    assert "***" in str(error.value)


def test_non_numeric_port_named():
    with pytest.raises(StoreError) as error:
        open_store("postgresql://user@127.0.0.1:notaport/db")

    assert "the port is not a number" in str(error.value)
    assert "int()" not in str(error.value)


def test_unreachable_url_names_fix():
    with pytest.raises(StoreError) as error:
        open_store("postgres://user:SECRET-PW@127.0.0.1:1/db")

    assert "SECRET-PW" not in str(error.value)
    assert "check the host, port" in str(error.value)
    assert "sqlalche.me" not in str(error.value)


def test_safe_url_masks_password():
    assert safe_url("postgresql://user:SECRET-PW@127.0.0.1:5432/db") == "postgresql://user:***@127.0.0.1:5432/db"


@pytest.mark.postgres
def test_postgres_migrates(postgres_url):
    store = open_store(postgres_url, create=True)

    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    store.close()
