"""The provider's own CA: issues unique-name certificates without any outside service.

For the embedded default (demo) and tests only. Exchange Online trusts only
certificates from public CAs, so a certificate from this CA cannot attribute mail
at the real Exchange Online.

The CA is a root and an intermediate, both EC P-256, created on first use in
``ca_dir``: ``ca.pem`` (root, the trust anchor to load), ``intermediate.pem`` and
the keys ``ca.key`` / ``intermediate.key`` (mode 0600, plaintext: unlike tenants'
keys they are not encrypted with the key-encryption key).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenanttls.certificates.issuer import IssuedCertificate, issued_from_pem
from tenanttls.certificates.keystore import warn_if_readable_by_others, write_private_file
from tenanttls.clock import Clock, SystemClock
from tenanttls.domain.durations import format_duration
from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import CertificateError, ConfigurationError, InvalidInput

logger = logging.getLogger(__name__)

BACKEND = "local-ca"
UNUSABLE_WARNING = (
    "local-ca certificates are for the demo and tests only: Exchange Online does not trust this CA, "
    "so set issuer_backend = 'acme' for real tenants"
)

_CA_LIFETIME = timedelta(days=3650)
# Backdating absorbs small clock differences between this host and the peer that checks the certificate.
_BACKDATE = timedelta(minutes=5)


_warned_ca_dirs: set[Path] = set()
_warned_lock = threading.Lock()


def _warn_once(ca_dir: Path) -> None:
    """Log the local-CA warning the first time this process opens `ca_dir`.

    The portal and the worker open an issuer for many requests; one warning per CA is enough.
    """
    with _warned_lock:
        if ca_dir in _warned_ca_dirs:
            return
        _warned_ca_dirs.add(ca_dir)
    logger.warning("local CA in use: ca_dir=%s; %s", ca_dir, UNUSABLE_WARNING)


class LocalCaIssuer:
    """Issue leaf certificates (CN and SAN exactly the name, clientAuth + serverAuth) from a local CA."""

    backend = BACKEND

    def __init__(self, ca_dir: Path, lifetime: timedelta = timedelta(days=90), clock: Clock | None = None) -> None:
        if lifetime <= _BACKDATE:
            raise ConfigurationError(
                f"invalid certificate_lifetime {format_duration(lifetime)} for the local CA: use more than "
                f"{format_duration(_BACKDATE)}, such as 90d"
            )
        self._ca_dir = Path(ca_dir)
        self._lifetime = lifetime
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._root, self._intermediate, self._intermediate_key = self._load_or_create()
        _warn_once(self._ca_dir)

    @property
    def ca_path(self) -> Path:
        """The root certificate (PEM) that a peer loads to trust this CA's certificates."""
        return self._ca_dir / "ca.pem"

    def trust_roots(self) -> list[x509.Certificate]:
        """Return the root certificate of this CA."""
        return [self._root]

    def issue(self, name: str) -> IssuedCertificate:
        """Issue a certificate for `name`; the chain is the leaf then the intermediate."""
        try:
            name = validate_domain_name(name, what="certificate name")
        except InvalidInput as error:
            raise CertificateError(str(error)) from error

        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock.now()
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + self._lifetime)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(certificate_signing=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._intermediate_key.public_key()),
                critical=False,
            )
            .sign(self._intermediate_key, hashes.SHA256())
        )

        chain_pem = _pem(leaf) + _pem(self._intermediate)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        logger.info("certificate issued: name=%s serial=%x backend=%s", name, leaf.serial_number, BACKEND)
        return issued_from_pem(name, chain_pem, key_pem, BACKEND)

    def _load_or_create(self) -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
        with self._lock:
            if not (self._ca_dir / "intermediate.pem").exists():
                self._create()
            return self._load()

    def _load(self) -> tuple[x509.Certificate, x509.Certificate, ec.EllipticCurvePrivateKey]:
        key_path = self._ca_dir / "intermediate.key"
        try:
            root = x509.load_pem_x509_certificate((self._ca_dir / "ca.pem").read_bytes())
            intermediate = x509.load_pem_x509_certificate((self._ca_dir / "intermediate.pem").read_bytes())
            warn_if_readable_by_others(key_path)
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as error:
            reason = f"{error.strerror}: {error.filename}" if isinstance(error, OSError) else str(error)
            raise CertificateError(
                f"cannot load the local CA from {self._ca_dir}: {reason}; remove the folder to create a new CA"
            ) from error
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"local CA key {key_path} is not an EC key; remove {self._ca_dir} to create a new CA")
        return root, intermediate, key

    def _create(self) -> None:
        now = self._clock.now() - _BACKDATE
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tenanttls local CA"),
                x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls local root (not trusted by Exchange Online)"),
            ]
        )
        root = _ca_certificate(root_name, root_name, root_key.public_key(), root_key, now, path_length=1)

        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tenanttls local CA"),
                x509.NameAttribute(NameOID.COMMON_NAME, "tenanttls local intermediate"),
            ]
        )
        intermediate = _ca_certificate(
            intermediate_name, root_name, intermediate_key.public_key(), root_key, now, path_length=0
        )

        # Keys first, so a crash never leaves certificates without their keys.
        write_private_file(self._ca_dir / "ca.key", _private_pem(root_key))
        write_private_file(self._ca_dir / "intermediate.key", _private_pem(intermediate_key))
        (self._ca_dir / "ca.pem").write_text(_pem(root))
        (self._ca_dir / "intermediate.pem").write_text(_pem(intermediate))
        logger.info("local CA created: ca_dir=%s", self._ca_dir)


def _ca_certificate(subject, issuer, public_key, signing_key, now, *, path_length: int) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(certificate_signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False)
        .sign(signing_key, hashes.SHA256())
    )


def _key_usage(*, certificate_signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
