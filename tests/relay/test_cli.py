"""The relay's commands: settings errors and the queue listing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tenanttls.cli import app
from tenanttls.config import load_settings
from tenanttls.errors import ConfigurationError
from tenanttls.relay.queue import MessageQueue
from tenanttls.relay.settings import relay_settings_from

TENANT = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"


def test_relay_without_legacy_certificate(tmp_path):
    result = CliRunner().invoke(app, ["relay", "--data", str(tmp_path)])

    assert isinstance(result.exception, ConfigurationError)
    assert result.exception.exit_code == 78
    assert "legacy_certificate is not set" in str(result.exception)


def test_settings_from_configuration(tmp_path, server_pair, legacy_pair):
    settings = load_settings(
        None,
        environ={},
        data_dir=str(tmp_path),
        relay_listen="127.0.0.1:0",
        relay_tls_certificate=str(server_pair.certificate),
        relay_tls_key=str(server_pair.key),
        legacy_certificate=str(legacy_pair.certificate),
        legacy_key=str(legacy_pair.key),
        relay_smart_host="127.0.0.1:2526",
        relay_allowed_networks="10.0.0.0/8, 127.0.0.0/8",
    )

    relay_settings = relay_settings_from(settings)

    assert relay_settings.listen_port == 0
    assert relay_settings.queue_dir == tmp_path / "relay-queue"
    assert relay_settings.legacy.name == "*.crossware.co.nz"
    assert relay_settings.smart_host == "127.0.0.1:2526"
    assert relay_settings.allowed_networks == ("10.0.0.0/8", "127.0.0.0/8")


def test_relay_queue_lists_queue_and_reports(tmp_path):
    queue = MessageQueue(tmp_path / "relay-queue")
    message = queue.enqueue(tenant_id=TENANT, mail_from="", recipients=["x@outside.example"], content=b"x\r\n",
                            message_id="<oof@contoso.com>")
    queue.record_outcome(message, "x@outside.example", "dropped", "550 5.7.64 TenantAttribution; Relay Access Denied")

    result = CliRunner().invoke(app, ["relay-queue", "--data", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    assert [entry["id"] for entry in listing["queued"]] == [message.id]
    assert listing["outcomes"] == {"dropped": 1}
    assert listing["reported"][0]["message_id"] == "<oof@contoso.com>"


def test_relay_queue_lists_messages_as_text(tmp_path):
    queue = MessageQueue(tmp_path / "relay-queue")
    waiting = queue.enqueue(tenant_id=TENANT, mail_from="a@contoso.com", recipients=["b@contoso.com"], content=b"x\r\n")
    deferred = queue.enqueue(tenant_id=TENANT, mail_from="a@contoso.com", recipients=["c@contoso.com"], content=b"y\r\n")
    deferred.recipients[0].reply = "451 4.4.1 connection refused by 127.0.0.1:25"
    deferred.attempts = 1
    queue.save(deferred)

    result = CliRunner().invoke(app, ["relay-queue", "--data", str(tmp_path)])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "queued: 2"
    waiting_line = next(line for line in lines if waiting.id in line)
    deferred_line = next(line for line in lines if deferred.id in line)
    assert "to=b@contoso.com" in waiting_line
    assert waiting_line.endswith("last=-")
    assert "attempts=1" in deferred_line
    assert deferred_line.endswith("last=451 4.4.1 connection refused by 127.0.0.1:25")


def test_relay_queue_missing_folder_creates_nothing(tmp_path):
    data = tmp_path / "typo" / "path"

    result = CliRunner().invoke(app, ["relay-queue", "--data", str(data)])

    assert isinstance(result.exception, ConfigurationError)
    assert f"queue folder not found: {data / 'relay-queue'}; check --data" in str(result.exception)
    assert not (tmp_path / "typo").exists()


def test_relay_queue_missing_queue_dir_names_option(tmp_path):
    result = CliRunner().invoke(app, ["relay-queue", "--data", str(tmp_path), "--queue-dir", str(tmp_path / "nope")])

    assert isinstance(result.exception, ConfigurationError)
    assert "check --queue-dir" in str(result.exception)
    assert not (tmp_path / "nope").exists()


def test_relay_retry_zero_rejected(tmp_path):
    result = CliRunner().invoke(app, ["relay", "--data", str(tmp_path), "--retry", "0"])

    assert result.exit_code != 0
    assert "invalid --retry '0'" in str(result.exception)
    assert "each more than 0, such as 60,300,900" in str(result.exception)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"relay_smart_host": "127.0.0.1:abc"}, "invalid port 'abc' in relay_smart_host (--smart-host) '127.0.0.1:abc': use 1-65535"),
        ({"relay_smart_host": "127.0.0.1:0"}, "invalid port '0' in relay_smart_host (--smart-host)"),
        ({"relay_listen": "127.0.0.1:99999"}, "invalid port '99999' in relay_listen (--listen) '127.0.0.1:99999': use 0-65535"),
        ({"relay_allowed_networks": "10.0.0.0/33"}, "invalid network '10.0.0.0/33' in relay_allowed_networks"),
    ],
)
def test_settings_errors_name_setting(tmp_path, server_pair, legacy_pair, overrides, expected):
    settings = load_settings(
        None,
        environ={},
        data_dir=str(tmp_path),
        relay_tls_certificate=str(server_pair.certificate),
        relay_tls_key=str(server_pair.key),
        legacy_certificate=str(legacy_pair.certificate),
        legacy_key=str(legacy_pair.key),
        **overrides,
    )

    with pytest.raises(ConfigurationError) as error:
        relay_settings_from(settings)

    assert expected in str(error.value)
    assert "lets the system choose a listen port" not in str(error.value)


def test_retry_schedule_error_names_option(tmp_path, server_pair, legacy_pair):
    settings = load_settings(
        None,
        environ={},
        data_dir=str(tmp_path),
        relay_tls_certificate=str(server_pair.certificate),
        relay_tls_key=str(server_pair.key),
        legacy_certificate=str(legacy_pair.certificate),
        legacy_key=str(legacy_pair.key),
    )

    with pytest.raises(ConfigurationError) as error:
        relay_settings_from(settings, retry_schedule=(0.0,))

    assert "invalid retry schedule 0 (--retry)" in str(error.value)
    assert "(0.0,)" not in str(error.value)


def test_relay_database_port_not_a_number(tmp_path, server_pair, legacy_pair, monkeypatch):
    monkeypatch.setenv("TENANTTLS_DATABASE_URL", "postgresql://relay:SECRET-PW@127.0.0.1:notaport/tenanttls")
    arguments = [
        "relay", "--data", str(tmp_path), "--listen", "127.0.0.1:0",
        "--tls-certificate", str(server_pair.certificate), "--tls-key", str(server_pair.key),
        "--legacy-certificate", str(legacy_pair.certificate), "--legacy-key", str(legacy_pair.key),
    ]

    result = CliRunner().invoke(app, arguments)

    assert "the port is not a number" in str(result.exception)
    assert "int()" not in str(result.exception)
    assert "SECRET-PW" not in str(result.exception)
    assert result.exception.exit_code == 10
