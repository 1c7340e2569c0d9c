"""The simulator's own certificate authority and HTTPS server certificate.

MSAL accepts only ``https`` authorities, so the simulator serves HTTPS with a certificate
from a CA it creates in ``DATA/tls/`` on first start. Clients trust ``ca.pem``. The files
are reused on restart. The server certificate is issued again from the same CA when it
does not cover the listening host or expires within 30 days.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

CA_VALIDITY = timedelta(days=3650)
SERVER_VALIDITY = timedelta(days=825)
RENEW_BEFORE = timedelta(days=30)
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the CA certificate and of the server certificate and key, all PEM."""

    ca_path: Path
    certificate_path: Path
    key_path: Path


def ensure_tls_files(directory: Path, host: str) -> TlsFiles:
    """Create the CA and server certificate in `directory` unless usable ones exist; return their paths.

    The server certificate names localhost, 127.0.0.1, ::1 and `host` (unless `host` is a
    wildcard address such as 0.0.0.0).
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca_key_path = directory / "ca.key"

    if not (files.ca_path.exists() and ca_key_path.exists()):
        _create_ca(files.ca_path, ca_key_path)
        logger.info("simulator tls: created CA path=%s", files.ca_path)

    names = _server_names(host)
    if not _server_certificate_usable(files.certificate_path, files.key_path, names):
        _issue_server_certificate(files, ca_key_path, names)
        logger.info("simulator tls: issued server certificate names=%s", ",".join(names))
    return files


def _server_names(host: str) -> tuple[str, ...]:
    names = list(DEFAULT_NAMES)
    if host and host not in names and host not in ("0.0.0.0", "::"):
        names.append(host)
    return tuple(names)


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Create the file with mode 0600 so the key is never world-readable, not even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _create_ca(certificate_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls simulator CA")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private_key(key_path, key)
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _subject_alternative_names(names: Iterable[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _server_certificate_usable(certificate_path: Path, key_path: Path, names: tuple[str, ...]) -> bool:
    if not (certificate_path.exists() and key_path.exists()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        present = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False

    if any(entry not in present for entry in _subject_alternative_names(names)):
        return False
    return certificate.not_valid_after_utc - RENEW_BEFORE > datetime.now(timezone.utc)


def _issue_server_certificate(files: TlsFiles, ca_key_path: Path, names: tuple[str, ...]) -> None:
    ca_certificate = x509.load_pem_x509_certificate(files.ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls simulator")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    _write_private_key(files.key_path, key)
    files.certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
