"""TLS client contexts that present a tenant's certificate to its smart host.

Each context verifies the smart host's certificate and presents one client
certificate: the legacy shared one, or a tenant's unique one from the store. Contexts
are built on first use and kept in a least-recently-used cache, keyed by certificate,
so a switched tenant gets a new context and an unchanged one reuses its context.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from tenanttls.errors import CertificateError, ConfigurationError, StoreError, TenantTlsError
from tenanttls.relay.assignments import LEGACY, UNIQUE, Assignment
from tenanttls.relay.pemfiles import (
    LEGACY_CERTIFICATE,
    LEGACY_KEY,
    SMART_HOST_CA,
    PemProblem,
    check_ca_file,
    check_key_pair_files,
    is_expired,
    parse_key_pair,
)
from tenanttls.relay.settings import LegacyCertificate
from tenanttls.store.schema import certificates

logger = logging.getLogger(__name__)


def _system_ca_folder() -> str | None:
    """Return the system's hashed CA folder (such as /etc/ssl/certs), or None when there is none."""
    folder = ssl.get_default_verify_paths().capath
    if folder and os.path.isdir(folder) and any(name.endswith(".0") for name in os.listdir(folder)):
        return folder
    return None


# Every tenant has its own context. The system's CA bundle file would be parsed into each
# one (about 0.8 MB and 30 ms per context, measured by benchmarks/relay_bench.py), while
# OpenSSL reads a hashed CA folder only when a handshake needs a certificate from it.
_SYSTEM_CA_FOLDER = _system_ca_folder()

# The ssl module loads keys only from files. They are written to a memory-backed
# folder when there is one, readable only by this process's user, and deleted at once.
_KEY_FOLDER_CANDIDATES = (Path("/dev/shm"), None)


class KeyPairSource(Protocol):
    """A source of unique certificates: chain and decrypted key (both PEM, bytes or text).

    `tenanttls.certificates.service.CertificateService` is one; `StoreKeyPairs` needs no issuer.
    """

    def load_key_pair(self, certificate_id: int) -> tuple[bytes | str, bytes | str]: ...


class StoreKeyPairs:
    """Chains and keys from the `certificates` table, keys decrypted with a `KeyStore`.

    The key's associated data is the certificate name, as the certificate service
    writes it.
    """

    def __init__(self, engine: Engine, keystore) -> None:
        self._engine = engine
        self._keystore = keystore

    def load_key_pair(self, certificate_id: int) -> tuple[bytes, bytes]:
        try:
            with self._engine.connect() as connection:
                row = connection.execute(
                    select(certificates.c.name, certificates.c.chain_pem, certificates.c.key_ciphertext).where(
                        certificates.c.id == certificate_id
                    )
                ).first()
        except SQLAlchemyError as error:
            raise StoreError(f"failed to read certificate {certificate_id}: {error.__class__.__name__}: {error}") from error

        if row is None:
            raise CertificateError(f"certificate {certificate_id} is not in the store")
        key_pem = self._keystore.decrypt(bytes(row.key_ciphertext), row.name.encode())
        return row.chain_pem.encode(), key_pem


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


def _private_folder() -> Path:
    for candidate in _KEY_FOLDER_CANDIDATES:
        if candidate is None or (candidate.is_dir() and os.access(candidate, os.W_OK)):
            return Path(tempfile.mkdtemp(prefix="tenanttls-relay-keys-", dir=candidate))
    raise AssertionError("unreachable: the system temporary folder is the last candidate")


def _not_after(chain_pem: bytes) -> datetime | None:
    try:
        return x509.load_pem_x509_certificate(chain_pem).not_valid_after_utc
    except ValueError:
        return None


