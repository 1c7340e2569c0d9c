"""The `tenants` table: the customer tenants the provider serves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.store.schema import tenants


@dataclass(frozen=True)
class TenantRecord:
    """A customer tenant as the provider's store records it."""

    tenant_id: str
    initial_domain: str
    display_name: str
    smart_host: str | None = None
    created_at: datetime | None = None


def _record(row) -> TenantRecord:
    return TenantRecord(
        tenant_id=row.tenant_id,
        initial_domain=row.initial_domain,
        display_name=row.display_name,
        smart_host=row.smart_host,
        created_at=row.created_at,
    )


def find_tenant(connection: Connection, tenant_id: str) -> TenantRecord | None:
    """Return the tenant, or None when it is not in the store."""
    row = connection.execute(select(tenants).where(tenants.c.tenant_id == tenant_id)).first()
    return _record(row) if row is not None else None


def get_tenant(connection: Connection, tenant_id: str) -> TenantRecord:
    """Return the tenant, or raise `NotFoundError` naming it and the import command."""
    record = find_tenant(connection, tenant_id)
    if record is None:
        raise NotFoundError(
            f"tenant {tenant_id} is not known; check the id with 'tenanttls tenants list' "
            "or add it with 'tenanttls tenants import FILE'"
        )
    return record


def list_tenants(connection: Connection) -> list[TenantRecord]:
    """Return every tenant, ordered by initial domain."""
    rows = connection.execute(select(tenants).order_by(tenants.c.initial_domain)).all()
    return [_record(row) for row in rows]


def count_tenants(connection: Connection) -> int:
    """Return the number of tenants."""
    return connection.execute(select(func.count()).select_from(tenants)).scalar_one()


def save_tenant(connection: Connection, record: TenantRecord, now: datetime) -> str:
    """Insert the tenant or update its display name; return "added", "updated" or "unchanged".

    Raises `InvalidInput` when the initial domain already belongs to another tenant
    or when an existing tenant's initial domain would change (it never does in Microsoft 365).
    """
    owner = connection.execute(
        select(tenants.c.tenant_id).where(tenants.c.initial_domain == record.initial_domain)
    ).scalar_one_or_none()
    if owner is not None and owner != record.tenant_id:
        raise InvalidInput(
            f"initial domain {record.initial_domain} already belongs to tenant {owner}, "
            f"not to {record.tenant_id}; fix the tenant id or the domain"
        )

    existing = find_tenant(connection, record.tenant_id)
    if existing is None:
        connection.execute(
            insert(tenants).values(
                tenant_id=record.tenant_id,
                initial_domain=record.initial_domain,
                display_name=record.display_name,
                smart_host=record.smart_host,
                created_at=now,
            )
        )
        return "added"

    if existing.initial_domain != record.initial_domain:
        raise InvalidInput(
            f"tenant {record.tenant_id} has initial domain {existing.initial_domain} in the store, "
            f"not {record.initial_domain}; a tenant's initial domain never changes, so check the file"
        )
    if existing.display_name == record.display_name:
        return "unchanged"

    connection.execute(
        update(tenants).where(tenants.c.tenant_id == record.tenant_id).values(display_name=record.display_name)
    )
    return "updated"
