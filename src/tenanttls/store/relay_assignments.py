"""The `relay_assignments` table: which certificate the relay presents for each tenant.

The relay reads this table before each delivery. Mode ``legacy`` presents the
shared certificate; mode ``unique`` presents `certificate_id`. `version` grows by
one on every change, so the relay can tell a changed row from a re-read one.

On PostgreSQL every change also sends ``NOTIFY tenanttls_relay_assignments`` with the
tenant id as payload. PostgreSQL delivers it when the caller's transaction commits,
so a listening relay drops its cached copy right after the switch is durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from tenanttls.store.schema import relay_assignments

LEGACY = "legacy"
UNIQUE = "unique"
NOTIFY_CHANNEL = "tenanttls_relay_assignments"


@dataclass(frozen=True)
class RelayAssignment:
    """The certificate the relay presents for one tenant."""

    tenant_id: str
    mode: str
    certificate_name: str
    certificate_id: int | None
    changed_at: datetime
    version: int


def find_assignment(connection: Connection, tenant_id: str) -> RelayAssignment | None:
    """Return the tenant's relay assignment, or None."""
    row = connection.execute(select(relay_assignments).where(relay_assignments.c.tenant_id == tenant_id)).first()
    if row is None:
        return None
    return RelayAssignment(
        tenant_id=row.tenant_id,
        mode=row.mode,
        certificate_name=row.certificate_name,
        certificate_id=row.certificate_id,
        changed_at=row.changed_at,
        version=row.version,
    )


def ensure_legacy_assignment(connection: Connection, tenant_id: str, legacy_name: str, now: datetime) -> bool:
    """Create the tenant's assignment in legacy mode when it has none; return True when created."""
    if find_assignment(connection, tenant_id) is not None:
        return False
    connection.execute(
        insert(relay_assignments).values(
            tenant_id=tenant_id, mode=LEGACY, certificate_name=legacy_name, certificate_id=None, changed_at=now, version=0
        )
    )
    notify_relays(connection, tenant_id)
    return True


def assign_unique(
    connection: Connection, tenant_id: str, certificate_name: str, certificate_id: int, now: datetime
) -> RelayAssignment:
    """Switch the tenant to its unique certificate and return the new assignment."""
    return _assign(connection, tenant_id, UNIQUE, certificate_name, certificate_id, now)


def assign_legacy(connection: Connection, tenant_id: str, legacy_name: str, now: datetime) -> RelayAssignment:
    """Switch the tenant back to the shared certificate and return the new assignment."""
    return _assign(connection, tenant_id, LEGACY, legacy_name, None, now)


def _assign(
    connection: Connection, tenant_id: str, mode: str, name: str, certificate_id: int | None, now: datetime
) -> RelayAssignment:
    if find_assignment(connection, tenant_id) is None:
        connection.execute(
            insert(relay_assignments).values(
                tenant_id=tenant_id, mode=mode, certificate_name=name, certificate_id=certificate_id, changed_at=now, version=1
            )
        )
    else:
        connection.execute(
            update(relay_assignments)
            .where(relay_assignments.c.tenant_id == tenant_id)
            .values(
                mode=mode,
                certificate_name=name,
                certificate_id=certificate_id,
                changed_at=now,
                version=relay_assignments.c.version + 1,
            )
        )
    notify_relays(connection, tenant_id)
    assignment = find_assignment(connection, tenant_id)
    assert assignment is not None
    return assignment


def notify_relays(connection: Connection, tenant_id: str) -> None:
    """Tell listening relays, when the transaction commits, that the tenant's assignment changed (PostgreSQL only).

    SQLite has no notifications; relays on SQLite see the change when their cached copy expires.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, tenant_id)))
