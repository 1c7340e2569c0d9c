"""`CertificateService`: issue, check, store, hand to the relay, and renew tenants' certificates.

A renewal stores the new certificate, marks the old row ``superseded`` and points
the tenant's relay assignment (unique mode) at the new row in one transaction, so
the relay switches atomically and the name never changes. Which certificates are
due, and how many orders fit the CA's rate limits, is `RenewalSchedule`'s decision
(`tenanttls.certificates.renewal`). Orders are at least ``3600 / orders_per_hour``
seconds apart.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from tenanttls.certificates import repository
from tenanttls.certificates.issuer import IssuedCertificate, Issuer, check_certificate
from tenanttls.certificates.keystore import KeyStore, write_private_file
from tenanttls.certificates.renewal import HOUR, Renewal, RenewalFailure, RenewalReport, RenewalSchedule
from tenanttls.certificates.repository import StoredCertificate
from tenanttls.clock import Clock
from tenanttls.domain.names import validate_domain_name, validate_tenant_id
from tenanttls.errors import NotFoundError, TenantTlsError

__all__ = ["CertificateService", "Renewal", "RenewalFailure", "RenewalReport"]

logger = logging.getLogger(__name__)


class CertificateService:
    """Keep one valid certificate per tenant, with its key encrypted in the store."""

    def __init__(
        self,
        engine: Engine,
        issuer: Issuer,
        keystore: KeyStore,
        clock: Clock,
        renewal_fraction: float = 1 / 3,
        orders_per_hour: int = 300,
    ) -> None:
        self.schedule = RenewalSchedule(engine, clock, issuer.backend, renewal_fraction, orders_per_hour)
        self._engine = engine
        self._issuer = issuer
        self._keystore = keystore
        self._clock = clock
        self.renewal_fraction = renewal_fraction
        self.orders_per_hour = orders_per_hour
        self._failed_orders: deque[datetime] = deque()
        self._last_order_at: datetime | None = None

    def active_certificate(self, tenant_id: str) -> StoredCertificate | None:
        """Return the tenant's active certificate, or None."""
        tenant_id = validate_tenant_id(tenant_id)
        with self._engine.connect() as connection:
            return repository.find_active(connection, tenant_id)

    def ensure_certificate(self, tenant_id: str, name: str) -> StoredCertificate:
        """Return the tenant's active certificate for `name`, issuing one when none is usable.

        Idempotent: an active certificate for `name` outside its renewal window is
        returned as it is. Otherwise a new one is issued, checked and stored, and
        it replaces the old one (renewal) as `renew` does.
        """
        tenant_id = validate_tenant_id(tenant_id)
        name = validate_domain_name(name, what="certificate name")

        active = self.active_certificate(tenant_id)
        if active is not None and active.name == name and not self.is_due(active):
            return active
        return self._issue_and_store(tenant_id, name, replacing=active)

    def renew(self, tenant_id: str) -> StoredCertificate:
        """Renew the tenant's active certificate now, whatever its renewal time; the name stays."""
        tenant_id = validate_tenant_id(tenant_id)
        active = self.active_certificate(tenant_id)
        if active is None:
            raise NotFoundError(f"tenant {tenant_id} has no active certificate to renew; issue one first")
        return self._issue_and_store(tenant_id, active.name, replacing=active)

    def load_key_pair(self, certificate_id: int) -> tuple[str, str]:
        """Return the chain and the decrypted private key (both PEM) of a stored certificate.

        The relay calls this to present the certificate; the key must stay in memory
        or in a file written by `write_key_pair`.
        """
        with self._engine.connect() as connection:
            found = repository.find_certificate(connection, certificate_id)
        if found is None:
            raise NotFoundError(f"certificate {certificate_id} not found in the store")

        certificate, ciphertext = found
        key_pem = self._keystore.decrypt(ciphertext, certificate.name.encode())
        return certificate.chain_pem, key_pem.decode("ascii")

    def write_key_pair(self, certificate_id: int, directory: Path) -> tuple[Path, Path]:
        """Write ``<id>.chain.pem`` and ``<id>.key.pem`` (both mode 0600) to `directory` and return their paths."""
        chain_pem, key_pem = self.load_key_pair(certificate_id)
        chain_path = Path(directory) / f"{certificate_id}.chain.pem"
        key_path = Path(directory) / f"{certificate_id}.key.pem"
        write_private_file(chain_path, chain_pem.encode("ascii"))
        write_private_file(key_path, key_pem.encode("ascii"))
        return chain_path, key_path

    def renewal_time(self, certificate: StoredCertificate) -> datetime:
        """Return when `certificate` enters its renewal window."""
        return self.schedule.renewal_time(certificate)

    def is_due(self, certificate: StoredCertificate) -> bool:
        """Return True when `certificate` is inside its renewal window (or expired)."""
        return self.schedule.is_due(certificate)

    def renew_due(self, limit: int | None = None, *, dry_run: bool = False) -> RenewalReport:
        """Renew the active certificates inside their renewal window, most urgent first.

        At most `limit` orders (when given) and the orders-per-hour budget are used;
        the rest are reported as deferred. Certificates of released identities are
        reported as released and not renewed. With `dry_run` nothing is ordered and
        the report lists what is due and what would be deferred. Raises
        `ConfigurationError`, before any order, when the stored keys were encrypted
        under another key-encryption key.
        """
        report = self.schedule.plan(limit, recent_failures=self._recent_failures())
        if dry_run:
            return report

        renewing = report.due[: len(report.due) - len(report.deferred)]
        if renewing:
            self._check_key_encryption_key()
        for certificate in renewing:
            self._renew_one(certificate, report)
        return report

    def _renew_one(self, certificate: StoredCertificate, report: RenewalReport) -> None:
        assert certificate.tenant_id is not None
        self._wait_for_order_slot()
        try:
            renewed = self._issue_and_store(certificate.tenant_id, certificate.name, replacing=certificate)
        except TenantTlsError as error:
            logger.error(
                "renewal failed: tenant=%s name=%s certificate=%d error=%s",
                certificate.tenant_id, certificate.name, certificate.id, error,
            )
            report.failed.append(RenewalFailure(certificate.tenant_id, certificate.name, str(error)))
            return

        report.renewed.append(
            Renewal(certificate.tenant_id, certificate.name, certificate.id, renewed.id, renewed.not_after)
        )

    def _issue_and_store(self, tenant_id: str, name: str, replacing: StoredCertificate | None) -> StoredCertificate:
        """Issue, check and store a certificate for `name`, replacing `replacing` atomically.

        The key-encryption key is checked against the stored keys before the order,
        so a wrong one costs no order at the CA.
        """
        self._check_key_encryption_key()
        self._last_order_at = self._clock.now()
        try:
            issued = self._issuer.issue(name)
            warnings = check_certificate(
                issued, name, self._issuer.trust_roots(), self._window(issued), now=self._clock.now()
            )
        except TenantTlsError:
            self._failed_orders.append(self._clock.now())
            raise

        stored = self._store(tenant_id, issued, replacing)
        logger.info(
            "certificate stored: tenant=%s name=%s certificate=%d serial=%s not_after=%s replaced=%s warnings=%d",
            tenant_id, name, stored.id, stored.serial, stored.not_after.isoformat(),
            replacing.id if replacing else None, len(warnings),
        )
        return stored

    def _store(self, tenant_id: str, issued: IssuedCertificate, replacing: StoredCertificate | None) -> StoredCertificate:
        ciphertext = self._keystore.encrypt(issued.key_pem.encode("ascii"), issued.name.encode())
        now = self._clock.now()

        # NOTE: on PostgreSQL two processes issuing a tenant's first certificate at the same
        # moment could both insert an active row. The engine's per-tenant lease prevents
        # that, and find_active then returns the newer row.
        with self._engine.execution_options(sqlite_immediate=True).begin() as connection:
            current = repository.find_active(connection, tenant_id)
            if replacing is not None and current is not None and current.id != replacing.id:
                # Another worker replaced it first; keep theirs and drop ours.
                logger.info("certificate already replaced: tenant=%s certificate=%d", tenant_id, current.id)
                return current
            if replacing is None and current is not None and current.name == issued.name:
                logger.info("certificate already issued: tenant=%s certificate=%d", tenant_id, current.id)
                return current

            if current is not None:
                repository.supersede(connection, current.id)
            certificate_id = repository.insert_certificate(connection, tenant_id, issued, ciphertext, now)
            repository.point_relay_at(connection, tenant_id, certificate_id, issued.name, now)
            stored = repository.find_certificate(connection, certificate_id)

        assert stored is not None
        return stored[0]

    def _check_key_encryption_key(self) -> None:
        with self._engine.connect() as connection:
            counts = repository.count_key_ids(connection)
        self._keystore.check_stored_key_ids(counts)

    def _window(self, issued: IssuedCertificate) -> timedelta:
        return (issued.not_after - issued.not_before) * self.renewal_fraction

    def _recent_failures(self) -> int:
        """Return the failed orders of the last hour, which the store does not record."""
        since = self._clock.now() - HOUR
        while self._failed_orders and self._failed_orders[0] < since:
            self._failed_orders.popleft()
        return len(self._failed_orders)

    def _wait_for_order_slot(self) -> None:
        """Sleep on the clock until the minimum interval since the last order has passed."""
        interval = HOUR / self.orders_per_hour
        last = self._last_order_at or self.schedule.newest_order()
        if last is None:
            return
        wait = (last + interval - self._clock.now()).total_seconds()
        if wait > 0:
            logger.debug("renewal waits for the order interval: seconds=%.1f", wait)
            self._clock.sleep(wait)
