from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tenanttls.certificates.identities import IdentityService
from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.store.schema import identities

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def test_allocate_returns_name_under_zone(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)

    identity = service.allocate(TENANT)

    assert identity.tenant_id == TENANT
    assert identity.name == f"{identity.label}.crosswaretls.com"
    assert len(identity.label) == 26


def test_allocate_is_idempotent(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)

    first = service.allocate(TENANT)
    second = service.allocate(TENANT.upper())

    assert second.label == first.label
    assert second.name == first.name


def test_allocate_keeps_name_when_zone_changes(engine, clock):
    first = IdentityService(engine, "crosswaretls.com", clock).allocate(TENANT)

    again = IdentityService(engine, "other.example", clock).allocate(TENANT)

    assert again.name == first.name


def test_label_not_derived_from_tenant(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)

    identity = service.allocate(TENANT)

    assert TENANT.replace("-", "")[:8] not in identity.label


def test_get_unknown_tenant_raises(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)

    with pytest.raises(NotFoundError, match=f"tenant {TENANT} has no unique identity"):
        service.get(TENANT)


def test_invalid_tenant_id_rejected(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)

    with pytest.raises(InvalidInput, match="invalid tenant id 'contoso.com'"):
        service.allocate("contoso.com")


def test_invalid_zone_rejected(engine, clock):
    with pytest.raises(InvalidInput, match="invalid provider zone"):
        IdentityService(engine, "bad zone!", clock)


def test_released_label_never_reused(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)
    first = service.allocate(TENANT)

    released = service.release(TENANT)
    others = [service.allocate(str(uuid.uuid4())) for _ in range(50)]

    assert released.released_at is not None
    assert first.label not in {other.label for other in others}


def test_released_identity_returns_to_same_tenant(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)
    first = service.allocate(TENANT)
    service.release(TENANT)

    again = service.allocate(TENANT)

    assert again.label == first.label
    assert again.released_at is None


def test_colliding_label_retried(engine, clock, monkeypatch):
    service = IdentityService(engine, "crosswaretls.com", clock)
    existing = service.allocate(TENANT)
    labels = iter([existing.label, existing.label, "fresh" + "a" * 21])
    monkeypatch.setattr("tenanttls.certificates.identities.new_label", lambda: next(labels))

    other = service.allocate(str(uuid.uuid4()))

    assert other.label == "fresh" + "a" * 21
    with engine.connect() as connection:
        count = len(connection.execute(select(identities)).all())
    assert count == 2


def test_find_by_name_any_case(engine, clock):
    service = IdentityService(engine, "crosswaretls.com", clock)
    identity = service.allocate(TENANT)

    found = service.find_by_name(identity.name.upper())

    assert found is not None
    assert found.tenant_id == TENANT