class ClientContexts:
    """Build and cache one `ssl.SSLContext` per certificate the relay presents. Thread-safe."""

    def __init__(
        self,
        legacy: LegacyCertificate,
        key_pairs: KeyPairSource | None,
        *,
        server_ca: Path | None = None,
        max_contexts: int = 20_000,
    ) -> None:
        self._legacy = legacy
        self._key_pairs = key_pairs
        self._server_ca = server_ca
        self._max_contexts = max_contexts
        self._lock = threading.Lock()
        self._contexts: OrderedDict[tuple[str, int | None], ssl.SSLContext] = OrderedDict()
        self._folder: Path | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._contexts)

    def check(self) -> None:
        """Check the smart host CA file and the legacy certificate and key, and build the legacy context.

        The relay calls this at start. Raises `ConfigurationError` naming the file, its
        setting and the fix, so that a broken file stops the relay before it accepts mail.
        """
        if self._server_ca is not None:
            check_ca_file(self._server_ca)
        leaf = self._check_legacy_files()
        if is_expired(leaf):
            logger.warning(
                "relay certificate: legacy certificate expired name=%s file=%s not_after=%s; "
                "Exchange Online defers mail of tenants not yet upgraded",
                self._legacy.name, self._legacy.chain, leaf.not_valid_after_utc.isoformat(),
            )

        context = self._base_context()
        context.load_cert_chain(self._legacy.chain, self._legacy.key)
        with self._lock:
            self._contexts[(LEGACY, None)] = context

    def _check_legacy_files(self):
        return check_key_pair_files(
            self._legacy.chain,
            self._legacy.key,
            what=f"legacy client certificate {self._legacy.name}",
            certificate_setting=LEGACY_CERTIFICATE,
            key_setting=LEGACY_KEY,
        )

    def context_for(self, assignment: Assignment) -> ssl.SSLContext:
        """Return the context that presents `assignment`'s certificate.

        Raises `CertificateError` (or `StoreError`) naming the tenant when the
        certificate is missing or cannot be read or decrypted; the caller defers the
        message instead of sending it without a certificate.
        """
        key = assignment.certificate_key()
        with self._lock:
            context = self._contexts.get(key)
            if context is not None:
                self._contexts.move_to_end(key)
                return context

        context = self._build(assignment)
        with self._lock:
            self._contexts[key] = context
            while len(self._contexts) > self._max_contexts:
                self._contexts.popitem(last=False)
        return context

    def _base_context(self) -> ssl.SSLContext:
        """Return a new client context that verifies smart hosts; raise `CertificateError` when the CA file fails to load."""
        if self._server_ca is not None:
            try:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self._server_ca))
            except (ssl.SSLError, OSError) as error:
                reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
                raise CertificateError(
                    f"failed to load the smart host CA file {self._server_ca}: {reason}; check {SMART_HOST_CA}"
                ) from error
        elif _SYSTEM_CA_FOLDER is not None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, capath=_SYSTEM_CA_FOLDER)
        else:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _build(self, assignment: Assignment) -> ssl.SSLContext:
        if assignment.mode != UNIQUE:
            return self._legacy_context(assignment)
        if assignment.certificate_id is None or self._key_pairs is None:
            raise CertificateError(
                f"tenant {assignment.tenant_id} is assigned its unique certificate {assignment.certificate_name}, "
                "but the relay has no certificate id or no key store; configure key_encryption_key"
            )

        try:
            chain_pem, key_pem = (_as_bytes(part) for part in self._key_pairs.load_key_pair(assignment.certificate_id))
            parse_key_pair(chain_pem, key_pem)
            context = self._base_context()
            self._load_from_memory(context, chain_pem, key_pem)
        except PemProblem as problem:
            raise CertificateError(
                f"invalid TLS client certificate {assignment.certificate_name} (id {assignment.certificate_id}) "
                f"of tenant {assignment.tenant_id} in the store: {problem.reason}; re-issue the certificate"
            ) from problem
        except (ssl.SSLError, OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
            raise CertificateError(
                f"failed to load the TLS client certificate {assignment.certificate_name} "
                f"(id {assignment.certificate_id}) of tenant {assignment.tenant_id}: {reason}; re-issue the certificate"
            ) from error
        except TenantTlsError as error:
            raise CertificateError(
                f"failed to load the TLS client certificate {assignment.certificate_name} "
                f"(id {assignment.certificate_id}) of tenant {assignment.tenant_id}: {error}"
            ) from error

        self._warn_if_expired(assignment, chain_pem)
        return context

    def _legacy_context(self, assignment: Assignment) -> ssl.SSLContext:
        """Build the legacy context again (after `check`, only when the cache dropped it)."""
        context = self._base_context()
        try:
            self._check_legacy_files()
            context.load_cert_chain(self._legacy.chain, self._legacy.key)
        except ConfigurationError as error:
            raise CertificateError(f"tenant {assignment.tenant_id}: {error}") from error
        except (ssl.SSLError, OSError) as error:
            raise CertificateError(
                f"failed to load the legacy TLS client certificate {self._legacy.name} for tenant "
                f"{assignment.tenant_id} from {self._legacy.chain} and {self._legacy.key}: {error}; "
                f"check {LEGACY_CERTIFICATE} and {LEGACY_KEY}"
            ) from error
        return context

    def _load_from_memory(self, context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
        with self._lock:
            if self._folder is None:
                self._folder = _private_folder()
            folder = self._folder
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".pem") as handle:
            os.chmod(handle.name, 0o600)
            handle.write(key_pem + b"\n" + chain_pem)
            handle.flush()
            context.load_cert_chain(handle.name)

    @staticmethod
    def _warn_if_expired(assignment: Assignment, chain_pem: bytes) -> None:
        not_after = _not_after(chain_pem)
        if not_after is not None and not_after < datetime.now(timezone.utc):
            logger.warning(
                "relay certificate: expired tenant=%s certificate=%s not_after=%s; Exchange Online defers this mail",
                assignment.tenant_id, assignment.certificate_name, not_after.isoformat(),
            )

    def close(self) -> None:
        """Drop the cached contexts and remove the private key folder."""
        with self._lock:
            self._contexts.clear()
            folder, self._folder = self._folder, None
        if folder is not None:
            for leftover in folder.iterdir():
                leftover.unlink(missing_ok=True)
            folder.rmdir()
