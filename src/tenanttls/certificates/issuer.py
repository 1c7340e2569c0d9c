"""The issuer interface and the checks every issued certificate passes before use.

`Issuer.issue(name)` returns an `IssuedCertificate`: the full chain (leaf first, then
each intermediate) and the leaf's private key. `check_certificate` decides whether
the relay may present it to Exchange Online.

The implementations live in their own modules and are importable from here too:
`LocalCaIssuer` (`tenanttls.certificates.local_ca`) and `AcmeIssuer`
(`tenanttls.certificates.acme_issuer`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from tenanttls.domain.durations import format_duration
from tenanttls.errors import CertificateError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate chain fresh from an issuer, with its private key (PEM, unencrypted)."""

    name: str
    chain_pem: str
    key_pem: str = field(repr=False)
    not_before: datetime
    not_after: datetime
    serial: str
    backend: str


class Issuer(Protocol):
    """A source of certificates whose subject and SAN carry exactly one name."""

    backend: str

    def issue(self, name: str) -> IssuedCertificate:
        """Issue a certificate for `name`, or raise `CertificateError`."""
        ...

    def trust_roots(self) -> list[x509.Certificate] | None:
        """Return the root certificates the chains lead to, or None to check the chain's signatures only."""
        ...


def __getattr__(attribute: str):
    # The implementations import this module, so they are loaded on first use only.
    if attribute == "LocalCaIssuer":
        from tenanttls.certificates.local_ca import LocalCaIssuer

        return LocalCaIssuer
    if attribute == "AcmeIssuer":
        from tenanttls.certificates.acme_issuer import AcmeIssuer

        return AcmeIssuer
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def issued_from_pem(name: str, chain_pem: str, key_pem: str, backend: str) -> IssuedCertificate:
    """Build an `IssuedCertificate` from PEM text, reading serial and validity from the leaf."""
    leaf = load_chain(chain_pem, name)[0]
    return IssuedCertificate(
        name=name,
        chain_pem=chain_pem,
        key_pem=key_pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        serial=format(leaf.serial_number, "x"),
        backend=backend,
    )


