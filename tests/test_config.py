import os
from datetime import timedelta

import pytest

from tenanttls.config import find_config_file, load_settings, resolve_secret
from tenanttls.errors import ConfigurationError


def test_defaults_are_crossware_names():
    settings = load_settings(environ={})

    assert settings.provider_zone == "crosswaretls.com"
    assert settings.connector_name == "CrosswareInboundConnector"
    assert settings.legacy_certificate_name == "*.crossware.co.nz"
    assert settings.grace == timedelta(hours=24)


def test_file_then_environment_then_overrides(tmp_path):
    path = tmp_path / "tenanttls.toml"
    path.write_text('[tenanttls]\ngrace = "2h"\nprovider_zone = "example.net"\nmax_attempts = 3\n')

    settings = load_settings(path, environ={"TENANTTLS_GRACE": "30m"}, max_attempts=5)

    assert settings.provider_zone == "example.net"
    assert settings.grace == timedelta(minutes=30)
    assert settings.max_attempts == 5


def test_unknown_key_in_file_rejected(tmp_path):
    path = tmp_path / "tenanttls.toml"
    path.write_text('[tenanttls]\ngrase = "2h"\n')

    with pytest.raises(ConfigurationError, match="unknown setting 'grase'"):
        load_settings(path, environ={})


def test_invalid_values_rejected(tmp_path):
    with pytest.raises(ConfigurationError, match="invalid setting TENANTTLS_GRACE"):
        load_settings(environ={"TENANTTLS_GRACE": "soon"})
    with pytest.raises(ConfigurationError, match="provider zone"):
        load_settings(environ={"TENANTTLS_PROVIDER_ZONE": "not a zone"})


def test_database_defaults_to_sqlite_in_data_dir(tmp_path):
    settings = load_settings(environ={}, data_dir=str(tmp_path))

    assert settings.database == f"sqlite:///{tmp_path.resolve() / 'tenanttls.db'}"


def test_resolve_secret_from_env_and_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TENANTTLS_TEST_SECRET", "s3cret")
    secret_file = tmp_path / "kek"
    secret_file.write_bytes(b"file-secret")
    os.chmod(secret_file, 0o644)

    assert resolve_secret("env:TENANTTLS_TEST_SECRET") == b"s3cret"
    assert resolve_secret(f"file:{secret_file}") == b"file-secret"
    assert "readable by group or others" in caplog.text
    assert "file-secret" not in caplog.text


def test_resolve_secret_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="is not set"):
        resolve_secret("env:TENANTTLS_DOES_NOT_EXIST")
    with pytest.raises(ConfigurationError, match="cannot read"):
        resolve_secret(f"file:{tmp_path / 'missing'}")
    with pytest.raises(ConfigurationError, match="invalid secret reference") as caught:
        resolve_secret("plain-secret-value")
    assert "plain-secret" not in str(caught.value)


def test_config_file_given_wins(tmp_path):
    (tmp_path / "tenanttls.toml").write_text("[tenanttls]\n")

    assert find_config_file(tmp_path / "other.toml", tmp_path, environ={}) == tmp_path / "other.toml"


def test_config_file_found_in_data_folder(tmp_path):
    (tmp_path / "tenanttls.toml").write_text("[tenanttls]\n")

    assert find_config_file(None, tmp_path, environ={}) == tmp_path / "tenanttls.toml"
    assert find_config_file(None, None, environ={"TENANTTLS_DATA_DIR": str(tmp_path)}) == tmp_path / "tenanttls.toml"


def test_config_file_absent_gives_none(tmp_path):
    assert find_config_file(None, tmp_path, environ={}) is None


def test_data_dir_override_reads_its_settings_file(tmp_path):
    (tmp_path / "tenanttls.toml").write_text('[tenanttls]\nprovider_zone = "example.net"\n')

    settings = load_settings(environ={}, data_dir=str(tmp_path))

    assert settings.provider_zone == "example.net"
    assert settings.data_dir == tmp_path


def test_explicit_config_wins_over_data_dir_file(tmp_path):
    (tmp_path / "tenanttls.toml").write_text('[tenanttls]\nprovider_zone = "example.net"\n')
    other = tmp_path / "other.toml"
    other.write_text('[tenanttls]\nprovider_zone = "example.org"\n')

    settings = load_settings(other, environ={}, data_dir=str(tmp_path))

    assert settings.provider_zone == "example.org"


def test_invalid_number_named_without_python_text():
    with pytest.raises(ConfigurationError) as whole:
        load_settings(environ={"TENANTTLS_ORDERS_PER_HOUR": "abc"})
    with pytest.raises(ConfigurationError) as fraction:
        load_settings(environ={"TENANTTLS_RENEWAL_FRACTION": "a third"})

    assert str(whole.value) == (
        "invalid setting TENANTTLS_ORDERS_PER_HOUR='abc': expected a whole number, such as 300 (the default)"
    )
    assert "expected a number, such as 0.3333 (the default)" in str(fraction.value)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TENANTTLS_LEASE", "0", "invalid lease 0s: use a duration longer than the slowest step"),
        ("TENANTTLS_CONSENT_PROPAGATION", "25h", "invalid consent_propagation 1d1h: use a duration from 0 to 1d"),
    ],
)
def test_engine_durations_out_of_range(name, value, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(environ={name: value})
