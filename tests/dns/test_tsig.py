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
        (f":hmac-sha256:{SECRET}", "the key name is empty"),
        (f"hmac-md5:hmac-sha256:{SECRET}", "both 'hmac-md5' and 'hmac-sha256' are algorithm names"),
        (f"update-key:other:{SECRET}", "neither the first nor the second part is an algorithm"),
    ],
)
def test_invalid_key_rejected(text, message):
    with pytest.raises(ConfigurationError, match=message):
        TsigKey.parse(text)


def test_knsupdate_order_accepted():
    key = TsigKey.parse(f"hmac-sha256:update-key:{SECRET}")

    assert key == TsigKey.parse(f"update-key:hmac-sha256:{SECRET}")


def test_misplaced_secret_not_shown():
    with pytest.raises(ConfigurationError) as raised:
        TsigKey.parse(f"update-key:{SECRET}:hmac-sha256")

    assert SECRET not in str(raised.value)


def test_file_error_names_setting_and_file(tmp_path):
    path = tmp_path / "tsig.key"
    path.write_text(f"update-key:{SECRET}\n")
    path.chmod(0o600)

    with pytest.raises(ConfigurationError) as raised:
        TsigKey.from_reference(f"file:{path}")

    assert str(raised.value).startswith(f"invalid dns_tsig_key (file {path}): expected 'name:algorithm:base64secret'")
    assert SECRET not in str(raised.value)


def test_environment_error_names_variable(monkeypatch):
    monkeypatch.setenv("TEST_TSIG", f"update-key:hmac-sha999:{SECRET}")

    with pytest.raises(ConfigurationError, match="invalid dns_tsig_key \\(environment variable TEST_TSIG\\): unknown"):
        TsigKey.from_reference("env:TEST_TSIG")


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
