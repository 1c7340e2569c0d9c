from __future__ import annotations

import base64

import pytest

from tenanttls.certificates.acme_issuer import AcmeIssuer
from tenanttls.certificates.factory import build_certificate_service, build_issuer, load_roots
from tenanttls.certificates.local_ca import LocalCaIssuer
from tenanttls.config import load_settings
from tenanttls.dns.publisher import Rfc2136Publisher
from tenanttls.errors import ConfigurationError

PUBLISHER = Rfc2136Publisher("127.0.0.1", 53, "crosswaretls.test", None)


def test_local_ca_in_data_folder(engine, clock, tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path)

    issuer = build_issuer(settings, engine, PUBLISHER, clock)

    assert isinstance(issuer, LocalCaIssuer)
    assert issuer.ca_path == tmp_path / "ca" / "ca.pem"


def test_acme_with_roots_file(engine, clock, tmp_path, monkeypatch):
    roots_path = tmp_path / "roots.pem"
    roots_path.write_text(LocalCaIssuer(tmp_path / "ca", clock=clock).ca_path.read_text())
    monkeypatch.setenv("TEST_KEK", base64.b64encode(bytes(32)).decode())
    settings = load_settings(
        environ={},
        issuer_backend="acme",
        acme_directory="https://127.0.0.1:14000/dir",
        acme_roots=str(roots_path),
        key_encryption_key="env:TEST_KEK",
    )

    issuer = build_issuer(settings, engine, PUBLISHER, clock)

    assert isinstance(issuer, AcmeIssuer)
    assert len(issuer.trust_roots()) == 1


def test_acme_without_directory_rejected(engine, clock):
    settings = load_settings(environ={}, issuer_backend="acme")

    with pytest.raises(ConfigurationError, match="acme_directory is empty"):
        build_issuer(settings, engine, PUBLISHER, clock)


def test_service_without_key_encryption_key_rejected(engine, clock, tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path)

    with pytest.raises(ConfigurationError, match="key_encryption_key is not set"):
        build_certificate_service(settings, engine, PUBLISHER, clock)


def test_system_roots_loaded():
    roots = load_roots("")

    assert roots is None or len(roots) > 10


def test_missing_roots_file_rejected(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read acme_roots .*missing.pem: No such file or directory"):
        load_roots(str(tmp_path / "missing.pem"))


def test_roots_file_without_pem_rejected(tmp_path):
    (tmp_path / "roots.pem").write_text("not a certificate\n")

    with pytest.raises(ConfigurationError, match="invalid acme_roots .*roots.pem: the file has no valid PEM certificate"):
        load_roots(str(tmp_path / "roots.pem"))
