"""The database schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Times are stored as timezone-aware UTC. JSON columns hold objects exactly as
Microsoft returned them, so a snapshot can restore every field.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Constraint names are fixed so Alembic migrations are the same on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator):
    """A timestamp that is stored in UTC and always read back timezone-aware.

    SQLite has no timestamp type: SQLAlchemy stores text without the offset and
    returns naive values. Converting to UTC on the way in keeps the stored text
    comparable in SQL (``next_attempt_at <= :now``) and the values comparable in Python.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# The maximum length of `upgrades.wait_reason` in characters.
WAIT_REASON_MAX_LENGTH = 500

# A BigInteger primary key that is still an autoincrementing INTEGER PRIMARY KEY on SQLite.
_Id = BigInteger().with_variant(Integer(), "sqlite")

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("initial_domain", String(253), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False, default=""),
    # Where the relay delivers this tenant's mail; None means <initial label>.mail.protection.outlook.com.
    Column("smart_host", String(253), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

upgrades = Table(
    "upgrades",
    metadata,
    Column("tenant_id", String(36), ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("state", String(32), nullable=False),
    Column("consent_method", String(16), nullable=True),
    Column("consented_at", UtcDateTime(), nullable=True),
    Column("requested", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("grace_until", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    # The kind of stop (`StopKind` of tenanttls.migration.outcomes) while the state is needs_attention,
    # else NULL. A worker of a tenanttls older than revision 0005 leaves it NULL when it stops a tenant.
    Column("stop_kind", String(32), nullable=True),
    # The reason of the step's last Wait while the tenant waits, truncated to WAIT_REASON_MAX_LENGTH characters
    # by update_upgrade, else NULL. Any other outcome or state change sets it to NULL.
    Column("wait_reason", String(WAIT_REASON_MAX_LENGTH), nullable=True),
    # The state to resume in after needs_attention, once an operator requests the upgrade again.
    Column("resume_state", String(32), nullable=True),
    Column("overrides", JSON, nullable=False, default=dict),
    # Stamped into the new connector's Comment and into audit events as the correlation id.
    Column("run_id", String(64), nullable=True),
    # Microsoft API calls the engine made for this tenant, for the reports.
    Column("api_calls", Integer, nullable=False, default=0),
    Column("state_entered_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False, default=0),
    Index("ix_upgrades_state_next_attempt_at", "state", "next_attempt_at"),
    # Claims read due upgrades in the order of next_attempt_at, then tenant_id, and a
    # waiting worker reads the earliest lease expiry, so neither scans the whole table.
    Index("ix_upgrades_requested_next_attempt_at", "requested", "next_attempt_at", "tenant_id"),
    Index("ix_upgrades_lease_expires_at", "lease_expires_at"),
    # When a worker last claimed the tenant's scheduled drift check; NULL before the first claim.
    Column("drift_checked_at", UtcDateTime(), nullable=True),
    # Drift claims read completed upgrades in the order of drift_checked_at.
    Index("ix_upgrades_state_drift_checked_at", "state", "drift_checked_at"),
)

identities = Table(
    "identities",
    metadata,
    # Labels are never deleted, so a label is never given to a second tenant.
    Column("label", String(63), primary_key=True),
    Column("tenant_id", String(36), nullable=False, unique=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("released_at", UtcDateTime(), nullable=True),
)

certificates = Table(
    "certificates",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(36), nullable=True, index=True),
    Column("name", String(253), nullable=False, index=True),
    Column("chain_pem", Text, nullable=False),
    # The private key, encrypted with the key-encryption key; never stored in clear.
    Column("key_ciphertext", LargeBinary, nullable=False),
    Column("serial", String(64), nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),
    Column("not_after", UtcDateTime(), nullable=False),
    Column("backend", String(16), nullable=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", UtcDateTime(), nullable=False),
)

connector_snapshots = Table(
    "connector_snapshots",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(36), nullable=False, index=True),
    Column("connector_name", String(64), nullable=False),
    # The upgrade run that took the snapshot; a later run after a rollback takes its own.
    Column("run_id", String(64), nullable=True),
    Column("connector", JSON, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("taken_at", UtcDateTime(), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(36), nullable=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("step", String(32), nullable=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("correlation_id", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    Index("ix_audit_events_tenant_id_at", "tenant_id", "at"),
)

relay_assignments = Table(
    "relay_assignments",
    metadata,
    Column("tenant_id", String(36), ForeignKey("tenants.tenant_id"), primary_key=True),
    # "legacy" presents the shared certificate; "unique" presents certificate_id.
    Column("mode", String(16), nullable=False),
    Column("certificate_name", String(253), nullable=False),
    Column("certificate_id", _Id, ForeignKey("certificates.id"), nullable=True),
    Column("changed_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False, default=0),
)

acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("directory_url", String(512), primary_key=True),
    Column("key_ciphertext", LargeBinary, nullable=False),
    Column("account_uri", String(512), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

dns_records = Table(
    "dns_records",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("zone", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("rtype", String(8), nullable=False),
    Column("ttl", Integer, nullable=False),
    Column("value", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("zone", "name", "rtype", "value"),
)

request_budgets = Table(
    "request_budgets",
    metadata,
    # A token bucket that every worker draws from before each Microsoft request.
    Column("name", String(64), primary_key=True),
    # May be negative: a caller that found the bucket empty reserved a token due later.
    Column("tokens", Double, nullable=False),
    # Seconds since the Unix epoch, on the database server's clock for PostgreSQL.
    Column("updated_at", Double, nullable=False),
)
