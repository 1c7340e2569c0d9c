from __future__ import annotations

import base64

import pytest

from tenanttls.dns.tsig import TsigKey
from tenanttls.errors import ConfigurationError

SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_parse_key():
    key = TsigKey.parse(f"Update-Key.:HMAC-SHA256:{SECRET}")

    assert key.name == "update-key"
    assert key.algorithm == "hmac-sha256"
    assert key.secret == b"0123456789abcdef0123456789abcdef"


def test_repr_hides_secret():
    key = TsigKey.parse(f"update-key:hmac-sha256:{SECRET}")

    assert SECRET not in repr(key)
    assert "0123456789abcdef" not in repr(key)


def test_text_round_trip():
    key = TsigKey.generate("update-key", "hmac-sha512")

    assert TsigKey.parse(key.to_text()) == key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("update-key:hmac-sha256", "got 2 part"),
        (f"update-key:hmac-sha999:{SECRET}", "unknown algorithm 'hmac-sha999'"),
        ("update-key:hmac-sha256:not base64!", "not valid base64"),
        ("update-key:hmac-sha256:", "secret is empty"),
        (f":hmac-sha256:{SECRET}", "key name before the first ':' is empty"),
    ],
)
def test_invalid_key_rejected(text, message):
    with pytest.raises(ConfigurationError, match=message):
        TsigKey.parse(text)


def test_from_environment_reference(monkeypatch):
    monkeypatch.setenv("TEST_TSIG", f"update-key:hmac-sha256:{SECRET}")

    key = TsigKey.from_reference("env:TEST_TSIG")

    assert key.name == "update-key"


def test_from_file_reference(tmp_path):
    path = tmp_path / "tsig.key"
    path.write_text(f"update-key:hmac-sha256:{SECRET}\n")
    path.chmod(0o600)

    key = TsigKey.from_reference(f"file:{path}")

    assert key.algorithm == "hmac-sha256"
