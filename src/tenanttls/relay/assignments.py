"""Read-only access to the tenants' relay assignments, cached for a short time.

The engine switches a tenant by updating its `relay_assignments` row (mode, certificate,
`version` + 1) in one transaction. The relay reads the row again once its cached copy
is older than `max_age` seconds, so a switch takes effect without a restart, at the
latest `max_age` seconds after it was committed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from tenanttls.errors import StoreError
from tenanttls.relay.settings import SMART_HOST_SETTING, SMTP_PORT, parse_host_port
from tenanttls.store.schema import relay_assignments, tenants

logger = logging.getLogger(__name__)

LEGACY = "legacy"
UNIQUE = "unique"
MAIL_PROTECTION_SUFFIX = "mail.protection.outlook.com"


@dataclass(frozen=True)
class Assignment:
    """The certificate the relay presents for a tenant, and where it delivers the tenant's mail."""

    tenant_id: str
    initial_domain: str
    smart_host: str | None  # from the store; None means the Exchange Online default
    mode: str  # "legacy" or "unique"
    certificate_name: str
    certificate_id: int | None  # None for the legacy certificate
    version: int
    changed_at: datetime

    def destination(self, override: str | None = None) -> tuple[str, int]:
        """Return the smart host (host, port): `override`, the store's value, or Exchange's default.

        The default is ``<initial domain label>.mail.protection.outlook.com``, the host
        that Microsoft suggests as the smart host for a tenant.
        """
        if override:
            return parse_host_port(override, label=SMART_HOST_SETTING)
        if self.smart_host:
            return parse_host_port(self.smart_host, label=f"smart host of tenant {self.tenant_id} in the store")
        label = self.initial_domain.split(".", 1)[0]
        return f"{label}.{MAIL_PROTECTION_SUFFIX}", SMTP_PORT

    def certificate_key(self) -> tuple[str, int | None]:
        """Return a key that differs for each certificate the relay can present."""
        return (self.mode, self.certificate_id if self.mode == UNIQUE else None)


_QUERY = select(
    relay_assignments.c.tenant_id,
    relay_assignments.c.mode,
    relay_assignments.c.certificate_name,
    relay_assignments.c.certificate_id,
    relay_assignments.c.version,
    relay_assignments.c.changed_at,
    tenants.c.initial_domain,
    tenants.c.smart_host,
).join(tenants, tenants.c.tenant_id == relay_assignments.c.tenant_id)


def _assignment(row) -> Assignment:
    return Assignment(
        tenant_id=row.tenant_id,
        initial_domain=row.initial_domain,
        smart_host=row.smart_host,
        mode=row.mode,
        certificate_name=row.certificate_name,
        certificate_id=row.certificate_id,
        version=row.version,
        changed_at=row.changed_at,
    )


class AssignmentReader:
    """Relay assignments from the store, each cached for `max_age` seconds. Thread-safe.

    With `max_age` 0 every lookup reads the store.
    """

    def __init__(self, engine: Engine, *, max_age: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._max_age = max_age
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Assignment | None]] = {}

    @property
    def max_age(self) -> float:
        """Seconds a cached assignment is used before it is read from the store again."""
        return self._max_age

    def get(self, tenant_id: str) -> Assignment | None:
        """Return the tenant's assignment, or None when the tenant has none.

        Raises `StoreError` when the store cannot be read; a failed read is never
        taken as "no assignment".
        """
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is not None and now - cached[0] < self._max_age:
            return cached[1]

        assignment = self._read(tenant_id)
        self._remember(tenant_id, assignment, now, previous=cached[1] if cached else None)
        return assignment

    def _read(self, tenant_id: str) -> Assignment | None:
        try:
            with self._engine.connect() as connection:
                row = connection.execute(_QUERY.where(relay_assignments.c.tenant_id == tenant_id)).first()
        except SQLAlchemyError as error:
            raise StoreError(f"failed to read the relay assignment of tenant {tenant_id}: {error.__class__.__name__}: {error}") from error
        return _assignment(row) if row is not None else None

    def _remember(self, tenant_id: str, assignment: Assignment | None, now: float, previous: Assignment | None) -> None:
        with self._lock:
            self._cache[tenant_id] = (now, assignment)
        if previous is not None and assignment is not None and previous.version != assignment.version:
            logger.info(
                "relay assignment: changed tenant=%s mode=%s certificate=%s version=%d",
                tenant_id, assignment.mode, assignment.certificate_name, assignment.version,
            )

    def load_all(self) -> int:
        """Read every assignment into the cache at once (at start) and return how many there are."""
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(_QUERY).all()
        except SQLAlchemyError as error:
            raise StoreError(f"failed to read the relay assignments: {error.__class__.__name__}: {error}") from error

        now = self._monotonic()
        with self._lock:
            for row in rows:
                self._cache[row.tenant_id] = (now, _assignment(row))
        return len(rows)

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop cached assignments (one tenant's, or all), so the next lookup reads the store."""
        with self._lock:
            if tenant_id is None:
                self._cache.clear()
            else:
                self._cache.pop(tenant_id, None)
