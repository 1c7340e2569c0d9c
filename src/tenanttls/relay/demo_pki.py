"""Certificates for running the relay on loopback: the demo, benchmarks and tests.

`RelayPki` creates, in one folder, a CA, a server certificate for 127.0.0.1 and
localhost (offered by the relay with STARTTLS) and the legacy client certificate that
every customer shares before the upgrade (``*.crossware.co.nz`` by default). In
production these come from a public CA instead; Exchange Online trusts no other.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenanttls.certificates.keystore import write_private_file
from tenanttls.relay.settings import LegacyCertificate

_LIFETIME = timedelta(days=365)
# Backdating absorbs small clock differences between this host and the peer that checks the certificate.
_BACKDATE = timedelta(minutes=5)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class RelayPki:
    """A throwaway CA with the relay's server certificate and the legacy client certificate, as PEM files."""

    def __init__(self, directory: Path, legacy_name: str = "*.crossware.co.nz") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.legacy_name = legacy_name
        self.ca_path = self.directory / "ca.pem"
        self.server_certificate = self.directory / "relay-server.pem"
        self.server_key = self.directory / "relay-server.key"
        self.legacy_certificate = self.directory / "legacy.pem"
        self.legacy_key = self.directory / "legacy.key"
        if not self.ca_path.exists():
            self._create()

    @property
    def legacy(self) -> LegacyCertificate:
        return LegacyCertificate(self.legacy_name, self.legacy_certificate, self.legacy_key)

    def _create(self) -> None:
        now = datetime.now(timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls relay test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + 10 * _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

        server_names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        self._issue(ca, ca_key, "localhost", server_names, ExtendedKeyUsageOID.SERVER_AUTH, self.server_certificate, self.server_key)
        self._issue(ca, ca_key, self.legacy_name, [x509.DNSName(self.legacy_name)], ExtendedKeyUsageOID.CLIENT_AUTH,
                    self.legacy_certificate, self.legacy_key)

    @staticmethod
    def _issue(ca, ca_key, common_name, names, usage, certificate_path: Path, key_path: Path) -> None:
        now = datetime.now(timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        write_private_file(key_path, _key_pem(key))
