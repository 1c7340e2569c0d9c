"""Relays notified of assignment changes through PostgreSQL's LISTEN/NOTIFY."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text, update

from tenanttls.relay.assignments import AssignmentReader
from tenanttls.relay.notifications import AssignmentListener, listens
from tenanttls.store.relay_assignments import assign_legacy
from tenanttls.store.schema import relay_assignments
from tests.fixtures.smtp import LEGACY_NAME, add_tenant, switch_to_legacy

A = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
B = "1c6f9b4d-8e2a-4b3c-8d7f-2a3b4c5d6e7f"
OTHER_NAME = "*.other-relay.example"


def _eventually(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def listening(postgres_store):
    add_tenant(postgres_store, A, "contoso.onmicrosoft.com")
    add_tenant(postgres_store, B, "fabrikam.onmicrosoft.com")
    # An hour of cache: without a notification the reader would not see a change.
    reader = AssignmentReader(postgres_store.engine, max_age=3600)
    listener = AssignmentListener(postgres_store.engine, reader, reconnect_seconds=0.2).start()
    assert listener.connected.wait(15)
    yield postgres_store, reader, listener
    listener.stop()


@pytest.mark.postgres
def test_switch_seen_at_once(listening):
    store, reader, _ = listening
    assert reader.get(A).certificate_name == LEGACY_NAME

    switch_to_legacy(store, A, OTHER_NAME)

    assert _eventually(lambda: reader.get(A).certificate_name == OTHER_NAME)


@pytest.mark.postgres
def test_rolled_back_switch_not_notified(listening):
    store, _, listener = listening

    with pytest.raises(RuntimeError):
        with store.write() as connection:
            assign_legacy(connection, A, OTHER_NAME, connection.execute(text("SELECT now()")).scalar_one())
            raise RuntimeError("roll back")
    switch_to_legacy(store, B, OTHER_NAME)

    assert _eventually(lambda: listener.received >= 1)
    time.sleep(0.5)  # a notification of the rolled-back change would have come first
    assert listener.received == 1


@pytest.mark.postgres
def test_reconnect_forgets_cache(listening):
    store, reader, listener = listening
    assert reader.get(A).certificate_name == LEGACY_NAME
    with store.write() as connection:
        # A change that sends no notification, as if made while the listener was away.
        connection.execute(update(relay_assignments).where(relay_assignments.c.tenant_id == A).values(certificate_name=OTHER_NAME))
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        ))

    assert _eventually(lambda: reader.get(A).certificate_name == OTHER_NAME)
    assert listener.connected.wait(15)


@pytest.mark.parametrize("store_backend", ["sqlite"])
def test_sqlite_store_has_no_listener(store):
    reader = AssignmentReader(store.engine)

    assert listens(store.engine) is False
    with pytest.raises(ValueError) as error:
        AssignmentListener(store.engine, reader)
    assert "PostgreSQL" in str(error.value)
