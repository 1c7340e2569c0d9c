"""The local CA is built only when a certificate is issued, so plan creates no files."""

from __future__ import annotations

from tenanttls.certificates.local_ca import LocalCaIssuer
from tenanttls.migration.wiring import LazyIssuer


def test_lazy_issuer_backend_builds_nothing(tmp_path):
    issuer = LazyIssuer("local-ca", lambda: LocalCaIssuer(tmp_path / "ca"))

    assert issuer.backend == "local-ca"
    assert not (tmp_path / "ca").exists()


def test_lazy_issuer_builds_once_on_issue(tmp_path):
    built = []
    issuer = LazyIssuer("local-ca", lambda: built.append(1) or LocalCaIssuer(tmp_path / "ca"))

    first = issuer.issue("one.crosswaretls.com")
    issuer.issue("two.crosswaretls.com")

    assert built == [1]
    assert (tmp_path / "ca" / "ca.pem").exists()
    assert first.name == "one.crosswaretls.com"
