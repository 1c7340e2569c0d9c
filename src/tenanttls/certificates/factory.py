"""Build the issuer and the certificate service that the settings describe.

    issuer_backend = "local-ca"   LocalCaIssuer in DATA/ca (demo and tests only)
    issuer_backend = "acme"       AcmeIssuer at acme_directory, DNS-01 through the publisher

Issued ACME chains are checked against the roots in ``acme_roots``, or against the
system trust store when that setting is empty.
"""

from __future__ import annotations

import logging
import re
import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from sqlalchemy.engine import Engine

from tenanttls.certificates.issuer import Issuer
from tenanttls.certificates.keystore import KeyStore
from tenanttls.certificates.renewal import RenewalSchedule
from tenanttls.certificates.service import CertificateService
from tenanttls.clock import Clock
from tenanttls.config import Settings
from tenanttls.dns.publisher import DnsPublisher
from tenanttls.errors import ConfigurationError

logger = logging.getLogger(__name__)

_DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def build_issuer(settings: Settings, engine: Engine, publisher: DnsPublisher, clock: Clock) -> Issuer:
    """Return the issuer that ``issuer_backend`` names."""
    if settings.issuer_backend == "local-ca":
        from tenanttls.certificates.local_ca import LocalCaIssuer

        return LocalCaIssuer(settings.data_dir / "ca", lifetime=settings.certificate_lifetime, clock=clock)

    from tenanttls.certificates.acme_issuer import AcmeAccounts, AcmeIssuer

    if not settings.acme_directory:
        raise ConfigurationError("issuer_backend is 'acme' but acme_directory is empty; set the CA's directory URL")
    accounts = AcmeAccounts(engine, KeyStore.from_reference(settings.key_encryption_key), clock)
    return AcmeIssuer(
        settings.acme_directory,
        publisher,
        accounts,
        settings.acme_ca_bundle or None,
        roots=load_roots(settings.acme_roots),
        profile=settings.acme_profile or None,
        contact=settings.acme_contact or None,
    )


def build_certificate_service(
    settings: Settings, engine: Engine, publisher: DnsPublisher, clock: Clock
) -> CertificateService:
    """Return a `CertificateService` with the configured issuer, key-encryption key and renewal limits."""
    return CertificateService(
        engine,
        build_issuer(settings, engine, publisher, clock),
        KeyStore.from_reference(settings.key_encryption_key),
        clock,
        renewal_fraction=settings.renewal_fraction,
        orders_per_hour=settings.orders_per_hour,
    )


def build_renewal_schedule(settings: Settings, engine: Engine, clock: Clock) -> RenewalSchedule:
    """Return the `RenewalSchedule` of the settings, which needs neither an issuer nor the key-encryption key."""
    return RenewalSchedule(
        engine,
        clock,
        settings.issuer_backend,
        renewal_fraction=settings.renewal_fraction,
        orders_per_hour=settings.orders_per_hour,
    )


def load_roots(path: str) -> list[x509.Certificate] | None:
    """Return the certificates in the PEM file `path`, or the system's trust store when `path` is empty.

    Returns None (chains are then checked for their signatures only) when no
    system trust store is found.
    """
    if path:
        try:
            return x509.load_pem_x509_certificates(Path(path).expanduser().read_bytes())
        except OSError as error:
            raise ConfigurationError(f"cannot read acme_roots {path}: {error.strerror}") from error
        except ValueError as error:
            raise ConfigurationError(
                f"invalid acme_roots {path}: the file has no valid PEM certificate; give the CA's root certificates in PEM"
            ) from error

    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.cafile, defaults.openssl_cafile, _DEBIAN_BUNDLE):
        if candidate and Path(candidate).is_file():
            roots = _load_each(Path(candidate).read_text(encoding="ascii", errors="replace"))
            if roots:
                return roots
    logger.warning("no system trust store found; issued chains are checked for their signatures only")
    return None


def _load_each(bundle: str) -> list[x509.Certificate]:
    """Parse each PEM certificate of `bundle` on its own, skipping those cryptography rejects.

    System bundles contain a few old roots that break RFC 5280 (a negative serial
    number, for one), and they must not cost the whole store.
    """
    roots = []
    for block in _PEM_BLOCK.findall(bundle):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                roots.append(x509.load_pem_x509_certificate(block.encode("ascii")))
            except ValueError:
                continue
    return roots
