"""The identity commands, run as a user runs them: the CLI in a child process on a real store."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import insert

from tenanttls.certificates.identities import IdentityService
from tenanttls.certificates.keystore import KeyStore
from tenanttls.certificates.local_ca import LocalCaIssuer
from tenanttls.certificates.service import CertificateService
from tenanttls.clock import ManualClock, SystemClock
from tenanttls.dns.publisher import lookup_txt
from tenanttls.store.db import open_store
from tenanttls.store.schema import tenants
from tests.fixtures.dns import free_port

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0b6e3f4a-2c1d-4e5f-8a9b-0c1d2e3f4a5b"
KEY = bytes(range(32))


def tenanttls(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )


@pytest.fixture(autouse=True)
def database_url(store_backend, new_store_url, monkeypatch):
    """On PostgreSQL, a fresh database that the CLI finds through ``TENANTTLS_DATABASE_URL``.

    On SQLite there is none: the store is the data folder's tenanttls.db, as `--data` implies.
    """
    if store_backend == "sqlite":
        return None
    url = new_store_url()
    monkeypatch.setenv("TENANTTLS_DATABASE_URL", url)
    return url


def _store_url(folder) -> str:
    return os.environ.get("TENANTTLS_DATABASE_URL") or f"sqlite:///{folder / 'tenanttls.db'}"


@pytest.fixture
def environment():
    return {"TEST_KEK": base64.b64encode(KEY).decode(), "TENANTTLS_KEY_ENCRYPTION_KEY": "env:TEST_KEK"}


def _make_data(folder, issued_days_ago: int):
    """Create a store with one tenant, its identity and a local-CA certificate issued `issued_days_ago`."""
    folder.mkdir(parents=True, exist_ok=True)
    store = open_store(_store_url(folder), create=True)
    clock = ManualClock(SystemClock().now() - timedelta(days=issued_days_ago))
    with store.engine.begin() as connection:
        connection.execute(
            insert(tenants).values(tenant_id=TENANT, initial_domain="contoso.onmicrosoft.com", created_at=clock.now())
        )
    name = IdentityService(store.engine, "crosswaretls.com", clock).allocate(TENANT).name
    issuer = LocalCaIssuer(folder / "ca", lifetime=timedelta(days=90), clock=clock)
    CertificateService(store.engine, issuer, KeyStore(KEY), clock).ensure_certificate(TENANT, name)
    store.close()
    return folder


@pytest.fixture
def data(tmp_path):
    """A data folder whose store has one tenant with an identity and a fresh local-CA certificate."""
    return _make_data(tmp_path / "data", issued_days_ago=0)


def test_show_prints_name_and_certificate(data, environment):
    result = tenanttls("identity", "show", TENANT, "--data", str(data), env=environment)

    assert result.returncode == 0, result.stderr
    assert ".crosswaretls.com" in result.stdout
    assert "certificate serial: " in result.stdout
    assert "days left: 89" in result.stdout
    assert "Exchange Online does not trust them" in result.stderr


def test_show_json_by_initial_domain(data, environment):
    result = tenanttls("identity", "show", "contoso.onmicrosoft.com", "--json", "--data", str(data), env=environment)

    details = json.loads(result.stdout)
    assert details["tenant_id"] == TENANT
    assert details["name"] == f"{details['label']}.crosswaretls.com"
    assert len(details["label"]) == 26
    assert details["days_left"] == 89
    assert details["backend"] == "local-ca"
    assert details["warnings"] == [
        "local-ca certificates are for the demo and tests only; Exchange Online does not trust them"
    ]


def test_show_tenant_not_in_store(data, environment):
    result = tenanttls("identity", "show", OTHER_TENANT, "--data", str(data), env=environment)

    assert result.returncode == 3
    assert f"tenant {OTHER_TENANT} is not in the store (tenants table)" in result.stderr
    assert "'tenanttls tenants import FILE'" in result.stderr
    assert f"'tenanttls upgrade {OTHER_TENANT}' and a 'tenanttls worker'" in result.stderr


def test_show_tenant_without_identity(data, environment):
    store = open_store(_store_url(data))
    with store.engine.begin() as connection:
        connection.execute(
            insert(tenants).values(
                tenant_id=OTHER_TENANT, initial_domain="fabrikam.onmicrosoft.com", created_at=SystemClock().now()
            )
        )
    store.close()

    result = tenanttls("identity", "show", "fabrikam.onmicrosoft.com", "--data", str(data), env=environment)

    assert result.returncode == 3
    assert f"tenant {OTHER_TENANT} has no unique identity yet; run 'tenanttls upgrade {OTHER_TENANT}'" in result.stderr


def test_show_by_unique_name(data, environment):
    name = json.loads(tenanttls("identity", "show", TENANT, "--json", "--data", str(data), env=environment).stdout)["name"]

    result = tenanttls("identity", "show", name.upper(), "--json", "--data", str(data), env=environment)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tenant_id"] == TENANT


def test_show_unknown_unique_name(data, environment):
    result = tenanttls("identity", "show", "abc.crosswaretls.com", "--data", str(data), env=environment)

    assert result.returncode == 3
    assert "no tenant has the unique name abc.crosswaretls.com" in result.stderr


def test_show_never_prints_key(data, environment):
    result = tenanttls("identity", "show", TENANT, "--json", "--data", str(data), env=environment)

    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_renew_dry_run_nothing_due(data, environment):
    result = tenanttls("identity", "renew", "--dry-run", "--json", "--data", str(data), env=environment)

    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert report["due"] == []
    assert report["renewed"] == []


def test_renew_due_certificate(tmp_path, environment):
    data = _make_data(tmp_path / "data", issued_days_ago=80)

    result = tenanttls("identity", "renew", "--json", "--data", str(data), env=environment)

    report = json.loads(result.stdout)
    details = json.loads(tenanttls("identity", "show", TENANT, "--json", "--data", str(data), env=environment).stdout)
    assert result.returncode == 0, result.stderr
    assert len(report["renewed"]) == 1
    assert report["renewed"][0]["tenant_id"] == TENANT
    assert details["days_left"] == 89


def test_renew_dry_run_lists_due(tmp_path, environment):
    data = _make_data(tmp_path / "data", issued_days_ago=80)

    result = tenanttls("identity", "renew", "--dry-run", "--data", str(data), env=environment)
    details = json.loads(tenanttls("identity", "show", TENANT, "--json", "--data", str(data), env=environment).stdout)

    assert "due for renewal: 1" in result.stdout
    assert "renew=this run" in result.stdout
    assert details["days_left"] == 9


def test_renew_dry_run_without_key_encryption_key(tmp_path):
    data = _make_data(tmp_path / "data", issued_days_ago=80)

    result = tenanttls("identity", "renew", "--dry-run", "--data", str(data), env={"TENANTTLS_KEY_ENCRYPTION_KEY": ""})

    assert result.returncode == 0, result.stderr
    assert "due for renewal: 1" in result.stdout
    assert "local CA in use" not in result.stderr


def test_renew_skips_released_identity(tmp_path, environment):
    data = _make_data(tmp_path / "data", issued_days_ago=80)
    store = open_store(_store_url(data))
    name = IdentityService(store.engine, "crosswaretls.com", SystemClock()).release(TENANT).name
    store.close()

    planned = tenanttls("identity", "renew", "--dry-run", "--data", str(data), env=environment)
    renewed = tenanttls("identity", "renew", "--json", "--data", str(data), env=environment)
    shown = tenanttls("identity", "show", TENANT, "--json", "--data", str(data), env=environment)

    assert "due for renewal: 0" in planned.stdout
    assert f"not renewed, identity released: 1\n  {name} tenant={TENANT}" in planned.stdout
    assert json.loads(renewed.stdout)["renewed"] == []
    assert json.loads(renewed.stdout)["released"][0]["tenant_id"] == TENANT
    assert "the identity is released (the tenant left)" in json.loads(shown.stdout)["warnings"][1]


def test_data_folder_config_file_read(tmp_path, environment):
    data = _make_data(tmp_path / "data", issued_days_ago=10)
    default = tenanttls("identity", "renew", "--dry-run", "--data", str(data), env=environment)
    (data / "tenanttls.toml").write_text("[tenanttls]\nrenewal_fraction = 0.9\n")

    configured = tenanttls("identity", "renew", "--dry-run", "--data", str(data), env=environment)

    assert "due for renewal: 0" in default.stdout
    assert configured.returncode == 0, configured.stderr
    assert "due for renewal: 1" in configured.stdout


def test_renew_without_key_encryption_key(data):
    result = tenanttls("identity", "renew", "--data", str(data), env={"TENANTTLS_KEY_ENCRYPTION_KEY": ""})

    assert result.returncode == 78
    assert "key_encryption_key is not set" in result.stderr


def test_dns_serve_answers_and_stops(data, environment):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from tenanttls.cli import main; main()", "dns", "serve", "--port", str(port),
         "--data", str(data)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **environment},
    )
    try:
        banner = process.stderr.readline()
        values = lookup_txt("127.0.0.1", port, "missing.crosswaretls.com")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)

    assert f"serving zone crosswaretls.com on 127.0.0.1:{port}" in banner
    assert values == []
    assert process.returncode == 0


@pytest.mark.parametrize("port", ["70000", "-5"])
def test_dns_serve_port_out_of_range(data, environment, port):
    result = tenanttls("dns", "serve", "--port", port, "--data", str(data), env=environment)

    assert result.returncode == 2
    assert f"invalid DNS server port {port}: use 1-65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_renew_with_other_key_encryption_key(tmp_path):
    data = _make_data(tmp_path / "data", issued_days_ago=80)
    other = {"TEST_KEK": base64.b64encode(bytes(32)).decode(), "TENANTTLS_KEY_ENCRYPTION_KEY": "env:TEST_KEK"}

    result = tenanttls("identity", "renew", "--data", str(data), env=other)

    assert result.returncode == 78
    assert f"has key id {KeyStore(bytes(32)).key_id}, but the store contains" in result.stderr
    assert f"key id {KeyStore(KEY).key_id} (1 key)" in result.stderr


def test_rekey_then_renew_with_new_key(tmp_path, environment):
    data = _make_data(tmp_path / "data", issued_days_ago=80)
    new = {"NEW_KEK": base64.b64encode(bytes(32)).decode(), "TENANTTLS_KEY_ENCRYPTION_KEY": "env:NEW_KEK"}

    rekeyed = tenanttls("identity", "rekey", "--old-key", "env:TEST_KEK", "--data", str(data), env={**environment, **new})
    renewed = tenanttls("identity", "renew", "--json", "--data", str(data), env=new)

    assert rekeyed.returncode == 0, rekeyed.stderr
    assert f"re-encrypted 1 certificate keys and 0 ACME account keys from key id {KeyStore(KEY).key_id}" in rekeyed.stdout
    assert renewed.returncode == 0, renewed.stderr
    assert len(json.loads(renewed.stdout)["renewed"]) == 1


@pytest.mark.parametrize("markup", ["rich", None])
@pytest.mark.parametrize(
    "command",
    [["identity", "show"], ["identity", "renew"], ["identity", "rekey"], ["dns", "serve"], ["script"], ["drift"]],
)
def test_help_names_config_table(command, markup, monkeypatch):
    from typer.testing import CliRunner

    from tenanttls.cli import app

    monkeypatch.setattr(app, "rich_markup_mode", markup)
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert "settings in a table named tenanttls" in " ".join(result.output.split())
    assert "\\[" not in result.output


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("TENANTTLS_ACME_DIRECTORY", "http://127.0.0.1/dir", "invalid acme_directory 'http://127.0.0.1/dir'"),
        ("TENANTTLS_CERTIFICATE_LIFETIME", "0", "invalid certificate_lifetime 0s"),
        ("TENANTTLS_ORDERS_PER_HOUR", "0", "invalid orders_per_hour 0"),
    ],
)
def test_renew_setting_errors_exit_78(tmp_path, environment, setting, value, message):
    data = _make_data(tmp_path / "data", issued_days_ago=80)
    backend = "acme" if setting == "TENANTTLS_ACME_DIRECTORY" else "local-ca"

    result = tenanttls(
        "identity", "renew", "--data", str(data), env={**environment, "TENANTTLS_ISSUER_BACKEND": backend, setting: value}
    )

    assert result.returncode == 78
    assert message in result.stderr