def load_chain(chain_pem: str, name: str) -> list[x509.Certificate]:
    """Return the certificates in `chain_pem`, leaf first, or raise `CertificateError`."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
    except ValueError as error:
        raise CertificateError(f"certificate chain for {name} is not valid PEM: {error}") from error
    if not chain:
        raise CertificateError(f"certificate chain for {name} is empty")
    return chain


def check_certificate(
    issued: IssuedCertificate,
    name: str,
    trust_roots: Sequence[x509.Certificate] | None,
    renewal_window: timedelta,
    *,
    now: datetime | None = None,
) -> list[str]:
    """Check that `issued` is usable as the relay's client certificate for `name`.

    Raises `CertificateError` when the private key does not match the leaf, the
    leaf's names are not exactly `name`, the chain does not verify (up to
    `trust_roots` when given), or the leaf expires within `renewal_window` of
    `now`. Returns warnings, such as a missing clientAuth extended key usage,
    that do not stop the certificate from being used.
    """
    now = now or datetime.now(timezone.utc)
    chain = load_chain(issued.chain_pem, name)
    leaf = chain[0]

    _check_key_matches(issued, leaf, name)
    _check_names(leaf, name)
    _check_chain(chain, name, trust_roots, now)
    _check_validity(leaf, name, renewal_window, now)
    warnings = _check_client_auth(leaf, name, issued.backend)

    for warning in warnings:
        logger.warning("certificate check: name=%s serial=%s warning=%s", name, issued.serial, warning)
    return warnings


def _check_key_matches(issued: IssuedCertificate, leaf: x509.Certificate, name: str) -> None:
    try:
        key = serialization.load_pem_private_key(issued.key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"private key for {name} is not a valid unencrypted PEM key") from error

    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise CertificateError(f"private key for {name} does not match the certificate's public key")


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_names(leaf: x509.Certificate, name: str) -> None:
    """Raise unless the SAN is exactly `name` and the subject CN, when present, is `name` too."""
    expected = name.lower()
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as error:
        raise CertificateError(f"certificate for {name} has no subject alternative name; expected exactly {name}") from error

    dns_names = [value.lower() for value in san.get_values_for_type(x509.DNSName)]
    other_names = len(list(san)) - len(dns_names)
    if dns_names != [expected] or other_names:
        raise CertificateError(
            f"certificate has the wrong name: subject alternative names {dns_names} "
            f"(and {other_names} non-DNS entries), expected exactly [{expected!r}]; the CA issued "
            "another name, so the certificate was not stored"
        )

    # Exchange Online matches TlsSenderCertificateName against the subject or a SAN,
    # so a certificate without a common name is fine, but a different one is not.
    common_names = [attribute.value for attribute in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if common_names and [str(value).lower() for value in common_names] != [expected]:
        raise CertificateError(
            f"certificate has the wrong subject common name {common_names}, expected {expected!r}; "
            "the CA issued another name, so the certificate was not stored"
        )


def _check_chain(
    chain: list[x509.Certificate],
    name: str,
    trust_roots: Sequence[x509.Certificate] | None,
    now: datetime,
) -> None:
    """Raise unless every certificate is signed by the next one and the last leads to a root.

    Exchange Online rejects a chain without its intermediate, so the chain must
    reach a trust root without help from any other source of intermediates.
    """
    if len(chain) < 2:
        raise CertificateError(
            f"certificate chain for {name} contains only the leaf; the intermediate certificate is missing, "
            "and Exchange Online rejects such a chain"
        )

    for position, (child, parent) in enumerate(zip(chain, chain[1:]), start=1):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as error:
            raise CertificateError(
                f"certificate chain for {name} is broken: certificate {position} "
                f"({child.subject.rfc4514_string()}) is not signed by certificate {position + 1} "
                f"({parent.subject.rfc4514_string()})"
            ) from error

    if trust_roots is not None:
        _verify_path(chain, name, trust_roots, now)


def _verify_path(
    chain: list[x509.Certificate], name: str, trust_roots: Sequence[x509.Certificate], now: datetime
) -> None:
    """Build the path from the leaf to one of `trust_roots` with the chain's own intermediates."""
    roots = list(trust_roots)
    if not roots:
        raise CertificateError(f"no trust roots to verify the certificate chain for {name}; configure the CA bundle")

    # The extended key usage is checked separately (a warning only), so the leaf's
    # extensions are not held to the Web PKI profile here.
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(now)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    intermediates = [certificate for certificate in chain[1:] if certificate not in roots]
    try:
        verifier.verify(chain[0], intermediates)
    except VerificationError as error:
        raise CertificateError(
            f"certificate chain for {name} does not verify against the CA's roots: {error}; "
            "check that the CA returned the full chain and that the CA bundle is the CA's"
        ) from error


def _check_validity(leaf: x509.Certificate, name: str, renewal_window: timedelta, now: datetime) -> None:
    not_before = leaf.not_valid_before_utc
    not_after = leaf.not_valid_after_utc
    if not_before > now + timedelta(minutes=5):
        raise CertificateError(
            f"certificate for {name} is not valid before {not_before.isoformat()}, later than now "
            f"({now.isoformat()}); check the clocks of this host and the CA"
        )

    if not_after - now < renewal_window:
        raise CertificateError(
            f"certificate for {name} expires {not_after.isoformat()}, in {format_duration(not_after - now)}, "
            f"which is inside its renewal window of {format_duration(renewal_window)}, so it would be renewed "
            "at once; choose a longer certificate lifetime (acme_profile, or certificate_lifetime for local-ca) "
            "or a smaller renewal_fraction"
        )


def _check_client_auth(leaf: x509.Certificate, name: str, backend: str) -> list[str]:
    """Return a warning when the extended key usage does not allow TLS client authentication."""
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []  # Without the extension, RFC 5280 allows any usage.

    if ExtendedKeyUsageOID.CLIENT_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return []

    return [
        f"certificate for {name} lacks the TLS client authentication extended key usage (clientAuth), "
        "but the relay presents it as a TLS client certificate and the receiving server may reject it; "
        f"choose a CA and ACME profile that issue clientAuth certificates (setting acme_profile, issuer {backend})"
    ]
