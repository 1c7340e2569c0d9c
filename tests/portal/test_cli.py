"""``tenanttls portal`` as an operator starts it: a real process with a settings file."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tenanttls.portal.config import SESSION_KEY_FILE, load_session_secret
from tests.portal.conftest import PROVIDER_TENANT

REPOSITORY = Path(__file__).resolve().parents[2]


def _settings_file(path: Path, settings) -> Path:
    values = {
        "data_dir": str(settings.data_dir),
        "login_url": settings.login_url,
        "graph_url": settings.graph_url,
        "exchange_url": settings.exchange_url,
        "client_id": settings.client_id,
        "client_certificate": settings.client_certificate,
        "client_key": settings.client_key,
        "microsoft_ca_bundle": settings.microsoft_ca_bundle,
        "key_encryption_key": settings.key_encryption_key,
        "dns_server": settings.dns_server,
        "provider_tenant_id": PROVIDER_TENANT,
    }
    if settings.database_url:
        values["database_url"] = settings.database_url
    lines = ["[tenanttls]"] + [f'{key} = "{value}"' for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_portal_command_serves_pages(tmp_path, portal):
    config = _settings_file(tmp_path / "tenanttls.toml", portal.harness.settings)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "tenanttls"), "portal", "--config", str(config), "--port", "0"],
        cwd=REPOSITORY, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base_url = _wait_for_listener(process)
        landing = httpx.get(base_url)
        sign_in = httpx.get(f"{base_url}/sign-in")
        schema = httpx.get(f"{base_url}/openapi.json")

        assert landing.status_code == 200
        assert "Sign in with Microsoft" in landing.text
        assert sign_in.status_code == 303
        assert sign_in.headers["location"].startswith(f"{portal.simulator.base_url}/organizations/oauth2/v2.0/authorize?")
        assert f"redirect_uri={base_url.replace(':', '%3A').replace('/', '%2F')}%2Fauth%2Fcallback" in sign_in.headers["location"]
        assert schema.json()["info"]["title"] == "tenanttls portal API"
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=20)[1]
    # uvicorn shuts down cleanly, then raises the signal again so the exit status names it.
    assert process.returncode == -signal.SIGTERM
    assert "Finished server process" in rest


def test_portal_command_reads_data_folder(portal):
    """``--data DIR`` alone finds DIR/tenanttls.toml and the store DIR/tenanttls.db."""
    settings = portal.harness.settings
    _settings_file(settings.data_dir / "tenanttls.toml", settings)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "tenanttls"), "portal", "-d", str(settings.data_dir), "--port", "0"],
        cwd=REPOSITORY, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base_url = _wait_for_listener(process)
        operator_sign_in = httpx.get(f"{base_url}/operator/sign-in")
        assert operator_sign_in.status_code == 303
        assert f"/{PROVIDER_TENANT}/oauth2/v2.0/authorize?" in operator_sign_in.headers["location"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def _wait_for_listener(process: subprocess.Popen) -> str:
    """Return the portal's URL from uvicorn's start-up line on stderr."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"tenanttls portal exited with {process.returncode}")
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("tenanttls portal did not report its address within 30 s")


def test_session_key_created_private_and_kept(tmp_path):
    first = load_session_secret("", tmp_path)
    second = load_session_secret("", tmp_path)
    mode = stat.S_IMODE((tmp_path / SESSION_KEY_FILE).stat().st_mode)

    assert first == second
    assert len(first) == 64
    assert mode == 0o600


def test_session_key_from_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_KEY", "k" * 40)
    assert load_session_secret("env:PORTAL_KEY", tmp_path) == b"k" * 40
    assert not (tmp_path / SESSION_KEY_FILE).exists()
