"""The `upgrades` table: each tenant's durable upgrade state, schedule and lease.

A row is due when `requested` is true and `next_attempt_at` has passed; a terminal
or paused upgrade has `next_attempt_at` NULL. A worker claims a due row by writing
its `lease_owner` and `lease_expires_at`. Another worker may take the row only
after the lease expired, so a crashed worker's tenants are picked up later.
Every write by a worker names the lease owner, so a worker that lost its lease
cannot overwrite the new owner's progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from tenanttls.errors import NotFoundError, StoreError
from tenanttls.store.db import Store
from tenanttls.store.schema import WAIT_REASON_MAX_LENGTH, upgrades

INITIAL_STATE = "awaiting_consent"
NEEDS_ATTENTION_STATE = "needs_attention"


class LeaseLost(StoreError):
    """The worker's lease on a tenant expired and another worker took it over."""


@dataclass(frozen=True)
class UpgradeRecord:
    """One row of the `upgrades` table."""

    tenant_id: str
    state: str
    state_entered_at: datetime
    updated_at: datetime
    requested: bool = False
    consent_method: str | None = None
    consented_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    grace_until: datetime | None = None
    last_error: str | None = None
    # The kind of stop while `state` is needs_attention (a `StopKind` value), else None.
    stop_kind: str | None = None
    # The reason of the step's last Wait while the tenant waits, else None.
    wait_reason: str | None = None
    resume_state: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    api_calls: int = 0
    version: int = 0


_FIELDS = tuple(f.name for f in fields(UpgradeRecord))


def _record(row) -> UpgradeRecord:
    values = {name: getattr(row, name) for name in _FIELDS}
    values["overrides"] = dict(values["overrides"] or {})
    return UpgradeRecord(**values)


def create_upgrade(connection: Connection, tenant_id: str, now: datetime) -> bool:
    """Insert the tenant's upgrade row in the initial state; return False when it exists."""
    if find_upgrade(connection, tenant_id) is not None:
        return False

    connection.execute(
        insert(upgrades).values(
            tenant_id=tenant_id,
            state=INITIAL_STATE,
            requested=False,
            attempts=0,
            overrides={},
            api_calls=0,
            state_entered_at=now,
            updated_at=now,
            version=0,
        )
    )
    return True


# Built once, because the steps read the row several times per tenant and step.
_SELECT_UPGRADE = select(upgrades).where(upgrades.c.tenant_id == bindparam("upgrade_tenant_id"))


def find_upgrade(connection: Connection, tenant_id: str) -> UpgradeRecord | None:
    """Return the tenant's upgrade row, or None."""
    row = connection.execute(_SELECT_UPGRADE, {"upgrade_tenant_id": tenant_id}).first()
    return _record(row) if row is not None else None


def get_upgrade(connection: Connection, tenant_id: str) -> UpgradeRecord:
    """Return the tenant's upgrade row, or raise `NotFoundError`."""
    record = find_upgrade(connection, tenant_id)
    if record is None:
        raise NotFoundError(
            f"tenant {tenant_id} has no upgrade record; import it with 'tenanttls tenants import FILE'"
        )
    return record


def list_upgrades(connection: Connection, tenant_ids: list[str] | None = None) -> list[UpgradeRecord]:
    """Return the upgrade rows of `tenant_ids` (all when None), ordered by tenant id."""
    query = select(upgrades).order_by(upgrades.c.tenant_id)
    if tenant_ids is not None:
        query = query.where(upgrades.c.tenant_id.in_(tenant_ids))
    return [_record(row) for row in connection.execute(query).all()]


def count_by_state(connection: Connection) -> dict[str, int]:
    """Return the number of upgrades in each state."""
    rows = connection.execute(select(upgrades.c.state, func.count()).group_by(upgrades.c.state)).all()
    return {state: count for state, count in rows}


def next_due_at(connection: Connection) -> datetime | None:
    """Return the earliest `next_attempt_at` of any requested upgrade, or None when nothing is scheduled."""
    return connection.execute(
        select(func.min(upgrades.c.next_attempt_at)).where(
            upgrades.c.requested.is_(True), upgrades.c.next_attempt_at.is_not(None)
        )
    ).scalar_one_or_none()


def next_claimable_at(connection: Connection, now: datetime) -> datetime | None:
    """Return when the next upgrade becomes claimable: due and not leased, or its lease expired.

    Upgrades leased to a live worker count from their lease expiry, so a worker
    does not wake up again and again for tenants that another thread is running.
    Both reads take the first row in index order (ORDER BY … LIMIT 1) rather than
    min(), so the database stops at the first matching row.
    """
    scheduled = and_(upgrades.c.requested.is_(True), upgrades.c.next_attempt_at.is_not(None))
    free = or_(upgrades.c.lease_owner.is_(None), upgrades.c.lease_expires_at <= now)
    # The negation of `free`, written out so that the index on lease_expires_at can serve it.
    lease_active = and_(upgrades.c.lease_owner.is_not(None), upgrades.c.lease_expires_at > now)
    unleased = connection.execute(
        select(upgrades.c.next_attempt_at).where(scheduled, free).order_by(upgrades.c.next_attempt_at).limit(1)
    ).scalar_one_or_none()
    leased = connection.execute(
        select(upgrades.c.lease_expires_at).where(scheduled, lease_active).order_by(upgrades.c.lease_expires_at).limit(1)
    ).scalar_one_or_none()
    candidates = [moment for moment in (unleased, leased) if moment is not None]
    return min(candidates) if candidates else None


