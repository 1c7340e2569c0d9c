"""The settings file of docs/deployment.md: it names every setting, loads, and starts each process.

The example's paths under /etc, /var/lib and /var/spool are moved into a temporary
folder that contains generated stand-ins for its certificates and secrets. The
processes run as an operator starts them, on PostgreSQL, with only loopback addresses.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from tenanttls.config import Settings, load_settings
from tenanttls.dns.tsig import TsigKey
from tenanttls.relay.settings import relay_settings_from
from tests.fixtures.dns import free_port
from tests.fixtures.simulator import make_app_credentials

DOC = Path(__file__).parents[1] / "docs" / "deployment.md"
HEADING = "\n## The settings file\n"


def example_toml() -> str:
    """Return the first TOML block after the heading "The settings file" in docs/deployment.md."""
    text = DOC.read_text(encoding="utf-8")
    assert HEADING in text, f"{DOC} has no section 'The settings file'"
    match = re.search(r"```toml\n(.*?)```", text.split(HEADING, 1)[1], re.S)
    assert match is not None, f"the section 'The settings file' of {DOC} has no toml block"
    return match.group(1)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)


@pytest.fixture
def example_config(tmp_path, server_pair, legacy_pair) -> Path:
    """Write the example with its paths moved under `tmp_path`, and the files it names; return its path."""
    root = tmp_path / "host"
    text = example_toml()
    for prefix, folder in (("/etc/tenanttls/", "etc/"), ("/var/lib/tenanttls", "lib"), ("/var/spool/tenanttls/", "spool/")):
        text = text.replace(prefix, f"{root}/{folder}")

    etc = root / "etc"
    credentials = make_app_credentials()
    (etc / "secrets").mkdir(parents=True)
    (etc / "app.pem").write_text(credentials.certificate_pem)
    _write_private(etc / "secrets" / "app.key", credentials.private_key_pem.encode())
    _write_private(etc / "secrets" / "kek", base64.b64encode(os.urandom(32)) + b"\n")
    _write_private(etc / "secrets" / "tsig", TsigKey.generate("tenanttls-update").to_text().encode() + b"\n")
    _write_private(etc / "secrets" / "portal-session.key", os.urandom(32).hex().encode() + b"\n")
    shutil.copy(server_pair.certificate, etc / "relay-server.pem")
    shutil.copy(server_pair.key, etc / "secrets" / "relay-server.key")
    shutil.copy(legacy_pair.certificate, etc / "legacy.pem")
    shutil.copy(legacy_pair.key, etc / "secrets" / "legacy.key")

    path = etc / "tenanttls.toml"
    path.write_text(text)
    return path


def test_example_names_every_setting():
    keys = re.findall(r"^([a-z_]+)\s*=", example_toml(), re.M)
    expected = {field.name for field in fields(Settings)} - {"extra"}

    assert sorted(expected - set(keys)) == [], "add these settings to the example in docs/deployment.md"
    assert sorted(set(keys) - expected) == [], "the example in docs/deployment.md names settings that do not exist"
    assert len(keys) == len(set(keys))


def test_example_loads(example_config):
    settings = load_settings(example_config, environ={})
    relay = relay_settings_from(settings)

    assert settings.database_url.startswith("postgresql+psycopg://tenanttls@")
    assert settings.dns_backend == "rfc2136"
    assert settings.issuer_backend == "acme"
    assert settings.request_budget == "auto"
    assert settings.grace == timedelta(hours=24)
    assert settings.portal_url.startswith("https://")
    assert relay.listen_port == 25
    assert relay.tls_key.exists()
    assert relay.legacy.key.exists()


def test_example_secrets_are_references():
    values = dict(re.findall(r'^([a-z_]+)\s*=\s*"([^"]*)"', example_toml(), re.M))

    for key in ("client_key", "key_encryption_key", "dns_tsig_key", "portal_session_secret"):
        assert values[key].startswith("file:/etc/tenanttls/secrets/"), key
    assert ":" not in values["database_url"].split("@")[0].removeprefix("postgresql+psycopg://")


# The processes, started with the example as an operator starts them ---------------------------


def _tenanttls(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tenanttls.cli import main; main()", *args]


@pytest.fixture
def environment(postgres_url) -> dict[str, str]:
    """The environment of a host, with the example's internal host names replaced by loopback ones.

    The processes resolve `dns_server` at start but send it nothing unless a tenant is due.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("TENANTTLS_", "PG"))}
    return {**environment, "TENANTTLS_DATABASE_URL": postgres_url, "TENANTTLS_DNS_SERVER": f"127.0.0.1:{free_port()}"}


def _run(arguments: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(_tenanttls(*arguments), capture_output=True, text=True, timeout=120, env=environment)


def _serve_until(arguments: list[str], environment: dict[str, str], log: Path, ready) -> str:
    """Start a server command, wait until `ready(log text)` is true, stop it with SIGTERM; return its log."""
    with open(log, "wb") as output:
        process = subprocess.Popen(_tenanttls(*arguments), stdout=output, stderr=subprocess.STDOUT, env=environment)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None and not ready(log.read_text()):
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return log.read_text()


@pytest.mark.postgres
@pytest.mark.slow
def test_example_starts_each_process(example_config, environment, tmp_path):
    config = str(example_config)

    init = _run(["init", "--config", config], environment)
    worker = _run(["worker", "--config", config, "--exit-when-idle"], environment)
    status = _run(["status", "--config", config], environment)
    relay_log = _serve_until(
        ["relay", "--config", config, "--listen", "127.0.0.1:0"], environment, tmp_path / "relay.log",
        lambda text: "relay listening on" in text,
    )
    portal_log = _serve_until(
        ["portal", "--config", config, "--port", "0"], environment, tmp_path / "portal.log",
        lambda text: "portal: listening on" in text,
    )

    assert init.returncode == 0, init.stderr
    assert "store ready at schema revision" in init.stdout
    assert worker.returncode == 0, worker.stderr
    assert "worker stopped: 0 steps" in worker.stderr
    assert status.returncode == 0, status.stderr
    assert "no tenants" in status.stdout
    assert "relay listening on 127.0.0.1:" in relay_log
    assert "error" not in relay_log.lower()
    assert "public URL https://portal.example.com" in portal_log
    assert "error" not in portal_log.lower()
