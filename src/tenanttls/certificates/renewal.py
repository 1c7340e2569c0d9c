"""`RenewalSchedule`: which certificates are due for renewal, and how many orders fit now.

A certificate is due once less than `renewal_fraction` of its lifetime is left (a
third by default: day 60 of a 90-day certificate). Orders respect the CA's rate
limits: at most `orders_per_hour` in any sliding hour, so due certificates beyond
that are deferred to a later pass. A certificate whose tenant's identity is
released (the tenant left) is never renewed.

Planning reads the store only. It needs no issuer and no key-encryption key, so a
dry run works without either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tenanttls.certificates import repository
from tenanttls.certificates.repository import StoredCertificate
from tenanttls.clock import Clock
from tenanttls.errors import ConfigurationError
from tenanttls.store.schema import certificates

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Renewal:
    """One renewed certificate: the tenant, the unchanged name, and the old and new rows."""

    tenant_id: str
    name: str
    old_certificate_id: int
    new_certificate_id: int
    not_after: datetime


@dataclass(frozen=True)
class RenewalFailure:
    """A renewal that failed; the old certificate stays active."""

    tenant_id: str
    name: str
    error: str


@dataclass
class RenewalReport:
    """The result of one renewal pass.

    `due` lists the certificates inside their renewal window, `deferred` those of
    them left for a later pass by the order limit, and `released` the certificates
    inside their window whose tenant's identity is released, which are not renewed.
    """

    due: list[StoredCertificate] = field(default_factory=list)
    renewed: list[Renewal] = field(default_factory=list)
    failed: list[RenewalFailure] = field(default_factory=list)
    deferred: list[StoredCertificate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    released: list[StoredCertificate] = field(default_factory=list)


class RenewalSchedule:
    """Decide which active certificates are due and how many orders the rate limit allows now."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        backend: str,
        renewal_fraction: float = 1 / 3,
        orders_per_hour: int = 300,
    ) -> None:
        if not 0 < renewal_fraction < 1:
            raise ConfigurationError(
                f"invalid renewal_fraction {renewal_fraction}: use a fraction of the lifetime between 0 and 1, "
                "such as 0.33"
            )
        if orders_per_hour < 1:
            raise ConfigurationError(f"invalid orders_per_hour {orders_per_hour}: use 1 or more, such as 300")
        self._engine = engine
        self._clock = clock
        self.backend = backend
        self.renewal_fraction = renewal_fraction
        self.orders_per_hour = orders_per_hour

    def renewal_time(self, certificate: StoredCertificate) -> datetime:
        """Return when `certificate` enters its renewal window."""
        return certificate.not_after - certificate.lifetime * self.renewal_fraction

    def is_due(self, certificate: StoredCertificate) -> bool:
        """Return True when `certificate` is inside its renewal window (or expired)."""
        return self._clock.now() >= self.renewal_time(certificate)

    def plan(self, limit: int | None = None, *, recent_failures: int = 0) -> RenewalReport:
        """Return the due certificates, most urgent first, with those beyond the order limit deferred.

        `limit` caps the orders of this pass. `recent_failures` counts failed orders
        of the last hour that the store does not record, because they use the CA's
        rate limit too.
        """
        with self._engine.connect() as connection:
            active = [certificate for certificate in repository.list_active(connection) if self.is_due(certificate)]
            released_tenants = repository.released_tenant_ids(connection)

        due = [certificate for certificate in active if certificate.tenant_id not in released_tenants]
        released = [certificate for certificate in active if certificate.tenant_id in released_tenants]
        allowed = min(len(due), self.order_budget(recent_failures))
        if limit is not None:
            allowed = min(allowed, max(0, limit))

        report = RenewalReport(due=due, deferred=due[allowed:], released=released)
        if report.deferred:
            logger.info(
                "renewal deferred by the order limit: deferred=%d orders_per_hour=%d",
                len(report.deferred), self.orders_per_hour,
            )
        if released:
            logger.info("renewal skipped, identity released: certificates=%d", len(released))
        return report

    def order_budget(self, recent_failures: int = 0) -> int:
        """Return how many more orders fit in the sliding hour."""
        since = self._clock.now() - HOUR
        with self._engine.connect() as connection:
            stored = repository.count_created_since(connection, since, self.backend)
        return max(0, self.orders_per_hour - stored - recent_failures)

    def newest_order(self) -> datetime | None:
        """Return when the newest certificate of this backend was stored, or None."""
        with self._engine.connect() as connection:
            return connection.execute(
                select(func.max(certificates.c.created_at)).where(certificates.c.backend == self.backend)
            ).scalar_one()
