"""Checks of the PEM files the relay reads, with messages that name the file, its setting and the fix.

The ssl module reports a bad file as ``[SSL] PEM lib`` or ``[Errno 2]`` without saying
which file or why. The relay checks its files with `cryptography` first, at start, so
that a missing, garbled or mismatched file stops it before it accepts any mail.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from tenanttls.errors import ConfigurationError


@dataclass(frozen=True)
class FileSetting:
    """The configuration setting and the ``tenanttls relay`` option that set one file."""

    setting: str
    option: str

    def __str__(self) -> str:
        return f"{self.setting} ({self.option})"


SERVER_CERTIFICATE = FileSetting("relay_tls_certificate", "--tls-certificate")
SERVER_KEY = FileSetting("relay_tls_key", "--tls-key")
LEGACY_CERTIFICATE = FileSetting("legacy_certificate", "--legacy-certificate")
LEGACY_KEY = FileSetting("legacy_key", "--legacy-key")
SMART_HOST_CA = FileSetting("relay_smart_host_ca", "--smart-host-ca")

CERTIFICATE = "certificate"
KEY = "key"
PAIR = "pair"


class PemProblem(ValueError):
    """A certificate chain or private key that TLS cannot use.

    `part` is "certificate", "key" or "pair" (both parse, but the key is not the
    certificate's); `reason` describes what is wrong with that part.
    """

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(reason)
        self.part = part
        self.reason = reason


def _public_key_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_key_pair(chain_pem: bytes, key_pem: bytes) -> x509.Certificate:
    """Parse a PEM chain (leaf first) and its unencrypted PEM private key; return the leaf.

    Raises `PemProblem` when the chain has no certificate, the key is missing,
    encrypted or of an unsupported type, or the key does not belong to the leaf.
    """
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    except ValueError as error:
        raise PemProblem(CERTIFICATE, "it contains no PEM certificate") from error

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as error:
        raise PemProblem(KEY, "the private key is encrypted; the relay needs it unencrypted") from error
    except (ValueError, UnsupportedAlgorithm) as error:
        raise PemProblem(KEY, "it contains no PEM private key") from error

    if _public_key_der(leaf.public_key()) != _public_key_der(key.public_key()):
        raise PemProblem(PAIR, "the certificate and the private key do not match")
    return leaf


def _read(path: Path, description: str, setting: FileSetting) -> bytes:
    """Return the file's bytes; `description` names the file and its path in the message."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"failed to read {description}: {error.strerror or error}; set {setting} to a readable PEM file"
        ) from error


def check_key_pair_files(
    certificate: Path, key: Path, *, what: str, certificate_setting: FileSetting, key_setting: FileSetting
) -> x509.Certificate:
    """Check that `certificate` (PEM chain) and `key` (PEM private key) load and match; return the leaf.

    `what` names the pair in messages ("legacy client certificate"). Raises
    `ConfigurationError` naming the file, the setting that set it and the fix.
    """
    chain_pem = _read(certificate, f"the {what} file {certificate}", certificate_setting)
    key_pem = _read(key, f"the key file {key} of the {what}", key_setting)
    try:
        leaf = parse_key_pair(chain_pem, key_pem)
    except PemProblem as problem:
        raise ConfigurationError(_pair_message(problem, certificate, key, what, certificate_setting, key_setting)) from problem

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certificate, key)
    except ssl.SSLError as error:
        raise ConfigurationError(
            f"failed to load the {what} {certificate} with the key {key} into TLS: {error.reason or error}; "
            f"check {certificate_setting} and {key_setting}"
        ) from error
    return leaf


def _pair_message(
    problem: PemProblem, certificate: Path, key: Path, what: str, certificate_setting: FileSetting, key_setting: FileSetting
) -> str:
    if problem.part == CERTIFICATE:
        return (f"invalid {what} file {certificate}: {problem.reason}; set {certificate_setting} "
                "to a PEM file with the certificate, then its intermediates")
    if problem.part == KEY:
        return (f"invalid key file {key} of the {what}: {problem.reason}; "
                f"set {key_setting} to the certificate's unencrypted PEM private key")
    return (f"the {what} in {certificate} and the key in {key} do not match; "
            f"set {key_setting} to the private key of that certificate, or {certificate_setting} to the key's certificate")


def check_ca_file(path: Path, setting: FileSetting = SMART_HOST_CA) -> None:
    """Check that `path` contains at least one PEM CA certificate that TLS can load.

    Raises `ConfigurationError` naming the file, the setting and the fix.
    """
    fix = (f"set {setting} to a PEM file of the CA certificates that sign the smart hosts' server certificates "
           "(for the simulator: its DATA/tls/ca.pem)")
    data = _read(path, f"the smart host CA file {path}", setting)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise ConfigurationError(f"invalid smart host CA file {path}: it contains no PEM certificate; {fix}") from error

    try:
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(path))
    except ssl.SSLError as error:
        raise ConfigurationError(f"failed to load the smart host CA file {path}: {error.reason or error}; {fix}") from error


def is_expired(certificate: x509.Certificate, now: datetime | None = None) -> bool:
    """Return True when `now` (default: the current time) is past the certificate's notAfter."""
    return certificate.not_valid_after_utc < (now or datetime.now(timezone.utc))
