"""Read-only queries behind the operator view: the fleet table and a tenant's audit trail.

Pages use keyset pagination: the fleet is ordered by initial domain (unique and
indexed), and a page starts after the last domain of the previous one, so page 2,000
costs the same as page 1. The state filter uses the ``(state, next_attempt_at)`` index
of `upgrades`. The search (`tenanttls.portal.search`) matches prefixes through the
unique indexes on ``tenants.initial_domain``, ``identities.name`` and ``tenants.tenant_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from tenanttls.portal import search
from tenanttls.store.schema import audit_events, identities, tenants, upgrades

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# A state held by at least 1/COMMON_STATE_DIVISOR of the tenants counts as common (see _state_condition).
COMMON_STATE_DIVISOR = 20


@dataclass(frozen=True)
class FleetQuery:
    """The operator's filters: upgrade state, search text, keyset cursor and page size."""

    state: str | None = None
    search: str | None = None
    after: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class FleetRow:
    """One tenant in the fleet table."""

    tenant_id: str
    initial_domain: str
    display_name: str
    state: str | None
    requested: bool
    attempts: int
    next_attempt_at: datetime | None
    grace_until: datetime | None
    last_error: str | None
    stop_kind: str | None
    updated_at: datetime | None
    unique_name: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "initial_domain": self.initial_domain,
            "display_name": self.display_name,
            "state": self.state,
            "requested": self.requested,
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at),
            "grace_until": _iso(self.grace_until),
            "last_error": self.last_error,
            "stop_kind": self.stop_kind,
            "updated_at": _iso(self.updated_at),
            "unique_name": self.unique_name,
        }


@dataclass(frozen=True)
class FleetPage:
    """One page of the fleet: rows, the cursor of the next page (None on the last) and counts.

    `matching` counts the tenants that match the filters. A search counts at most
    `search.COUNT_CAP` of them, and `matching_capped` is True when more match.
    """

    rows: list[FleetRow]
    next_after: str | None
    matching: int
    counts_by_state: dict[str, int]
    matching_capped: bool = False


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _conditions(query: FleetQuery, counts: dict[str, int]) -> list:
    return [_state_condition(query.state, counts)] if query.state else []


def _state_condition(state: str, counts: dict[str, int]):
    """Return the filter on the upgrade state, written so the database picks the cheaper plan.

    For a rare state, the ``(state, next_attempt_at)`` index finds the few rows, which
    are then sorted. For a common state (one tenant in 20 or more), walking the
    initial-domain index in order finds a page within a few hundred rows, while the
    state index would sort tens of thousands. SQLite keeps no statistics per value, so
    the choice is made here: wrapping the column in COALESCE keeps the state index
    out of the plan.
    """
    total = sum(counts.values())
    if total and counts.get(state, 0) * COMMON_STATE_DIVISOR >= total:
        return func.coalesce(upgrades.c.state, "") == state
    return upgrades.c.state == state


def _joined():
    return tenants.outerjoin(upgrades, upgrades.c.tenant_id == tenants.c.tenant_id).outerjoin(
        identities, identities.c.tenant_id == tenants.c.tenant_id
    )


def _rows_statement():
    return select(
        tenants.c.tenant_id,
        tenants.c.initial_domain,
        tenants.c.display_name,
        upgrades.c.state,
        upgrades.c.requested,
        upgrades.c.attempts,
        upgrades.c.next_attempt_at,
        upgrades.c.grace_until,
        upgrades.c.last_error,
        upgrades.c.stop_kind,
        upgrades.c.updated_at,
        identities.c.name.label("unique_name"),
    ).select_from(_joined())


def query_fleet(connection: Connection, query: FleetQuery) -> FleetPage:
    """Return one page of tenants matching `query`, ordered by initial domain."""
    page_size = max(1, min(query.page_size, MAX_PAGE_SIZE))
    counts = counts_by_state(connection)
    if query.search:
        return _search_page(connection, query, counts, page_size)

    statement = _rows_statement().where(*_conditions(query, counts)).order_by(tenants.c.initial_domain).limit(page_size + 1)
    if query.after:
        statement = statement.where(tenants.c.initial_domain > query.after)

    rows = [_row(row) for row in connection.execute(statement).all()]
    next_after = rows[page_size - 1].initial_domain if len(rows) > page_size else None
    return FleetPage(rows=rows[:page_size], next_after=next_after, matching=_count(connection, query, counts), counts_by_state=counts)


def _search_page(connection: Connection, query: FleetQuery, counts: dict[str, int], page_size: int) -> FleetPage:
    """Return one page of a search: the page's ids first, then their full rows."""
    text = query.search.strip().lower()
    state_condition = _state_condition(query.state, counts) if query.state else None
    ids = search.page_ids(connection, text, state_condition, query.after, page_size + 1)

    statement = _rows_statement().where(tenants.c.tenant_id.in_(ids)).order_by(tenants.c.initial_domain)
    rows = [_row(row) for row in connection.execute(statement).all()] if ids else []
    next_after = rows[page_size - 1].initial_domain if len(rows) > page_size else None
    matching, capped = search.count_matches(connection, text, state_condition)
    return FleetPage(rows=rows[:page_size], next_after=next_after, matching=matching, counts_by_state=counts, matching_capped=capped)


def _row(row) -> FleetRow:
    return FleetRow(
        tenant_id=row.tenant_id,
        initial_domain=row.initial_domain,
        display_name=row.display_name,
        state=row.state,
        requested=bool(row.requested),
        attempts=row.attempts or 0,
        next_attempt_at=row.next_attempt_at,
        grace_until=row.grace_until,
        last_error=row.last_error,
        stop_kind=row.stop_kind,
        updated_at=row.updated_at,
        unique_name=row.unique_name,
    )


def counts_by_state(connection: Connection) -> dict[str, int]:
    """Return the number of tenants in each upgrade state (an index-only scan of `upgrades`)."""
    rows = connection.execute(select(upgrades.c.state, func.count()).group_by(upgrades.c.state)).all()
    return {state: count for state, count in rows}


def _count(connection: Connection, query: FleetQuery, counts: dict[str, int]) -> int:
    """Return the number of tenants matching the state filter, or all tenants."""
    if query.state:
        return counts.get(query.state, 0)
    return connection.execute(select(func.count()).select_from(tenants)).scalar_one()


@dataclass(frozen=True)
class AuditPage:
    """The newest audit events of a tenant, newest first, and the cursor of older ones."""

    events: list[dict[str, Any]]
    before_id: int | None


def query_audit_trail(connection: Connection, tenant_id: str, *, before_id: int | None = None, limit: int = 100) -> AuditPage:
    """Return up to `limit` audit events of the tenant, newest first, older than `before_id`.

    Events are ordered by id, the order in which they were recorded.
    """
    statement = (
        select(audit_events)
        .where(audit_events.c.tenant_id == tenant_id)
        .order_by(audit_events.c.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        statement = statement.where(audit_events.c.id < before_id)

    rows = connection.execute(statement).all()
    events = [
        {
            "id": row.id,
            "at": row.at,
            "actor": row.actor,
            "action": row.action,
            "step": row.step,
            "before": row.before,
            "after": row.after,
            "correlation_id": row.correlation_id,
            "detail": row.detail,
        }
        for row in rows[:limit]
    ]
    return AuditPage(events=events, before_id=events[-1]["id"] if len(rows) > limit else None)
