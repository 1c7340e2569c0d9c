"""``tenanttls simulator serve`` and ``seed-example`` run as a user runs them."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tenanttls.simulator.example import CONTOSO_ID, FABRIKAM_ID
from tests.fixtures.simulator import AppCredentials, token_for

# The console script installed next to the interpreter, as a user runs it.
TENANTTLS = [str(Path(sys.executable).with_name("tenanttls"))]


def _run(*arguments: str, **options) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TENANTTLS, *arguments], capture_output=True, text=True, timeout=60, **options)


def _start_serve(*arguments: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``simulator serve`` and return the process and the base URL it prints."""
    process = subprocess.Popen([*TENANTTLS, "simulator", "serve", *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("simulator listening: "):
        process.kill()
        raise AssertionError(f"serve did not start: {line}{process.communicate()[1]}")
    return process, line.split(": ", 1)[1].strip()


def _stop(process: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    """Send `sig` and return the exit status and the rest of the output (read line by line, as it was buffered)."""
    process.send_signal(sig)
    process.wait(timeout=30)
    assert process.stdout is not None
    return process.returncode, process.stdout.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_signal(tmp_path, sig):
    data = tmp_path / "data"
    process, base_url = _start_serve("--data", str(data))
    try:
        context = ssl.create_default_context(cafile=str(data / "tls" / "ca.pem"))
        health = httpx.get(f"{base_url}/_simulator/health", verify=context)
    finally:
        code, out = _stop(process, sig)

    assert health.json()["status"] == "ok"
    assert code == 0
    assert f"CA certificate: {data / 'tls' / 'ca.pem'}" in out
    assert out.rstrip().endswith("simulator stopped")


def test_seed_example_loads_and_gives_tokens(tmp_path):
    key = tmp_path / "app.key"
    seed_file = tmp_path / "seed.json"
    example = _run("simulator", "seed-example", "--key-out", str(key))
    seed_file.write_text(example.stdout)
    seed = json.loads(example.stdout)
    credentials = AppCredentials(
        client_id=seed["app"]["client_id"],
        private_key_pem=key.read_text(),
        certificate_pem=seed["app"]["certificates"][0],
        thumbprint=_sha1(seed["app"]["certificates"][0]),
        thumbprint_sha256="",
    )

    process, base_url = _start_serve("--data", str(tmp_path / "data"), "--seed", str(seed_file))
    try:
        server = _Running(base_url, tmp_path / "data" / "tls" / "ca.pem")
        contoso = token_for(server, credentials, "contoso.onmicrosoft.com")  # type: ignore[arg-type]
        fabrikam = token_for(server, credentials, FABRIKAM_ID)  # type: ignore[arg-type]
        context = ssl.create_default_context(cafile=str(server.ca_path))
        tenants = httpx.get(f"{base_url}/_simulator/tenants", verify=context).json()["tenants"]
    finally:
        _stop(process, signal.SIGTERM)

    assert example.returncode == 0
    assert key.stat().st_mode & 0o077 == 0
    assert "access_token" in contoso
    assert fabrikam["error_codes"] == [700016]
    assert [tenant["tenant_id"] for tenant in tenants] == [CONTOSO_ID, FABRIKAM_ID]


def test_seed_example_key_out_tightens_mode(tmp_path):
    key = tmp_path / "app.key"
    key.write_text("old contents")
    key.chmod(0o644)

    result = _run("simulator", "seed-example", "--key-out", str(key))

    assert result.returncode == 0
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert [path.name for path in tmp_path.iterdir()] == ["app.key"]


def test_seed_example_key_out_missing_folder(tmp_path):
    key = tmp_path / "missing" / "app.key"

    result = _run("simulator", "seed-example", "--key-out", str(key))

    assert result.returncode == 2
    assert f"error: cannot write the private key to {key}: the folder {key.parent} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_seed_example_without_key_says_so():
    result = _run("simulator", "seed-example")

    assert result.returncode == 0
    assert "--key-out" in result.stderr
    assert json.loads(result.stdout)["tenants"][0]["initial_domain"] == "contoso.onmicrosoft.com"


def test_seed_example_rejects_bad_client_id():
    result = _run("simulator", "seed-example", "--client-id", "abc")

    assert result.returncode == 2
    assert "invalid --client-id 'abc'" in result.stderr


def test_serve_rejects_bad_nameserver(tmp_path):
    result = _run("simulator", "serve", "--data", str(tmp_path), "--dns-nameserver", "ns.example:53")

    assert result.returncode == 78
    assert "invalid nameserver 'ns.example:53'" in result.stderr


def test_serve_rejects_bad_seed(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text('{"tenants": [{"tenant_id": "x"}]}')

    result = _run("simulator", "serve", "--data", str(tmp_path / "data"), "--seed", str(seed))

    assert result.returncode == 2
    assert 'error: invalid tenant_id "x" of tenants[0] in the seed: expected a GUID' in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--http-port", "70000"], "error: invalid --http-port 70000: expected a port from 1 to 65535, or 0 for a free one"),
        (["--http-port", "-1"], "error: invalid --http-port -1: expected a port from 1 to 65535"),
        (["--host", "999.1.1.1"], "error: invalid --host 999.1.1.1:"),
    ],
)
def test_serve_rejects_invalid_option(tmp_path, options, message):
    result = _run("simulator", "serve", "--data", str(tmp_path / "data"), *options)

    assert result.returncode == 78
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_rejects_file_as_data(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text("{}")

    result = _run("simulator", "serve", "--data", str(seed))

    assert result.returncode == 78
    assert f"error: cannot use {seed} as the data folder: it is a file" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reports_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _run("simulator", "serve", "--data", str(tmp_path), "--http-port", str(busy.getsockname()[1]))

    assert result.returncode == 78
    assert "cannot listen on 127.0.0.1:" in result.stderr


class _Running:
    """What `token_for` needs of a simulator started by the CLI: its base URL and CA path."""

    def __init__(self, base_url: str, ca_path: Path) -> None:
        self.base_url = base_url
        self.ca_path = ca_path


def _sha1(certificate_pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(certificate_pem.encode()).fingerprint(hashes.SHA1()).hex().upper()


def test_serve_rejects_deeply_nested_seed(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text("[" * 100_000 + "]" * 100_000)

    result = _run("simulator", "serve", "--data", str(tmp_path / "data"), "--seed", str(seed))

    assert result.returncode == 2
    assert f"error: seed file {seed} nests arrays or objects more than 64 levels deep" in result.stderr
    assert "Traceback" not in result.stderr
