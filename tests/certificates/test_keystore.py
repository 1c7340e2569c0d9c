from __future__ import annotations

import base64
import logging
import os
import stat

import pytest

from tenanttls.certificates.keystore import (
    KeyStore,
    create_key_file,
    key_id_of,
    warn_if_readable_by_others,
    write_private_file,
)
from tenanttls.errors import CertificateError, ConfigurationError

KEY = bytes(range(32))
PLAINTEXT = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"


def test_round_trip():
    store = KeyStore(KEY)

    ciphertext = store.encrypt(PLAINTEXT, b"abc.crosswaretls.com")

    assert PLAINTEXT not in ciphertext
    assert ciphertext[0] == 1
    assert store.decrypt(ciphertext, b"abc.crosswaretls.com") == PLAINTEXT


def test_same_plaintext_encrypts_differently():
    store = KeyStore(KEY)

    assert store.encrypt(PLAINTEXT) != store.encrypt(PLAINTEXT)


def test_wrong_key_named_in_error():
    ciphertext = KeyStore(KEY).encrypt(PLAINTEXT)
    other = KeyStore(bytes(32))

    with pytest.raises(CertificateError, match="configure the original key_encryption_key"):
        other.decrypt(ciphertext)


def test_other_record_rejected():
    store = KeyStore(KEY)
    ciphertext = store.encrypt(PLAINTEXT, b"abc.crosswaretls.com")

    with pytest.raises(CertificateError, match="damaged or belongs to another record"):
        store.decrypt(ciphertext, b"xyz.crosswaretls.com")


def test_unknown_version_rejected():
    store = KeyStore(KEY)
    ciphertext = bytearray(store.encrypt(PLAINTEXT))
    ciphertext[0] = 9

    with pytest.raises(CertificateError, match="unknown format version 9"):
        store.decrypt(bytes(ciphertext))


def test_key_id_read_from_ciphertext():
    store = KeyStore(KEY)

    ciphertext = store.encrypt(PLAINTEXT)

    assert key_id_of(ciphertext) == store.key_id
    assert key_id_of(ciphertext[:5]) == store.key_id
    assert key_id_of(b"\x09" + ciphertext[1:]) is None
    assert key_id_of(b"\x01ab") is None


def test_stored_keys_of_same_key_accepted():
    store = KeyStore(KEY)

    store.check_stored_key_ids({})
    store.check_stored_key_ids({store.key_id: 3})


def test_stored_keys_of_other_key_rejected():
    store = KeyStore(KEY)
    other = KeyStore(bytes(32))

    with pytest.raises(ConfigurationError) as raised:
        store.check_stored_key_ids({store.key_id: 1, other.key_id: 2})

    message = str(raised.value)
    assert f"key id {store.key_id}" in message
    assert f"key id {other.key_id} (2 keys)" in message
    assert "configure the original key_encryption_key" in message
    assert "tenanttls identity rekey" in message


def test_short_key_rejected():
    with pytest.raises(ConfigurationError, match="16 bytes, expected 32"):
        KeyStore(bytes(16))


def test_repr_hides_key():
    store = KeyStore(KEY)

    assert KEY.hex() not in repr(store)
    assert repr(store) == f"KeyStore(key_id={store.key_id})"


@pytest.mark.parametrize(
    "encode",
    [
        lambda key: base64.b64encode(key) + b"\n",
        lambda key: key.hex().encode(),
        lambda key: key,
    ],
    ids=["base64", "hex", "raw"],
)
def test_key_encodings_accepted(tmp_path, encode):
    path = tmp_path / "kek"
    write_private_file(path, encode(KEY))
    ciphertext = KeyStore(KEY).encrypt(PLAINTEXT)

    store = KeyStore.from_reference(f"file:{path}")

    assert store.decrypt(ciphertext) == PLAINTEXT


def test_from_environment_reference(monkeypatch):
    monkeypatch.setenv("TEST_KEK", base64.b64encode(KEY).decode())
    ciphertext = KeyStore(KEY).encrypt(PLAINTEXT)

    store = KeyStore.from_reference("env:TEST_KEK")

    assert store.decrypt(ciphertext) == PLAINTEXT


def test_from_file_reference(tmp_path):
    path = create_key_file(tmp_path / "kek")

    store = KeyStore.from_reference(f"file:{path}")

    assert store.decrypt(store.encrypt(PLAINTEXT)) == PLAINTEXT
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_reference_rejected():
    with pytest.raises(ConfigurationError, match="key_encryption_key is not set"):
        KeyStore.from_reference("")


def test_passphrase_rejected(monkeypatch):
    monkeypatch.setenv("TEST_KEK", "correct horse battery staple")

    with pytest.raises(ConfigurationError, match="invalid key_encryption_key"):
        KeyStore.from_reference("env:TEST_KEK")


def test_create_key_file_keeps_existing(tmp_path):
    path = create_key_file(tmp_path / "kek")
    before = path.read_bytes()

    with pytest.raises(ConfigurationError, match="exists"):
        create_key_file(path)
    assert path.read_bytes() == before


def test_private_file_mode_0600(tmp_path):
    path = tmp_path / "keys" / "leaf.key"

    write_private_file(path, PLAINTEXT)
    write_private_file(path, PLAINTEXT + b"again")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == PLAINTEXT + b"again"
    assert os.listdir(path.parent) == ["leaf.key"]


def test_readable_key_file_warns(tmp_path, caplog):
    path = tmp_path / "kek"
    path.write_bytes(base64.b64encode(KEY))
    path.chmod(0o644)

    with caplog.at_level(logging.WARNING):
        readable = warn_if_readable_by_others(path)
        KeyStore.from_reference(f"file:{path}")

    assert readable
    assert "chmod 600" in caplog.text
    assert base64.b64encode(KEY).decode() not in caplog.text


def test_private_key_file_does_not_warn(tmp_path, caplog):
    path = create_key_file(tmp_path / "kek")

    with caplog.at_level(logging.WARNING):
        readable = warn_if_readable_by_others(path)

    assert not readable
    assert caplog.text == ""
