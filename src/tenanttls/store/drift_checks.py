"""Claims on the scheduled drift check of completed tenants, shared by the workers of one store.

Each upgrade row carries `drift_checked_at`, the time a worker last claimed the
tenant's drift check. A worker claims due tenants in small batches and stamps them in
the same transaction, before it checks them. So the workers sharing a store check each
completed tenant about once per interval between them, and two workers never claim one
tenant in the same interval. A worker that crashes after a claim leaves the stamp
behind, and the tenant is due again one interval later.

PostgreSQL locks the candidate rows with FOR UPDATE SKIP LOCKED, so concurrent claims
take disjoint sets without waiting for each other. SQLite has no row locks: the claim's
transaction holds the database's write lock from its start (BEGIN IMMEDIATE), and each
UPDATE repeats the due condition as a guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update

from tenanttls.store.db import Store
from tenanttls.store.schema import upgrades

# The upgrade state whose tenants the drift check applies to.
COMPLETED = "completed"


@dataclass(frozen=True)
class DriftClaim:
    """A completed tenant whose drift check a worker claimed."""

    tenant_id: str
    claimed_at: datetime
    # The tenant's drift_checked_at before this claim, or None when it was never claimed.
    previous: datetime | None


def _due(cutoff: datetime):
    return and_(
        upgrades.c.state == COMPLETED,
        or_(upgrades.c.drift_checked_at.is_(None), upgrades.c.drift_checked_at <= cutoff),
    )


def claim_drift_checks(store: Store, cutoff: datetime, now: datetime, limit: int) -> list[DriftClaim]:
    """Stamp up to `limit` due tenants with `now` and return their claims.

    A tenant is due when its upgrade is completed and its drift check was never
    claimed or was claimed at or before `cutoff` (usually `now` minus the drift
    interval). Tenants never claimed come first, then the ones claimed longest ago.
    """
    if limit <= 0:
        return []

    candidates = (
        select(upgrades.c.tenant_id, upgrades.c.drift_checked_at)
        .where(_due(cutoff))
        .order_by(upgrades.c.drift_checked_at.asc().nulls_first(), upgrades.c.tenant_id)
        .limit(limit)
    )
    if not store.is_sqlite:
        candidates = candidates.with_for_update(skip_locked=True)

    claims: list[DriftClaim] = []
    with store.write() as connection:
        for row in connection.execute(candidates).all():
            result = connection.execute(
                update(upgrades)
                .where(upgrades.c.tenant_id == row.tenant_id, _due(cutoff))
                .values(drift_checked_at=now)
            )
            if result.rowcount == 1:
                claims.append(DriftClaim(row.tenant_id, now, row.drift_checked_at))
    return claims


def release_drift_claims(store: Store, claims: list[DriftClaim]) -> int:
    """Restore the stamps that `claims` replaced, for tenants a stopping worker did not check.

    A stamp that changed since the claim is left as it is. Returns the number restored.
    """
    restored = 0
    with store.write() as connection:
        for claim in claims:
            result = connection.execute(
                update(upgrades)
                .where(upgrades.c.tenant_id == claim.tenant_id, upgrades.c.drift_checked_at == claim.claimed_at)
                .values(drift_checked_at=claim.previous)
            )
            restored += result.rowcount
    return restored
