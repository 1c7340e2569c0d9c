from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from tenanttls.store import upgrades as repo
from tenanttls.store.drift_checks import claim_drift_checks, release_drift_claims
from tenanttls.store.schema import upgrades
from tenanttls.store.tenants import TenantRecord, save_tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
INTERVAL = timedelta(hours=6)


def _add_tenants(store, count: int, *, state: str = "completed") -> list[str]:
    ids = [f"00000000-0000-4000-8000-{index:012d}" for index in range(count)]
    with store.write() as connection:
        for tenant_id in ids:
            save_tenant(connection, TenantRecord(tenant_id, f"t{tenant_id[-6:]}.onmicrosoft.com", "T"), NOW)
            repo.create_upgrade(connection, tenant_id, NOW)
            repo.update_upgrade(connection, tenant_id, owner=None, state=state)
    return ids


def _claim(store, now: datetime, limit: int = 10) -> list[str]:
    return [claim.tenant_id for claim in claim_drift_checks(store, now - INTERVAL, now, limit)]


def _stamps(store) -> dict[str, datetime | None]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(upgrades.c.tenant_id, upgrades.c.drift_checked_at)).all()
    return {row.tenant_id: row.drift_checked_at for row in rows}


def test_claim_stamps_completed(store):
    ids = _add_tenants(store, 3)

    claims = claim_drift_checks(store, NOW - INTERVAL, NOW, 10)

    assert [claim.tenant_id for claim in claims] == ids
    assert [claim.previous for claim in claims] == [None, None, None]
    assert [claim.claimed_at for claim in claims] == [NOW, NOW, NOW]
    assert _stamps(store) == {tenant_id: NOW for tenant_id in ids}


def test_claim_skips_other_states(store):
    [waiting] = _add_tenants(store, 1, state="grace")

    assert _claim(store, NOW) == []
    assert _stamps(store) == {waiting: None}


def test_claim_respects_limit(store):
    ids = _add_tenants(store, 5)

    assert _claim(store, NOW, limit=2) == ids[:2]
    assert _claim(store, NOW, limit=2) == ids[2:4]
    assert _claim(store, NOW, limit=0) == []


def test_claimed_not_due_within_interval(store):
    ids = _add_tenants(store, 2)
    _claim(store, NOW)

    assert _claim(store, NOW + INTERVAL - timedelta(seconds=1)) == []
    assert _claim(store, NOW + INTERVAL) == ids


def test_due_again_after_interval(store):
    ids = _add_tenants(store, 2)
    _claim(store, NOW)
    later = NOW + INTERVAL

    claims = claim_drift_checks(store, later - INTERVAL, later, 10)

    assert [claim.tenant_id for claim in claims] == ids
    assert [claim.previous for claim in claims] == [NOW, NOW]
    assert _stamps(store) == {tenant_id: later for tenant_id in ids}


def test_never_claimed_first(store):
    ids = _add_tenants(store, 3)
    _claim(store, NOW, limit=2)
    later = NOW + INTERVAL

    assert _claim(store, later, limit=1) == [ids[2]]
    assert _claim(store, later, limit=5) == ids[:2]


def test_release_restores_previous(store):
    [tenant_id] = _add_tenants(store, 1)
    _claim(store, NOW)
    later = NOW + INTERVAL
    claims = claim_drift_checks(store, later - INTERVAL, later, 10)

    restored = release_drift_claims(store, claims)

    assert restored == 1
    assert _stamps(store) == {tenant_id: NOW}
    assert _claim(store, later) == [tenant_id]


def test_release_keeps_newer_stamp(store):
    [tenant_id] = _add_tenants(store, 1)
    claims = claim_drift_checks(store, NOW - INTERVAL, NOW, 10)
    newer = NOW + INTERVAL
    _claim(store, newer)

    restored = release_drift_claims(store, claims)

    assert restored == 0
    assert _stamps(store) == {tenant_id: newer}


def test_concurrent_claims_disjoint(store):
    ids = _add_tenants(store, 40)
    results: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def claim(worker: str) -> None:
        claimed_ids: list[str] = []
        start.wait()
        while batch := _claim(store, NOW, limit=3):
            claimed_ids += batch
        results[worker] = claimed_ids

    threads = [threading.Thread(target=claim, args=(f"w{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [tenant_id for claimed_ids in results.values() for tenant_id in claimed_ids]
    assert len(results) == 4
    assert len(everything) == 40
    assert sorted(everything) == ids
