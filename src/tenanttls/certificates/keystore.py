"""Private keys encrypted at rest with the provider's key-encryption key.

Ciphertext format, version 1 (all lengths in bytes)::

    0x01 | key id (4) | nonce (12) | AES-256-GCM ciphertext and tag

The key id is the first 4 bytes of SHA-256 over the key-encryption key. It lets
`decrypt` tell "wrong key-encryption key" apart from "damaged ciphertext", and
`check_stored_key_ids` refuse to store a key under a second key-encryption key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenanttls.config import resolve_secret
from tenanttls.errors import CertificateError, ConfigurationError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KEY_LENGTH = 32
_KEY_ID_LENGTH = 4
_NONCE_LENGTH = 12
_HEADER_LENGTH = 1 + _KEY_ID_LENGTH + _NONCE_LENGTH
# The format version and key id: the leading bytes that `key_id_of` reads.
KEY_ID_PREFIX_LENGTH = 1 + _KEY_ID_LENGTH


class KeyStore:
    """Encrypt and decrypt private keys with one 256-bit key-encryption key."""

    def __init__(self, key_encryption_key: bytes) -> None:
        if len(key_encryption_key) != KEY_LENGTH:
            raise ConfigurationError(
                f"invalid key-encryption key: {len(key_encryption_key)} bytes, expected {KEY_LENGTH}; "
                "create one with 'openssl rand -base64 32'"
            )
        self._aead = AESGCM(key_encryption_key)
        self._key_id = hashlib.sha256(key_encryption_key).digest()[:_KEY_ID_LENGTH]

    def __repr__(self) -> str:
        return f"KeyStore(key_id={self._key_id.hex()})"

    @classmethod
    def from_reference(cls, reference: str, *, what: str = "key_encryption_key") -> KeyStore:
        """Build a key store from a secret reference (``env:NAME`` or ``file:/path``).

        The referenced value is the key in base64 (44 characters), hex (64
        characters) or 32 raw bytes. Surrounding white space is ignored. `what`
        names the setting or option in error messages.
        """
        if not reference:
            raise ConfigurationError(
                f"{what} is not set; set it to 'file:/path' or 'env:NAME' holding a "
                "32-byte key in base64 (create one with 'openssl rand -base64 32')"
            )
        material = resolve_secret(reference, what=what)
        return cls(decode_key(material, what=what))

    @property
    def key_id(self) -> str:
        """The hex id of the key-encryption key, safe to log."""
        return self._key_id.hex()

    def check_stored_key_ids(self, counts: Mapping[str, int]) -> None:
        """Raise `ConfigurationError` when the store contains keys encrypted under another key-encryption key.

        `counts` maps each key id found in the store to its number of keys. A key
        stored under this key's id next to them would leave the store readable only
        with two key-encryption keys, so callers check before they store one.
        """
        others = {key_id: count for key_id, count in counts.items() if key_id != self.key_id}
        if not others:
            return

        described = ", ".join(
            f"{key_id} ({count} key{'' if count == 1 else 's'})" for key_id, count in sorted(others.items())
        )
        raise ConfigurationError(
            f"the configured key_encryption_key has key id {self.key_id}, but the store contains private keys "
            f"encrypted with key id {described}; configure the original key_encryption_key, or re-encrypt "
            "the stored keys with 'tenanttls identity rekey --old-key REFERENCE'"
        )

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Return `plaintext` encrypted in the versioned format.

        `associated_data` (for example the certificate name) is authenticated but
        not stored, and `decrypt` needs the same value.
        """
        nonce = secrets.token_bytes(_NONCE_LENGTH)
        ciphertext = self._aead.encrypt(nonce, plaintext, associated_data)
        return bytes([FORMAT_VERSION]) + self._key_id + nonce + ciphertext

    def decrypt(self, ciphertext: bytes, associated_data: bytes = b"") -> bytes:
        """Return the plaintext of `ciphertext`, or raise `CertificateError`."""
        if len(ciphertext) <= _HEADER_LENGTH or ciphertext[0] != FORMAT_VERSION:
            version = ciphertext[0] if ciphertext else None
            raise CertificateError(
                f"failed to decrypt a stored key: unknown format version {version!r} "
                f"(this version reads {FORMAT_VERSION}); upgrade tenanttls or re-issue the certificate"
            )

        key_id = ciphertext[1 : 1 + _KEY_ID_LENGTH]
        if key_id != self._key_id:
            raise CertificateError(
                f"failed to decrypt a stored key: it was encrypted with key-encryption key {key_id.hex()}, "
                f"but the configured one is {self._key_id.hex()}; configure the original key_encryption_key"
            )

        nonce = ciphertext[1 + _KEY_ID_LENGTH : _HEADER_LENGTH]
        try:
            return self._aead.decrypt(nonce, ciphertext[_HEADER_LENGTH:], associated_data)
        except InvalidTag as error:
            raise CertificateError(
                "failed to decrypt a stored key: the ciphertext is damaged or belongs to another record; "
                "re-issue the certificate"
            ) from error


def key_id_of(ciphertext: bytes) -> str | None:
    """Return the hex id of the key-encryption key that encrypted `ciphertext`, or None for another format.

    `ciphertext` may be only its first `KEY_ID_PREFIX_LENGTH` bytes.
    """
    if len(ciphertext) < KEY_ID_PREFIX_LENGTH or ciphertext[0] != FORMAT_VERSION:
        return None
    return bytes(ciphertext[1:KEY_ID_PREFIX_LENGTH]).hex()


def decode_key(material: bytes, *, what: str = "key_encryption_key") -> bytes:
    """Return the 32-byte key from base64, hex or raw `material`; `what` names the setting in errors."""
    text = material.strip()
    if len(text) == 2 * KEY_LENGTH:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            pass

    try:
        decoded = base64.b64decode(text, validate=True)
    except binascii.Error:
        decoded = b""
    if len(decoded) == KEY_LENGTH:
        return decoded

    if len(material) == KEY_LENGTH:
        return material

    raise ConfigurationError(
        f"invalid {what}: expected 32 bytes in base64 (44 characters) or hex "
        f"(64 characters), got {len(text)} characters; create one with 'openssl rand -base64 32'"
    )


def create_key_file(path: Path) -> Path:
    """Write a new random key-encryption key in base64 to `path` (mode 0600) and return the path.

    Raises `ConfigurationError` when the file exists, so a key in use is never replaced.
    """
    key = base64.b64encode(secrets.token_bytes(KEY_LENGTH)) + b"\n"
    try:
        write_private_file(path, key, overwrite=False)
    except FileExistsError as error:
        raise ConfigurationError(f"key file {path} exists; remove it first only if no stored key uses it") from error
    logger.info("key-encryption key created: path=%s", path)
    return path


def write_private_file(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write `data` to `path` with mode 0600, replacing the file atomically when `overwrite`.

    The file is created 0600 before any byte is written, so the data is never
    readable by others, even for a moment.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite:
        _write_new(path, data)
        return

    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write_new(temporary, data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_new(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def warn_if_readable_by_others(path: Path) -> bool:
    """Log a warning and return True when the key file at `path` is readable by group or others."""
    mode = Path(path).stat().st_mode
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return False

    logger.warning(
        "key file is readable by group or others: path=%s mode=%o; run chmod 600 %s",
        path,
        stat.S_IMODE(mode),
        path,
    )
    return True
