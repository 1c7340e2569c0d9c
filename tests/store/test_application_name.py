"""The application_name that store connections report to PostgreSQL, read back from pg_stat_activity.

Each entry point names its connections ``tenanttls-ROLE@HOST:PID``, so the server shows
which of them come from workers, relays, the portal, the DNS server or CLI commands.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tenanttls.store import db
from tenanttls.store.db import APPLICATION_NAME_MAX_BYTES, application_name, open_store, set_process_role
from tests.fixtures.smtp import LEGACY_NAME

KEY_ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def store_backend() -> str:
    """PostgreSQL only: SQLite has no application_name (the SQLite test builds its own URL)."""
    return "postgresql"


@pytest.fixture
def worker_role():
    set_process_role("worker")
    yield
    set_process_role(None)


def _own_name(store) -> str:
    """Return the application_name that pg_stat_activity shows for one of the store's connections."""
    with store.engine.connect() as connection:
        return connection.execute(
            text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        ).scalar_one()


def _name_at(url: str) -> str:
    """Open a store at `url`, return its connection's application_name and close the store."""
    store = open_store(url, create=True)
    try:
        return _own_name(store)
    finally:
        store.close()


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.mark.postgres
def test_connection_named_after_role(postgres_url, worker_role):
    name = _name_at(postgres_url)

    assert name == application_name()
    assert name.startswith("tenanttls-worker@")
    assert name.endswith(f":{os.getpid()}")


@pytest.mark.postgres
def test_connection_without_role(postgres_url):
    set_process_role(None)
    name = _name_at(postgres_url)

    assert name == f"tenanttls@{socket.gethostname()}:{os.getpid()}"[:APPLICATION_NAME_MAX_BYTES]


@pytest.mark.postgres
def test_url_application_name_wins(postgres_url, worker_role):
    name = _name_at(_with_query(postgres_url, "application_name=billing-report"))

    assert name == "billing-report"


@pytest.mark.postgres
def test_url_fallback_name_kept(postgres_url, worker_role):
    name = _name_at(_with_query(postgres_url, "fallback_application_name=ops-batch"))

    assert name == "ops-batch"


@pytest.mark.postgres
def test_pgappname_wins(postgres_url, worker_role, monkeypatch):
    monkeypatch.setenv("PGAPPNAME", "ops-console")
    name = _name_at(postgres_url)

    assert name == "ops-console"


@pytest.mark.postgres
def test_long_host_name_cut(postgres_url, worker_role, monkeypatch):
    monkeypatch.setattr(db.socket, "gethostname", lambda: "mail-relay-" + "x" * 80 + ".example.net")
    expected = application_name()
    name = _name_at(postgres_url)

    assert len(expected.encode()) == APPLICATION_NAME_MAX_BYTES
    assert expected.startswith("tenanttls-worker@mail-relay-xxx")
    assert expected.endswith(f":{os.getpid()}")
    assert name == expected


def test_sqlite_url_unchanged(tmp_path, worker_role):
    store = open_store(f"sqlite:///{tmp_path / 'tenanttls.db'}", create=True)
    try:
        query = dict(store.engine.url.query)
    finally:
        store.close()

    assert query == {}


# The entry points, run as an operator runs them ------------------------------------------------


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from tenanttls.cli import main; main()", *args]


