from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from tenanttls.errors import NotFoundError
from tenanttls.store import upgrades as repo
from tenanttls.store.schema import WAIT_REASON_MAX_LENGTH
from tenanttls.store.tenants import TenantRecord, save_tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)


def _add_tenants(store, count: int, *, due: datetime | None = NOW) -> list[str]:
    ids = [f"00000000-0000-4000-8000-{index:012d}" for index in range(count)]
    with store.write() as connection:
        for tenant_id in ids:
            save_tenant(connection, TenantRecord(tenant_id, f"t{tenant_id[-6:]}.onmicrosoft.com", "T"), NOW)
            repo.create_upgrade(connection, tenant_id, NOW)
            repo.update_upgrade(connection, tenant_id, owner=None, requested=True, next_attempt_at=due)
    return ids


def test_create_is_idempotent(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        created = repo.create_upgrade(connection, tenant_id, NOW)
        record = repo.get_upgrade(connection, tenant_id)

    assert created is False
    assert record.state == "awaiting_consent"
    assert record.requested is True


def test_times_come_back_aware(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.engine.connect() as connection:
        record = repo.get_upgrade(connection, tenant_id)

    assert record.next_attempt_at == NOW
    assert record.next_attempt_at.tzinfo is not None


def test_get_unknown_tenant(store):
    with store.engine.connect() as connection, pytest.raises(NotFoundError) as error:
        repo.get_upgrade(connection, "00000000-0000-4000-8000-000000000999")

    assert "00000000-0000-4000-8000-000000000999" in str(error.value)


def test_claim_takes_due_only(store):
    due = _add_tenants(store, 2)
    with store.write() as connection:
        repo.update_upgrade(connection, due[1], owner=None, next_attempt_at=NOW + timedelta(hours=1))

    claimed = repo.claim_due(store, "w1", NOW, LEASE, 10)

    assert [record.tenant_id for record in claimed] == [due[0]]
    assert claimed[0].lease_owner == "w1"
    assert claimed[0].lease_expires_at == NOW + LEASE


def test_claim_skips_unrequested(store):
    [tenant_id] = _add_tenants(store, 1)
    with store.write() as connection:
        repo.update_upgrade(connection, tenant_id, owner=None, requested=False)

    assert repo.claim_due(store, "w1", NOW, LEASE, 10) == []


def test_claim_respects_limit(store):
    _add_tenants(store, 5)

    assert len(repo.claim_due(store, "w1", NOW, LEASE, 3)) == 3
    assert len(repo.claim_due(store, "w2", NOW, LEASE, 10)) == 2


def test_leased_not_claimed_again(store):
    _add_tenants(store, 1)
    repo.claim_due(store, "w1", NOW, LEASE, 10)

    assert repo.claim_due(store, "w2", NOW + LEASE - timedelta(seconds=1), LEASE, 10) == []


def test_expired_lease_claimed(store):
    [tenant_id] = _add_tenants(store, 1)
    repo.claim_due(store, "w1", NOW, LEASE, 10)

    claimed = repo.claim_due(store, "w2", NOW + LEASE, LEASE, 10)

    assert [record.tenant_id for record in claimed] == [tenant_id]
    assert claimed[0].lease_owner == "w2"


def test_lost_lease_blocks_update(store):
    [tenant_id] = _add_tenants(store, 1)
    repo.claim_due(store, "w1", NOW, LEASE, 10)
    repo.claim_due(store, "w2", NOW + LEASE, LEASE, 10)

    with store.write() as connection, pytest.raises(repo.LeaseLost):
        repo.update_upgrade(connection, tenant_id, owner="w1", state="identity")


def test_expected_state_guard(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection, pytest.raises(repo.LeaseLost):
        repo.update_upgrade(connection, tenant_id, owner=None, expected_state="grace", state="switched")


def test_renew_and_release(store):
    [tenant_id] = _add_tenants(store, 1)
    repo.claim_due(store, "w1", NOW, LEASE, 10)

    with store.write() as connection:
        repo.renew_lease(connection, tenant_id, "w1", NOW + timedelta(minutes=4), LEASE)
        record = repo.get_upgrade(connection, tenant_id)
        released = repo.release_lease(connection, tenant_id, "w1")
        after = repo.get_upgrade(connection, tenant_id)

    assert record.lease_expires_at == NOW + timedelta(minutes=9)
    assert released is True
    assert after.lease_owner is None


def test_renew_by_other_owner(store):
    [tenant_id] = _add_tenants(store, 1)
    repo.claim_due(store, "w1", NOW, LEASE, 10)

    with store.write() as connection, pytest.raises(repo.LeaseLost):
        repo.renew_lease(connection, tenant_id, "w2", NOW, LEASE)


def test_concurrent_claims_disjoint(store):
    _add_tenants(store, 40)
    results: dict[str, list[str]] = {}

    def claim(owner: str) -> None:
        taken: list[str] = []
        while True:
            batch = repo.claim_due(store, owner, NOW, LEASE, 3)
            if not batch:
                break
            taken += [record.tenant_id for record in batch]
        results[owner] = taken

    threads = [threading.Thread(target=claim, args=(f"w{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [tenant_id for taken in results.values() for tenant_id in taken]
    assert len(everything) == 40
    assert len(set(everything)) == 40


def test_next_due_at(store):
    ids = _add_tenants(store, 2)
    with store.write() as connection:
        repo.update_upgrade(connection, ids[0], owner=None, next_attempt_at=NOW + timedelta(minutes=3))
        repo.update_upgrade(connection, ids[1], owner=None, next_attempt_at=None)
        due = repo.next_due_at(connection)

    assert due == NOW + timedelta(minutes=3)


def test_api_calls_add_up(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        repo.add_api_calls(connection, tenant_id, 3)
        repo.add_api_calls(connection, tenant_id, 4)
        record = repo.get_upgrade(connection, tenant_id)

    assert record.api_calls == 7


@pytest.mark.postgres
def test_postgres_claims_disjoint(postgres_store):
    _add_tenants(postgres_store, 30)
    results: dict[str, list[str]] = {}

    def claim(owner: str) -> None:
        taken: list[str] = []
        while batch := repo.claim_due(postgres_store, owner, NOW, LEASE, 2):
            taken += [record.tenant_id for record in batch]
        results[owner] = taken

    threads = [threading.Thread(target=claim, args=(f"w{index}",)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = [tenant_id for taken in results.values() for tenant_id in taken]
    assert sorted(everything) == sorted(set(everything))
    assert len(everything) == 30


def test_next_claimable_skips_leased(store):
    ids = _add_tenants(store, 2)
    repo.claim_due(store, "w1", NOW, LEASE, 1)
    with store.write() as connection:
        repo.update_upgrade(connection, ids[1], owner=None, next_attempt_at=NOW + timedelta(minutes=10))
        claimable = repo.next_claimable_at(connection, NOW)

    assert claimable == NOW + LEASE


def test_stop_kind_stored(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        stopped = repo.update_upgrade(
            connection, tenant_id, owner=None, state="needs_attention", stop_kind="safety", last_error="gate"
        )

    assert stopped.stop_kind == "safety"


def test_stop_kind_cleared_on_state_change(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        repo.update_upgrade(connection, tenant_id, owner=None, state="needs_attention", stop_kind="consent")
        left = repo.update_upgrade(connection, tenant_id, owner=None, state="manual")

    assert left.state == "manual"
    assert left.stop_kind is None


def test_stop_kind_kept_without_state(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        repo.update_upgrade(connection, tenant_id, owner=None, state="needs_attention", stop_kind="gave_up")
        touched = repo.update_upgrade(connection, tenant_id, owner=None, consented_at=NOW)

    assert touched.stop_kind == "gave_up"


def test_wait_reason_cleared_on_state_change(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        waiting = repo.update_upgrade(connection, tenant_id, owner=None, wait_reason="not yet listed")
        stopped = repo.update_upgrade(connection, tenant_id, owner=None, state="needs_attention", stop_kind="other")

    assert waiting.wait_reason == "not yet listed"
    assert stopped.wait_reason is None


def test_wait_reason_kept_without_state(store):
    [tenant_id] = _add_tenants(store, 1)

    with store.write() as connection:
        repo.update_upgrade(connection, tenant_id, owner=None, wait_reason="grace period")
        touched = repo.update_upgrade(connection, tenant_id, owner=None, next_attempt_at=NOW)

    assert touched.wait_reason == "grace period"


def test_long_wait_reason_truncated(store):
    [tenant_id] = _add_tenants(store, 1)
    reason = "é" * 400 + "x" * 400

    with store.write() as connection:
        waiting = repo.update_upgrade(connection, tenant_id, owner=None, wait_reason=reason)

    assert len(waiting.wait_reason) == WAIT_REASON_MAX_LENGTH
    assert waiting.wait_reason.startswith("é" * 400 + "x" * 99)
    assert waiting.wait_reason.endswith("x\u2026")
