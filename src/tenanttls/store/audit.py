"""The `audit_events` table: who changed what, before and after, when, under which correlation id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from tenanttls.store.schema import audit_events


@dataclass(frozen=True)
class AuditEvent:
    """One recorded action: `before` and `after` are JSON values, None when not applicable."""

    tenant_id: str | None
    at: datetime
    actor: str
    action: str
    step: str | None = None
    before: Any = None
    after: Any = None
    correlation_id: str | None = None
    detail: str | None = None
    id: int | None = None


def _event(row) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        tenant_id=row.tenant_id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        step=row.step,
        before=row.before,
        after=row.after,
        correlation_id=row.correlation_id,
        detail=row.detail,
    )


# Built once, because every step records events, and a statement built per call costs
# CPU to construct and to compute its key for SQLAlchemy's compiled cache.
_INSERT_EVENT = insert(audit_events)


def record_event(connection: Connection, event: AuditEvent) -> None:
    """Append `event` to the audit trail."""
    connection.execute(
        _INSERT_EVENT,
        {
            "tenant_id": event.tenant_id,
            "at": event.at,
            "actor": event.actor,
            "action": event.action,
            "step": event.step,
            "before": event.before,
            "after": event.after,
            "correlation_id": event.correlation_id,
            "detail": event.detail,
        },
    )


def list_events(connection: Connection, tenant_id: str, *, actions: tuple[str, ...] | None = None) -> list[AuditEvent]:
    """Return the tenant's audit events in the order they happened."""
    query = select(audit_events).where(audit_events.c.tenant_id == tenant_id)
    if actions is not None:
        query = query.where(audit_events.c.action.in_(actions))
    rows = connection.execute(query.order_by(audit_events.c.at, audit_events.c.id)).all()
    return [_event(row) for row in rows]


def list_events_for(connection: Connection, tenant_ids: list[str], *, actions: tuple[str, ...]) -> dict[str, list[AuditEvent]]:
    """Return the events with `actions` of several tenants at once, grouped by tenant, in order."""
    query = (
        select(audit_events)
        .where(audit_events.c.tenant_id.in_(tenant_ids), audit_events.c.action.in_(actions))
        .order_by(audit_events.c.at, audit_events.c.id)
    )
    grouped: dict[str, list[AuditEvent]] = {tenant_id: [] for tenant_id in tenant_ids}
    for row in connection.execute(query).all():
        grouped[row.tenant_id].append(_event(row))
    return grouped
