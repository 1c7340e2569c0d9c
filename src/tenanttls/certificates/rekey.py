"""Re-encryption of every stored private key under a new key-encryption key.

Use it to rotate the key-encryption key, or to repair a store that holds keys
under two of them: set ``key_encryption_key`` to the key to keep and run
``tenanttls identity rekey --old-key REFERENCE``. All keys change in one
transaction, so a failure leaves the store as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

from tenanttls.certificates import repository
from tenanttls.certificates.keystore import KeyStore, key_id_of
from tenanttls.errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass
class RekeyReport:
    """The result of `reencrypt_keys`: the keys re-encrypted, and those that already used the new key."""

    old_key_id: str
    new_key_id: str
    dry_run: bool
    certificate_keys: int = 0
    account_keys: int = 0
    already_new: int = 0


def reencrypt_keys(engine: Engine, old: KeyStore, new: KeyStore, *, dry_run: bool = False) -> RekeyReport:
    """Re-encrypt the stored keys encrypted with `old` under `new`, certificates and ACME accounts alike.

    Keys already under `new` stay as they are. Raises `ConfigurationError`, and
    changes nothing, when a stored key uses a third key id. A key that `old`
    cannot decrypt raises `CertificateError`, and nothing changes either.
    With `dry_run` every key is decrypted, to prove that `old` fits, but nothing is written.
    """
    report = RekeyReport(old.key_id, new.key_id, dry_run)
    with engine.execution_options(sqlite_immediate=True).begin() as connection:
        counts = repository.count_key_ids(connection)
        _check_only_two_keys(counts, old, new)
        report.already_new = counts.get(new.key_id, 0)
        if old.key_id != new.key_id:
            _reencrypt_certificates(connection, old, new, report)
            _reencrypt_accounts(connection, old, new, report)

    logger.info(
        "stored keys re-encrypted: old_key_id=%s new_key_id=%s certificate_keys=%d account_keys=%d dry_run=%s",
        old.key_id, new.key_id, report.certificate_keys, report.account_keys, dry_run,
    )
    return report


def _reencrypt_certificates(connection: Connection, old: KeyStore, new: KeyStore, report: RekeyReport) -> None:
    for certificate_id, name, ciphertext in repository.list_certificate_keys(connection):
        if key_id_of(ciphertext) != old.key_id:
            continue
        plaintext = old.decrypt(ciphertext, name.encode())
        if not report.dry_run:
            repository.replace_certificate_key(connection, certificate_id, new.encrypt(plaintext, name.encode()))
        report.certificate_keys += 1


def _reencrypt_accounts(connection: Connection, old: KeyStore, new: KeyStore, report: RekeyReport) -> None:
    for account in repository.list_accounts(connection):
        if key_id_of(account.key_ciphertext) != old.key_id:
            continue
        associated = account.directory_url.encode()
        plaintext = old.decrypt(account.key_ciphertext, associated)
        if not report.dry_run:
            repository.replace_account_key(connection, account.directory_url, new.encrypt(plaintext, associated))
        report.account_keys += 1


def _check_only_two_keys(counts: dict[str, int], old: KeyStore, new: KeyStore) -> None:
    unknown = {key_id: count for key_id, count in counts.items() if key_id not in (old.key_id, new.key_id)}
    if unknown:
        described = ", ".join(f"{key_id} ({count})" for key_id, count in sorted(unknown.items()))
        raise ConfigurationError(
            f"the store contains keys encrypted with key id {described}, which is neither the old key "
            f"({old.key_id}) nor the configured key_encryption_key ({new.key_id}); nothing was re-encrypted. "
            "Run the command once for each old key, with that key as --old-key"
        )
