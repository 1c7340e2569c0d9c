"""End-to-end issuance: Pebble validates DNS-01 records that RFC 2136 updates put into Knot."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import insert, select

from tenanttls.certificates.acme_issuer import AcmeAccounts, AcmeIssuer
from tenanttls.certificates.identities import IdentityService
from tenanttls.certificates.issuer import check_certificate
from tenanttls.certificates.keystore import KeyStore
from tenanttls.certificates.names import new_label
from tenanttls.certificates.service import CertificateService
from tenanttls.clock import SystemClock
from tenanttls.dns.publisher import Rfc2136Publisher, lookup_txt
from tenanttls.dns.tsig import TsigKey
from tenanttls.errors import CertificateError, ConfigurationError, DnsError, InvalidInput
from tenanttls.store.schema import acme_accounts, relay_assignments, tenants
from tests.fixtures.dns import free_port, publisher_for

pytestmark = [pytest.mark.knot, pytest.mark.pebble]

KEY = bytes(range(32))
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _issuer(engine, pebble, publisher, **options):
    accounts = AcmeAccounts(engine, KeyStore(KEY), SystemClock())
    return AcmeIssuer(pebble.directory_url, publisher, accounts, pebble.tls_ca_path, roots=pebble.roots(), **options)


def _challenge_values(server, name):
    return lookup_txt(server.host, server.port, f"_acme-challenge.{name}")


def test_issue_from_pebble_through_knot(engine, knot, pebble):
    issuer = _issuer(engine, pebble, publisher_for(knot))
    name = f"{new_label()}.{knot.zone}"

    issued = issuer.issue(name)

    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]
    assert len(chain) >= 2
    assert issued.backend == "acme"
    assert check_certificate(issued, name, pebble.roots(), timedelta(days=30)) == []
    assert _challenge_values(knot, name) == []


def test_pebble_leaf_allows_client_auth(engine, knot, pebble):
    issuer = _issuer(engine, pebble, publisher_for(knot))

    issued = issuer.issue(f"{new_label()}.{knot.zone}")

    leaf = x509.load_pem_x509_certificates(issued.chain_pem.encode())[0]
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages


def test_account_key_kept_encrypted(engine, knot, pebble):
    issuer = _issuer(engine, pebble, publisher_for(knot))
    issuer.issue(f"{new_label()}.{knot.zone}")

    with engine.connect() as connection:
        row = connection.execute(select(acme_accounts)).one()

    assert row.directory_url == pebble.directory_url
    assert row.account_uri.startswith(pebble.directory_url.removesuffix("/dir"))
    assert b"PRIVATE KEY" not in row.key_ciphertext


def test_account_reused_by_new_issuer(engine, knot, pebble):
    _issuer(engine, pebble, publisher_for(knot)).issue(f"{new_label()}.{knot.zone}")
    with engine.connect() as connection:
        first_uri = connection.execute(select(acme_accounts.c.account_uri)).scalar_one()

    _issuer(engine, pebble, publisher_for(knot)).issue(f"{new_label()}.{knot.zone}")

    with engine.connect() as connection:
        uris = connection.execute(select(acme_accounts.c.account_uri)).scalars().all()
    assert uris == [first_uri]


def test_same_name_twice_with_authorization_reuse(engine, knot, pebble_factory):
    pebble = pebble_factory({"PEBBLE_AUTHZREUSE": "100"})
    issuer = _issuer(engine, pebble, publisher_for(knot))
    name = f"{new_label()}.{knot.zone}"

    first = issuer.issue(name)
    second = issuer.issue(name)

    assert first.serial != second.serial
    assert _challenge_values(knot, name) == []


def test_survives_frequent_nonce_rejections(engine, knot, pebble_factory):
    pebble = pebble_factory({"PEBBLE_WFE_NONCEREJECT": "25"})
    issuer = _issuer(engine, pebble, publisher_for(knot))
    name = f"{new_label()}.{knot.zone}"

    issued = issuer.issue(name)

    assert issued.name == name


def test_validation_failure_cleans_up(engine, knot, pebble, builtin_dns):
    # The records go to the built-in server, but Pebble queries Knot, so validation fails.
    issuer = _issuer(engine, pebble, publisher_for(builtin_dns), order_timeout=30)
    name = f"{new_label()}.{builtin_dns.zone}"

    with pytest.raises(CertificateError, match=f"ACME server could not validate {name}"):
        issuer.issue(name)
    assert _challenge_values(builtin_dns, name) == []


def test_refused_dns_update_reported(engine, knot, pebble):
    wrong_key = TsigKey.generate(knot.tsig.name)
    publisher = Rfc2136Publisher(knot.host, knot.port, knot.zone, wrong_key)
    issuer = _issuer(engine, pebble, publisher)
    name = f"{new_label()}.{knot.zone}"

    with pytest.raises(DnsError, match="^DNS server refused the update: BADSIG"):
        issuer.issue(name)
    assert _challenge_values(knot, name) == []


def test_server_down_reported(engine, knot):
    accounts = AcmeAccounts(engine, KeyStore(KEY), SystemClock())
    url = f"https://127.0.0.1:{free_port()}/dir"
    issuer = AcmeIssuer(url, publisher_for(knot), accounts, network_timeout=2)

    with pytest.raises(CertificateError, match=f"ACME server {url} is unreachable"):
        issuer.issue(f"{new_label()}.{knot.zone}")


def test_untrusted_server_certificate_reported(engine, knot, pebble):
    accounts = AcmeAccounts(engine, KeyStore(KEY), SystemClock())
    issuer = AcmeIssuer(pebble.directory_url, publisher_for(knot), accounts, network_timeout=5)

    with pytest.raises(CertificateError, match="TLS verification of ACME server .* failed"):
        issuer.issue(f"{new_label()}.{knot.zone}")


def test_problem_document_reported(engine, knot, pebble):
    issuer = _issuer(engine, pebble, publisher_for(knot))

    with pytest.raises(CertificateError, match="returned a problem for .*rejectedIdentifier"):
        issuer.issue(pebble.blocked_name)
    assert _challenge_values(knot, pebble.blocked_name) == []


def test_plain_http_directory_rejected(engine, knot):
    accounts = AcmeAccounts(engine, KeyStore(KEY), SystemClock())

    with pytest.raises(ConfigurationError, match="invalid acme_directory 'http://127.0.0.1/dir': the URL must start"):
        AcmeIssuer("http://127.0.0.1/dir", publisher_for(knot), accounts)


def test_service_renews_through_pebble(engine, knot, pebble):
    clock = SystemClock()
    issuer = _issuer(engine, pebble, publisher_for(knot))
    service = CertificateService(engine, issuer, KeyStore(KEY), clock, orders_per_hour=3600)
    name = IdentityService(engine, knot.zone, clock).allocate(TENANT).name
    old = service.ensure_certificate(TENANT, name)
    with engine.begin() as connection:
        connection.execute(
            insert(tenants).values(tenant_id=TENANT, initial_domain="contoso.onmicrosoft.com", created_at=clock.now())
        )
        connection.execute(
            insert(relay_assignments).values(
                tenant_id=TENANT, mode="unique", certificate_name=name, certificate_id=old.id,
                changed_at=clock.now(), version=1,
            )
        )

    new = service.renew(TENANT)

    with engine.connect() as connection:
        assignment = connection.execute(select(relay_assignments)).one()
    assert new.name == name
    assert new.serial != old.serial
    assert assignment.certificate_id == new.id
    assert assignment.certificate_name == name
    assert _challenge_values(knot, name) == []
