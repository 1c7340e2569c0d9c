"""The `connector_snapshots` table: inbound connectors exactly as Exchange returned them.

The backup step saves the original connector here before renaming it, and
rollback compares the restored connector with this copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from tenanttls.store.schema import connector_snapshots


@dataclass(frozen=True)
class ConnectorSnapshot:
    """A saved connector: `connector` is the full object from Get-InboundConnector."""

    id: int
    tenant_id: str
    connector_name: str
    run_id: str | None
    connector: dict[str, Any]
    reason: str
    taken_at: datetime


def _snapshot(row) -> ConnectorSnapshot:
    return ConnectorSnapshot(
        id=row.id,
        tenant_id=row.tenant_id,
        connector_name=row.connector_name,
        run_id=row.run_id,
        connector=dict(row.connector),
        reason=row.reason,
        taken_at=row.taken_at,
    )


def save_snapshot(
    connection: Connection,
    *,
    tenant_id: str,
    connector_name: str,
    run_id: str | None,
    connector: dict[str, Any],
    reason: str,
    now: datetime,
) -> ConnectorSnapshot:
    """Store a snapshot, unless one with the same tenant, run and reason exists; return the stored one.

    Keeping the first copy matters: a step that is repeated after a crash must not
    replace the original connector with what it looks like halfway through.
    """
    existing = find_snapshot(connection, tenant_id, run_id=run_id, reason=reason)
    if existing is not None:
        return existing

    connection.execute(
        insert(connector_snapshots).values(
            tenant_id=tenant_id,
            connector_name=connector_name,
            run_id=run_id,
            connector=connector,
            reason=reason,
            taken_at=now,
        )
    )
    snapshot = find_snapshot(connection, tenant_id, run_id=run_id, reason=reason)
    assert snapshot is not None
    return snapshot


def find_snapshot(
    connection: Connection, tenant_id: str, *, run_id: str | None = None, reason: str | None = None
) -> ConnectorSnapshot | None:
    """Return the tenant's earliest snapshot matching `run_id` and `reason` (each when given), or None."""
    query = select(connector_snapshots).where(connector_snapshots.c.tenant_id == tenant_id)
    if run_id is not None:
        query = query.where(connector_snapshots.c.run_id == run_id)
    if reason is not None:
        query = query.where(connector_snapshots.c.reason == reason)
    row = connection.execute(query.order_by(connector_snapshots.c.id).limit(1)).first()
    return _snapshot(row) if row is not None else None


def list_snapshots(connection: Connection, tenant_id: str) -> list[ConnectorSnapshot]:
    """Return all of the tenant's snapshots, oldest first."""
    rows = connection.execute(
        select(connector_snapshots)
        .where(connector_snapshots.c.tenant_id == tenant_id)
        .order_by(connector_snapshots.c.id)
    ).all()
    return [_snapshot(row) for row in rows]
