"""Data access for certificates and ACME accounts (SQLAlchemy Core on a given connection).

A certificate row is ``active`` (the one the relay presents for the tenant) until a
renewal replaces it. Then it becomes ``superseded`` and is kept for audit and
rollback. `CertificateService` keeps at most one ``active`` row per tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, literal_column, select, update
from sqlalchemy.engine import Connection

from tenanttls.certificates.issuer import IssuedCertificate
from tenanttls.certificates.keystore import KEY_ID_PREFIX_LENGTH, key_id_of
from tenanttls.store.schema import acme_accounts, certificates, identities, relay_assignments

ACTIVE = "active"
SUPERSEDED = "superseded"
UNIQUE_MODE = "unique"


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate row without its private key, which `CertificateService.load_key_pair` decrypts."""

    id: int
    tenant_id: str | None
    name: str
    chain_pem: str
    serial: str
    not_before: datetime
    not_after: datetime
    backend: str
    status: str
    created_at: datetime

    @property
    def lifetime(self):
        """The validity period, from not before to not after."""
        return self.not_after - self.not_before


@dataclass(frozen=True)
class AcmeAccount:
    """An ACME account: its encrypted key and its URL at the CA."""

    directory_url: str
    key_ciphertext: bytes
    account_uri: str | None


def insert_certificate(
    connection: Connection, tenant_id: str | None, issued: IssuedCertificate, key_ciphertext: bytes, now: datetime
) -> int:
    """Insert `issued` as an active certificate and return its id."""
    result = connection.execute(
        insert(certificates).values(
            tenant_id=tenant_id,
            name=issued.name,
            chain_pem=issued.chain_pem,
            key_ciphertext=key_ciphertext,
            serial=issued.serial,
            not_before=issued.not_before,
            not_after=issued.not_after,
            backend=issued.backend,
            status=ACTIVE,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def find_active(connection: Connection, tenant_id: str) -> StoredCertificate | None:
    """Return the tenant's active certificate, the newest if several exist, or None."""
    row = connection.execute(
        select(certificates)
        .where(certificates.c.tenant_id == tenant_id, certificates.c.status == ACTIVE)
        .order_by(certificates.c.id.desc())
        .limit(1)
    ).first()
    return _stored(row) if row is not None else None


def find_certificate(connection: Connection, certificate_id: int) -> tuple[StoredCertificate, bytes] | None:
    """Return the certificate with `certificate_id` and its key ciphertext, or None."""
    row = connection.execute(select(certificates).where(certificates.c.id == certificate_id)).first()
    if row is None:
        return None
    return _stored(row), row.key_ciphertext


def list_active(connection: Connection) -> list[StoredCertificate]:
    """Return every active certificate that belongs to a tenant, soonest expiry first."""
    rows = connection.execute(
        select(certificates)
        .where(certificates.c.status == ACTIVE, certificates.c.tenant_id.is_not(None))
        .order_by(certificates.c.not_after, certificates.c.id)
    ).all()
    return [_stored(row) for row in rows]


def released_tenant_ids(connection: Connection) -> set[str]:
    """Return the ids of the tenants whose identity is released (the tenant left)."""
    return set(connection.execute(select(identities.c.tenant_id).where(identities.c.released_at.is_not(None))).scalars())


def supersede(connection: Connection, certificate_id: int) -> bool:
    """Mark an active certificate superseded; return False when it was not active (another worker won)."""
    result = connection.execute(
        update(certificates)
        .where(certificates.c.id == certificate_id, certificates.c.status == ACTIVE)
        .values(status=SUPERSEDED)
    )
    return result.rowcount == 1


def point_relay_at(connection: Connection, tenant_id: str, certificate_id: int, name: str, now: datetime) -> int:
    """Point the tenant's relay assignment at `certificate_id` if it is in unique mode; return rows changed.

    A tenant still in legacy mode keeps presenting the shared certificate: the
    switch to the unique one is the upgrade's decision, not the renewal's.
    """
    result = connection.execute(
        update(relay_assignments)
        .where(relay_assignments.c.tenant_id == tenant_id, relay_assignments.c.mode == UNIQUE_MODE)
        .values(
            certificate_id=certificate_id,
            certificate_name=name,
            changed_at=now,
            version=relay_assignments.c.version + 1,
        )
    )
    return result.rowcount


def count_created_since(connection: Connection, since: datetime, backend: str) -> int:
    """Return how many certificates of `backend` were stored at or after `since`."""
    return connection.execute(
        select(func.count())
        .select_from(certificates)
        .where(certificates.c.created_at >= since, certificates.c.backend == backend)
    ).scalar_one()


def count_key_ids(connection: Connection) -> dict[str, int]:
    """Return how many stored private keys (certificates of any status and ACME accounts) use each key id.

    Keys in a format without a key id are left out.
    """
    counts: dict[str, int] = {}
    for table in (certificates, acme_accounts):
        # Literal positions, because PostgreSQL matches the GROUP BY expression to the
        # selected one only when no bound parameters differ between them.
        prefix = func.substr(table.c.key_ciphertext, literal_column("1"), literal_column(str(KEY_ID_PREFIX_LENGTH)))
        for head, count in connection.execute(select(prefix, func.count()).group_by(prefix)):
            key_id = key_id_of(bytes(head)) if head is not None else None
            if key_id is not None:
                counts[key_id] = counts.get(key_id, 0) + count
    return counts


def list_certificate_keys(connection: Connection) -> list[tuple[int, str, bytes]]:
    """Return the id, name and key ciphertext of every certificate, whatever its status."""
    rows = connection.execute(
        select(certificates.c.id, certificates.c.name, certificates.c.key_ciphertext).order_by(certificates.c.id)
    ).all()
    return [(int(row.id), row.name, bytes(row.key_ciphertext)) for row in rows]


def replace_certificate_key(connection: Connection, certificate_id: int, key_ciphertext: bytes) -> None:
    """Store a new ciphertext of the same private key for `certificate_id`."""
    connection.execute(
        update(certificates).where(certificates.c.id == certificate_id).values(key_ciphertext=key_ciphertext)
    )


def list_accounts(connection: Connection) -> list[AcmeAccount]:
    """Return every stored ACME account."""
    rows = connection.execute(select(acme_accounts).order_by(acme_accounts.c.directory_url)).all()
    return [AcmeAccount(row.directory_url, bytes(row.key_ciphertext), row.account_uri) for row in rows]


def replace_account_key(connection: Connection, directory_url: str, key_ciphertext: bytes) -> None:
    """Store a new ciphertext of the same account key for `directory_url`."""
    connection.execute(
        update(acme_accounts).where(acme_accounts.c.directory_url == directory_url).values(key_ciphertext=key_ciphertext)
    )


def find_account(connection: Connection, directory_url: str) -> AcmeAccount | None:
    """Return the ACME account kept for `directory_url`, or None."""
    row = connection.execute(select(acme_accounts).where(acme_accounts.c.directory_url == directory_url)).first()
    if row is None:
        return None
    return AcmeAccount(row.directory_url, row.key_ciphertext, row.account_uri)


def save_account(
    connection: Connection, directory_url: str, key_ciphertext: bytes, account_uri: str | None, now: datetime
) -> None:
    """Insert or update the ACME account for `directory_url`."""
    if find_account(connection, directory_url) is None:
        connection.execute(
            insert(acme_accounts).values(
                directory_url=directory_url, key_ciphertext=key_ciphertext, account_uri=account_uri, created_at=now
            )
        )
        return
    connection.execute(
        update(acme_accounts)
        .where(acme_accounts.c.directory_url == directory_url)
        .values(key_ciphertext=key_ciphertext, account_uri=account_uri)
    )


def _stored(row) -> StoredCertificate:
    return StoredCertificate(
        id=int(row.id),
        tenant_id=row.tenant_id,
        name=row.name,
        chain_pem=row.chain_pem,
        serial=row.serial,
        not_before=row.not_before,
        not_after=row.not_after,
        backend=row.backend,
        status=row.status,
        created_at=row.created_at,
    )
