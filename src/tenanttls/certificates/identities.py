"""Allocation of each tenant's unique identity: a label and the name ``<label>.<zone>``.

The `identities` table is the record of every label ever handed out. Rows are never
deleted: `release` only stamps ``released_at``, so a label can never be given to a
second tenant, even after the first one left.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from tenanttls.certificates.names import new_label, unique_name
from tenanttls.clock import Clock
from tenanttls.domain.names import validate_domain_name, validate_tenant_id
from tenanttls.errors import NotFoundError, StoreError
from tenanttls.store.schema import identities

logger = logging.getLogger(__name__)

# Collisions of 130 random bits do not happen in practice. The retries cover a
# concurrent insert or a broken random source, and then raise StoreError.
_MAX_ALLOCATION_ATTEMPTS = 5


@dataclass(frozen=True)
class Identity:
    """A tenant's unique identity: its label and the certificate name built from it."""

    tenant_id: str
    label: str
    name: str
    created_at: datetime | None = None
    released_at: datetime | None = None


class IdentityService:
    """Allocate and look up tenants' identities in the store."""

    def __init__(self, engine: Engine, zone: str, clock: Clock) -> None:
        self._engine = engine
        self._zone = validate_domain_name(zone, what="provider zone")
        self._clock = clock

    @property
    def zone(self) -> str:
        """The provider's zone that new names are allocated under."""
        return self._zone

    def allocate(self, tenant_id: str) -> Identity:
        """Return the tenant's identity, allocating a new random label on first use.

        Idempotent: a tenant that already has an identity gets the stored one, with
        its original zone, even if the zone setting changed since. A released
        identity is taken back into use by the same tenant.
        """
        tenant_id = validate_tenant_id(tenant_id)

        existing = self._find(tenant_id)
        if existing is not None:
            return self._reactivate(existing)

        for attempt in range(1, _MAX_ALLOCATION_ATTEMPTS + 1):
            identity = self._try_insert(tenant_id)
            if identity is not None:
                logger.info("identity allocated: tenant=%s name=%s", tenant_id, identity.name)
                return identity

            # The insert failed on a unique constraint. Either another worker allocated
            # this tenant at the same moment, or the label was taken.
            existing = self._find(tenant_id)
            if existing is not None:
                return self._reactivate(existing)
            logger.warning("identity label collision, retrying: tenant=%s attempt=%d", tenant_id, attempt)

        raise StoreError(
            f"could not allocate a unique label for tenant {tenant_id} after {_MAX_ALLOCATION_ATTEMPTS} "
            "attempts; check the database's unique constraints on identities.label and identities.name"
        )

    def get(self, tenant_id: str) -> Identity:
        """Return the tenant's identity, or raise `NotFoundError` when none was allocated."""
        tenant_id = validate_tenant_id(tenant_id)
        identity = self._find(tenant_id)
        if identity is None:
            raise NotFoundError(
                f"tenant {tenant_id} has no unique identity yet; run 'tenanttls upgrade {tenant_id}' "
                "and a 'tenanttls worker', which allocates it"
            )
        return identity

    def find_by_name(self, name: str) -> Identity | None:
        """Return the identity whose unique name is `name` (any case), or None."""
        name = validate_domain_name(name, what="unique name")
        with self._engine.connect() as connection:
            row = connection.execute(select(identities).where(identities.c.name == name)).first()
        return _identity_from_row(row) if row is not None else None

    def release(self, tenant_id: str) -> Identity:
        """Mark the tenant's identity released (the tenant left). The label stays reserved."""
        identity = self.get(tenant_id)
        if identity.released_at is not None:
            return identity

        now = self._clock.now()
        with self._engine.begin() as connection:
            connection.execute(
                update(identities).where(identities.c.tenant_id == identity.tenant_id).values(released_at=now)
            )
        logger.info("identity released: tenant=%s name=%s", identity.tenant_id, identity.name)
        return self.get(tenant_id)

    def _find(self, tenant_id: str) -> Identity | None:
        with self._engine.connect() as connection:
            return _find(connection, tenant_id)

    def _try_insert(self, tenant_id: str) -> Identity | None:
        """Insert a new random label for the tenant; return None on a unique-constraint conflict."""
        label = new_label()
        name = unique_name(label, self._zone)
        now = self._clock.now()
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    identities.insert().values(label=label, tenant_id=tenant_id, name=name, created_at=now)
                )
        except IntegrityError:
            return None
        return Identity(tenant_id=tenant_id, label=label, name=name, created_at=now)

    def _reactivate(self, identity: Identity) -> Identity:
        if identity.released_at is None:
            return identity

        with self._engine.begin() as connection:
            connection.execute(
                update(identities).where(identities.c.tenant_id == identity.tenant_id).values(released_at=None)
            )
        logger.info("identity taken back into use: tenant=%s name=%s", identity.tenant_id, identity.name)
        return Identity(identity.tenant_id, identity.label, identity.name, identity.created_at, None)


def _find(connection: Connection, tenant_id: str) -> Identity | None:
    row = connection.execute(select(identities).where(identities.c.tenant_id == tenant_id)).first()
    return _identity_from_row(row) if row is not None else None


def _identity_from_row(row) -> Identity:
    return Identity(
        tenant_id=row.tenant_id,
        label=row.label,
        name=row.name,
        created_at=row.created_at,
        released_at=row.released_at,
    )