def _environment(**values: str) -> dict[str, str]:
    # MSAL's requests session prefers these variables over the configured CA bundle.
    environment = {key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    environment.pop("PGAPPNAME", None)
    return {**environment, **values}


def _activity(url: str, process: subprocess.Popen, log: Path, *, until) -> list[tuple[str, str]]:
    """Poll pg_stat_activity of `url` until `until(rows)` holds; return (application_name, query) rows.

    Fails with the process's log when it exits first or nothing matches within 60 seconds.
    """
    engine = create_engine(url)
    rows: list[tuple[str, str]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as connection:
                rows = [tuple(row) for row in connection.execute(text(
                    "SELECT application_name, query FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ))]
            if until(rows):
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()
    pytest.fail(f"no matching connection in pg_stat_activity: {rows}; exit code {process.poll()}; log: {log.read_text()[-3000:]}")


def _start(arguments: list[str], log: Path, environment: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as output:
        return subprocess.Popen(_cli(*arguments), stdout=output, stderr=subprocess.STDOUT, env=environment)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _names(rows: list[tuple[str, str]], process: subprocess.Popen) -> set[str]:
    return {name for name, _query in rows if name.endswith(f":{process.pid}")}


def _write_engine_config(harness, path: Path) -> None:
    settings = harness.settings
    keys = ("login_url", "graph_url", "exchange_url", "client_id", "client_certificate", "client_key",
            "microsoft_ca_bundle", "key_encryption_key", "dns_server", "database_url")
    lines = ["[tenanttls]", f'data_dir = "{settings.data_dir}"']
    lines += [f'{key} = "{getattr(settings, key)}"' for key in keys]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("command", [["worker", "--poll", "0.2", "--drift-interval", "0"], ["portal", "--port", "0"]])
def test_engine_entry_point_named(command, engine_factory, postgres_url, tmp_path):
    harness = engine_factory([], store_url=postgres_url, wall_clock=True)
    config = tmp_path / "tenanttls.toml"
    _write_engine_config(harness, config)
    log = tmp_path / f"{command[0]}.log"
    process = _start([command[0], "--config", str(config), *command[1:]], log, _environment())
    try:
        rows = _activity(postgres_url, process, log, until=lambda rows: _names(rows, process))
    finally:
        _stop(process)

    assert _names(rows, process) == {f"tenanttls-{command[0]}@{socket.gethostname()}:{process.pid}"}


@pytest.mark.postgres
@pytest.mark.slow
def test_relay_connections_named(postgres_store, postgres_url, tmp_path, server_pair, legacy_pair):
    arguments = [
        "relay", "--data", str(tmp_path), "--listen", "127.0.0.1:0",
        "--tls-certificate", str(server_pair.certificate), "--tls-key", str(server_pair.key),
        "--legacy-certificate", str(legacy_pair.certificate), "--legacy-key", str(legacy_pair.key),
    ]
    environment = _environment(
        TENANTTLS_DATABASE_URL=postgres_url, TENANTTLS_KEY_ENCRYPTION_KEY="env:TEST_KEK", TEST_KEK=KEY_ENCRYPTION_KEY,
        TENANTTLS_LEGACY_CERTIFICATE_NAME=LEGACY_NAME,
    )
    log = tmp_path / "relay.log"
    process = _start(arguments, log, environment)
    try:
        rows = _activity(postgres_url, process, log, until=lambda rows: any(query.startswith("LISTEN") for _, query in rows))
    finally:
        _stop(process)

    expected = f"tenanttls-relay@{socket.gethostname()}:{process.pid}"
    listener = [name for name, query in rows if query.startswith("LISTEN")]
    assert listener == [expected]
    assert _names(rows, process) == {expected}


@pytest.mark.postgres
def test_dns_serve_named(postgres_store, postgres_url, tmp_path):
    arguments = ["dns", "serve", "--host", "127.0.0.1", "--port", "0", "--data", str(tmp_path)]
    environment = _environment(TENANTTLS_DATABASE_URL=postgres_url)
    log = tmp_path / "dns.log"
    process = _start(arguments, log, environment)
    try:
        rows = _activity(postgres_url, process, log, until=lambda rows: _names(rows, process))
    finally:
        _stop(process)

    assert _names(rows, process) == {f"tenanttls-dns@{socket.gethostname()}:{process.pid}"}


@pytest.mark.postgres
def test_cli_command_named(postgres_store, postgres_url, tmp_path):
    # A command's connections close when it exits, so the row it inserts records the name instead.
    with postgres_store.write() as connection:
        connection.execute(text(
            "ALTER TABLE tenants ADD COLUMN added_by text DEFAULT current_setting('application_name')"
        ))
    tenants_file = tmp_path / "tenants.csv"
    tenants_file.write_text(
        "tenant_id,initial_domain,display_name\n6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f,contoso.onmicrosoft.com,Contoso\n"
    )

    result = subprocess.run(
        _cli("tenants", "import", str(tenants_file), "--data", str(tmp_path)),
        capture_output=True, text=True, timeout=60, env=_environment(TENANTTLS_DATABASE_URL=postgres_url),
    )
    with postgres_store.engine.connect() as connection:
        added_by = connection.execute(text("SELECT added_by FROM tenants")).scalars().all()

    assert result.returncode == 0, result.stderr
    assert len(added_by) == 1
    assert added_by[0].startswith(f"tenanttls-cli@{socket.gethostname()}:")
