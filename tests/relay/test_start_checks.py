"""Checks of the relay's certificate, key and CA files at start, and faults found later."""

from __future__ import annotations

import logging
import shutil

import aiosmtplib
import pytest

from tenanttls.errors import ConfigurationError, RelayError
from tenanttls.relay import LegacyCertificate
from tests.fixtures.smtp import LEGACY_NAME, add_tenant, outbound_message, store_certificate, submit, switch_to_unique

TENANT_A = "0b5e8a3c-7d1f-4a2b-9c6e-1f2a3b4c5d6e"
UNIQUE_A = "q7k2m4p9x3c8v1b6n5z0w2r4ta.crosswaretls.com"


@pytest.fixture
def tenant(store, mail_views):
    add_tenant(store, TENANT_A, "contoso.onmicrosoft.com")
    mail_views.add_tenant(TENANT_A, ["contoso.onmicrosoft.com", "contoso.com"])


def message(message_id: str = "<m@contoso.com>") -> bytes:
    return outbound_message(TENANT_A, "alice@contoso.com", "bob@contoso.com", message_id)


def test_missing_smart_host_ca(relay_factory, tmp_path):
    missing = tmp_path / "no-such-ca.pem"

    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", smart_host_ca=missing)

    text = str(error.value)
    assert f"failed to read the smart host CA file {missing}" in text
    assert "relay_smart_host_ca (--smart-host-ca)" in text


def test_garbage_smart_host_ca(relay_factory, tmp_path):
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")

    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", smart_host_ca=garbage)

    assert f"invalid smart host CA file {garbage}: it contains no PEM certificate" in str(error.value)
    assert "DATA/tls/ca.pem" in str(error.value)


def test_missing_legacy_certificate(relay_factory, legacy_pair, tmp_path):
    missing = tmp_path / "legacy.pem"

    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", legacy=LegacyCertificate(LEGACY_NAME, missing, legacy_pair.key))

    assert f"failed to read the legacy client certificate {LEGACY_NAME} file {missing}" in str(error.value)
    assert "legacy_certificate (--legacy-certificate)" in str(error.value)


def test_legacy_key_of_other_certificate(relay_factory, legacy_pair, server_pair):
    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", legacy=LegacyCertificate(LEGACY_NAME, legacy_pair.certificate, server_pair.key))

    text = str(error.value)
    assert f"in {legacy_pair.certificate} and the key in {server_pair.key} do not match" in text
    assert "legacy_key (--legacy-key)" in text


def test_legacy_key_not_pem(relay_factory, legacy_pair, tmp_path):
    garbage = tmp_path / "legacy.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")

    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", legacy=LegacyCertificate(LEGACY_NAME, legacy_pair.certificate, garbage))

    assert f"invalid key file {garbage} of the legacy client certificate" in str(error.value)
    assert "it contains no PEM private key" in str(error.value)


def test_server_key_mismatch_names_setting(relay_factory, server_pair, legacy_pair):
    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", tls_certificate=server_pair.certificate, tls_key=legacy_pair.key)

    text = str(error.value)
    assert f"the relay server certificate in {server_pair.certificate} and the key in {legacy_pair.key} do not match" in text
    assert "relay_tls_key (--tls-key)" in text
    assert "PEM lib" not in text


def test_missing_server_key_names_setting(relay_factory, server_pair, tmp_path):
    missing = tmp_path / "server.key"

    with pytest.raises(ConfigurationError) as error:
        relay_factory("127.0.0.1:25", tls_certificate=server_pair.certificate, tls_key=missing)

    text = str(error.value)
    assert f"failed to read the key file {missing} of the relay server certificate: No such file or directory" in text
    assert "relay_tls_key (--tls-key)" in text
    assert "Errno" not in text


async def test_ca_removed_after_start_defers(relay_factory, front_door, tenant, smtp_pki, store, keystore, tmp_path):
    # The CA file passed the start check and then disappeared; a new context needs it.
    ca_copy = tmp_path / "smart-host-ca.pem"
    shutil.copy(smtp_pki.ca_path, ca_copy)
    relay = relay_factory(f"127.0.0.1:{front_door.port}", smart_host_ca=ca_copy)
    ca_copy.unlink()
    switch_to_unique(store, TENANT_A, UNIQUE_A, store_certificate(store, keystore, TENANT_A, smtp_pki.client(UNIQUE_A)))

    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message())

    assert error.value.code == 451
    assert len(relay.relay.queue) == 0


class _BrokenKeyPairs:
    """A certificate source with a bug: it raises an error the relay does not expect."""

    def load_key_pair(self, certificate_id: int):
        raise RuntimeError("bug in the certificate source")


async def test_unexpected_error_defers_once_logged(relay_factory, front_door, tenant, smtp_pki, store, keystore, tmp_path, caplog):
    from tenanttls.relay import Relay, RelaySettings, RelayThread

    base = relay_factory(f"127.0.0.1:{front_door.port}").relay.settings
    settings = RelaySettings(**{**vars(base), "queue_dir": tmp_path / "broken-queue"})
    relay = RelayThread(Relay(settings, engine=store.engine, key_pairs=_BrokenKeyPairs())).start()
    try:
        switch_to_unique(store, TENANT_A, UNIQUE_A, store_certificate(store, keystore, TENANT_A, smtp_pki.client(UNIQUE_A)))
        with caplog.at_level(logging.ERROR, logger="tenanttls.relay"):
            for number in range(2):
                with pytest.raises(aiosmtplib.SMTPDataError) as error:
                    await submit(relay.port, smtp_pki, "alice@contoso.com", ["bob@contoso.com"], message(f"<{number}@contoso.com>"))
                assert error.value.code == 451
                assert "4.3.0" in error.value.message
    finally:
        relay.stop()

    records = [record for record in caplog.records if "accepting failed unexpectedly" in record.getMessage()]
    assert len(records) == 2
    assert all(f"tenant={TENANT_A}" in record.getMessage() for record in records)
    assert records[0].exc_info
    assert not records[1].exc_info
    assert "count=2" in records[1].getMessage()


def test_listen_on_unknown_host(relay_factory):
    with pytest.raises(RelayError) as error:
        relay_factory("127.0.0.1:25", listen_host="nonsense")

    assert "invalid listen host 'nonsense' in relay_listen (--listen)" in str(error.value)
    assert "choose another listen port" not in str(error.value)


def test_listen_port_in_use(relay_factory):
    first = relay_factory("127.0.0.1:25")

    with pytest.raises(RelayError) as error:
        relay_factory("127.0.0.1:25", listen_port=first.port)

    assert f"failed to listen on 127.0.0.1:{first.port}: the port is in use by another process" in str(error.value)
