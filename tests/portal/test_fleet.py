"""The operator's fleet queries against a real SQLite store: filters, search, keyset pages, audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from tenanttls.migration.service import add_tenant
from tenanttls.portal.fleet import FleetQuery, query_audit_trail, query_fleet
from tenanttls.store.audit import AuditEvent, record_event
from tenanttls.store.schema import identities
from tenanttls.store.tenants import TenantRecord
from tenanttls.store.upgrades import update_upgrade

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _tenant_id(number: int) -> str:
    return str(uuid.UUID(int=number + 1))


@pytest.fixture
def fleet(store):
    """30 tenants: 25 awaiting consent, 3 in grace, 2 needing attention; tenant 7 has a unique name.

    The store runs on each backend, whose text ranges follow the database's collation.
    """
    with store.write() as connection:
        for number in range(30):
            tenant_id = _tenant_id(number)
            record = TenantRecord(tenant_id, f"customer{number:02d}.onmicrosoft.com", f"Customer {number}")
            add_tenant(connection, record, legacy_certificate_name="*.crossware.co.nz", now=NOW, actor="test")
            if number in (3, 4, 5):
                update_upgrade(connection, tenant_id, owner=None, state="grace")
            elif number in (10, 11):
                update_upgrade(connection, tenant_id, owner=None, state="needs_attention")
        connection.execute(
            identities.insert().values(label="abc", tenant_id=_tenant_id(7), name="abc.crosswaretls.com", created_at=NOW)
        )
    return store


def _query(store, **values):
    with store.engine.connect() as connection:
        return query_fleet(connection, FleetQuery(**values))


def test_fleet_first_page_and_cursor(fleet):
    first = _query(fleet, page_size=10)
    assert [row.initial_domain for row in first.rows][:2] == ["customer00.onmicrosoft.com", "customer01.onmicrosoft.com"]
    assert len(first.rows) == 10
    assert first.next_after == "customer09.onmicrosoft.com"
    assert first.matching == 30

    last = _query(fleet, page_size=10, after="customer19.onmicrosoft.com")
    assert last.rows[0].initial_domain == "customer20.onmicrosoft.com"
    assert last.next_after is None


def test_fleet_state_filter_rare_and_common(fleet):
    grace = _query(fleet, state="grace")
    assert [row.initial_domain for row in grace.rows] == [f"customer0{n}.onmicrosoft.com" for n in (3, 4, 5)]
    assert grace.matching == 3

    waiting = _query(fleet, state="awaiting_consent", page_size=5)
    assert len(waiting.rows) == 5
    assert all(row.state == "awaiting_consent" for row in waiting.rows)
    assert waiting.matching == 25


def test_fleet_counts_by_state(fleet):
    counts = _query(fleet).counts_by_state
    assert counts == {"awaiting_consent": 25, "grace": 3, "needs_attention": 2}


def test_fleet_search_by_domain_prefix(fleet):
    page = _query(fleet, search="customer1")
    assert [row.initial_domain for row in page.rows] == [f"customer1{n}.onmicrosoft.com" for n in range(10)]
    assert page.matching == 10


def test_fleet_search_by_unique_name_and_id(fleet):
    by_name = _query(fleet, search="abc.crossware")
    assert [row.tenant_id for row in by_name.rows] == [_tenant_id(7)]
    assert by_name.rows[0].unique_name == "abc.crosswaretls.com"

    by_id = _query(fleet, search=_tenant_id(12))
    assert [row.initial_domain for row in by_id.rows] == ["customer12.onmicrosoft.com"]


def test_fleet_search_and_state_combined(fleet):
    page = _query(fleet, search="customer1", state="needs_attention")
    assert [row.initial_domain for row in page.rows] == ["customer10.onmicrosoft.com", "customer11.onmicrosoft.com"]


def test_fleet_search_pages_with_cursor(fleet):
    first = _query(fleet, search="customer", page_size=12)
    second = _query(fleet, search="customer", page_size=12, after=first.next_after)

    assert first.next_after == "customer11.onmicrosoft.com"
    assert [row.initial_domain for row in second.rows][0] == "customer12.onmicrosoft.com"
    assert first.matching == 30
    assert first.matching_capped is False


def test_fleet_search_hex_text_matches_ids(fleet):
    page = _query(fleet, search="00000000-0000-0000-0000-00000000001")
    assert [row.initial_domain for row in page.rows] == [f"customer{n:02d}.onmicrosoft.com" for n in range(15, 30)]


def test_fleet_search_without_match(fleet):
    page = _query(fleet, search="nobody")
    assert page.rows == []
    assert page.matching == 0


def test_audit_trail_newest_first_with_cursor(fleet):
    tenant_id = _tenant_id(0)
    with fleet.write() as connection:
        for number in range(5):
            record_event(connection, AuditEvent(tenant_id=tenant_id, at=NOW, actor="test", action=f"step{number}"))

    with fleet.engine.connect() as connection:
        first = query_audit_trail(connection, tenant_id, limit=3)
        older = query_audit_trail(connection, tenant_id, before_id=first.before_id, limit=3)

    assert [event["action"] for event in first.events] == ["step4", "step3", "step2"]
    assert first.before_id is not None
    assert [event["action"] for event in older.events] == ["step1", "step0", "tenant.added"]
    assert older.before_id is None
