"""App credentials and the key-encryption key for a fresh data folder (the demo and tests).

The app's certificate credential is an RSA 2048 key with a self-signed certificate,
the form an Entra app registration accepts as a certificate credential.
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenanttls.certificates.keystore import write_private_file


@dataclass(frozen=True)
class AppCredentials:
    """A generated app registration: client id, certificate (PEM and path) and private key path."""

    client_id: str
    certificate_pem: str
    certificate_path: Path
    key_path: Path


def write_app_credentials(directory: Path, *, lifetime: timedelta = timedelta(days=365)) -> AppCredentials:
    """Create a client id, an RSA key (mode 0600) and a self-signed certificate in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    client_id = str(uuid.uuid4())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tenanttls app {client_id}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .sign(key, hashes.SHA256())
    )

    key_path = directory / "app.key"
    certificate_path = directory / "app.pem"
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private_file(key_path, key_pem)
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    certificate_path.write_text(certificate_pem, encoding="ascii")
    return AppCredentials(client_id, certificate_pem, certificate_path, key_path)


def write_key_encryption_key(path: Path) -> str:
    """Write a new 256-bit key-encryption key (base64, mode 0600) to `path`; return its secret reference."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, base64.b64encode(os.urandom(32)) + b"\n")
    return f"file:{path}"