def _claimable(now: datetime):
    return and_(
        upgrades.c.requested.is_(True),
        upgrades.c.next_attempt_at.is_not(None),
        upgrades.c.next_attempt_at <= now,
        or_(upgrades.c.lease_owner.is_(None), upgrades.c.lease_expires_at <= now),
    )


def claim_due(store: Store, owner: str, now: datetime, lease: timedelta, limit: int) -> list[UpgradeRecord]:
    """Lease up to `limit` due upgrades to `owner` and return them, earliest first.

    PostgreSQL locks the candidate rows with FOR UPDATE SKIP LOCKED, so concurrent
    workers take disjoint sets. SQLite has no row locks: the transaction holds the
    database's write lock, and each UPDATE repeats the claimable condition as a guard.
    """
    if limit <= 0:
        return []

    candidates = (
        select(upgrades.c.tenant_id)
        .where(_claimable(now))
        .order_by(upgrades.c.next_attempt_at, upgrades.c.tenant_id)
        .limit(limit)
    )
    if not store.is_sqlite:
        candidates = candidates.with_for_update(skip_locked=True)

    claimed: list[UpgradeRecord] = []
    with store.write() as connection:
        for tenant_id in connection.execute(candidates).scalars().all():
            result = connection.execute(
                update(upgrades)
                .where(upgrades.c.tenant_id == tenant_id, _claimable(now))
                .values(lease_owner=owner, lease_expires_at=now + lease, version=upgrades.c.version + 1)
            )
            if result.rowcount == 1:
                claimed.append(get_upgrade(connection, tenant_id))
    return claimed


def claim_tenant(store: Store, tenant_id: str, owner: str, now: datetime, lease: timedelta) -> UpgradeRecord | None:
    """Lease one tenant to `owner` whether or not it is due; return None while another owner holds it."""
    with store.write() as connection:
        result = connection.execute(
            update(upgrades)
            .where(
                upgrades.c.tenant_id == tenant_id,
                or_(upgrades.c.lease_owner.is_(None), upgrades.c.lease_owner == owner, upgrades.c.lease_expires_at <= now),
            )
            .values(lease_owner=owner, lease_expires_at=now + lease, version=upgrades.c.version + 1)
        )
        if result.rowcount != 1:
            return None
        return get_upgrade(connection, tenant_id)


def renew_lease(connection: Connection, tenant_id: str, owner: str, now: datetime, lease: timedelta) -> None:
    """Extend `owner`'s lease on the tenant, or raise `LeaseLost` when it no longer holds it."""
    result = connection.execute(
        update(upgrades)
        .where(upgrades.c.tenant_id == tenant_id, upgrades.c.lease_owner == owner)
        .values(lease_expires_at=now + lease)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"worker {owner} lost its lease on tenant {tenant_id}; another worker took it over")


def release_lease(connection: Connection, tenant_id: str, owner: str) -> bool:
    """Drop `owner`'s lease on the tenant; return False when it did not hold it."""
    result = connection.execute(
        update(upgrades)
        .where(upgrades.c.tenant_id == tenant_id, upgrades.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )
    return result.rowcount == 1


def update_upgrade(
    connection: Connection,
    tenant_id: str,
    *,
    owner: str | None,
    expected_state: str | None = None,
    **values: Any,
) -> UpgradeRecord:
    """Write `values` to the tenant's row and return the new row.

    With `owner`, the write happens only while `owner` holds the lease; with
    `expected_state`, only while the row is still in that state. Otherwise it raises
    `LeaseLost`, so that a step never records progress over another worker's.
    A write that sets a state other than needs_attention also sets `stop_kind` to
    NULL, unless `values` name it, so no caller can leave a stale kind behind.
    For the same reason a write that sets any state sets `wait_reason` to NULL
    unless `values` name it, and a longer `wait_reason` is truncated to
    `WAIT_REASON_MAX_LENGTH` characters, its last one an ellipsis.
    """
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown upgrade fields: {sorted(unknown)}")
    if "state" in values and values["state"] != NEEDS_ATTENTION_STATE:
        values.setdefault("stop_kind", None)
    if "state" in values:
        values.setdefault("wait_reason", None)
    if values.get("wait_reason") is not None:
        values["wait_reason"] = _truncate(values["wait_reason"], WAIT_REASON_MAX_LENGTH)

    conditions = [upgrades.c.tenant_id == tenant_id]
    if owner is not None:
        conditions.append(upgrades.c.lease_owner == owner)
    if expected_state is not None:
        conditions.append(upgrades.c.state == expected_state)

    result = connection.execute(
        update(upgrades).where(*conditions).values(version=upgrades.c.version + 1, **values)
    )
    if result.rowcount != 1:
        current = find_upgrade(connection, tenant_id)
        if current is None:
            raise NotFoundError(f"tenant {tenant_id} has no upgrade record")
        raise LeaseLost(
            f"upgrade of tenant {tenant_id} changed under worker {owner}: now state={current.state} "
            f"lease_owner={current.lease_owner} (expected state={expected_state})"
        )
    return get_upgrade(connection, tenant_id)


def _truncate(text: str, max_length: int) -> str:
    """Truncate `text` to `max_length` characters, the last one an ellipsis, when it is longer."""
    if len(text) <= max_length:
        return text
    return text[: max_length - 1] + "\u2026"


def add_api_calls(connection: Connection, tenant_id: str, count: int) -> None:
    """Add `count` to the tenant's tally of Microsoft API calls."""
    if count:
        connection.execute(
            update(upgrades)
            .where(upgrades.c.tenant_id == tenant_id)
            .values(api_calls=upgrades.c.api_calls + count)
        )
