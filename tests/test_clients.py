"""build_clients: the three Microsoft clients from settings, against the simulator."""

import pytest

from tenanttls.clients import build_clients
from tenanttls.config import Settings
from tenanttls.errors import ConfigurationError
from tests.fixtures.simulator import DEFAULT_TENANT_ID
from tests.transport.scripted_server import ScriptedServer


def settings_for(simulator, credentials, tmp_path, **overrides):
    key = tmp_path / "app.key"
    key.write_text(credentials.private_key_pem)
    key.chmod(0o600)
    certificate = tmp_path / "app.pem"
    certificate.write_text(credentials.certificate_pem)
    values = {
        "login_url": simulator.base_url,
        "graph_url": simulator.base_url,
        "exchange_url": simulator.base_url,
        "client_id": credentials.client_id,
        "client_certificate": str(certificate),
        "client_key": f"file:{key}",
        "microsoft_ca_bundle": str(simulator.ca_path),
        **overrides,
    }
    return Settings(**values)


def test_clients_share_transport(simulator, app_credentials, tmp_path):
    settings = settings_for(simulator, app_credentials, tmp_path)

    with build_clients(settings, transport_options={"tenant_concurrency": 2}) as clients:
        connectors = clients.exchange.get_inbound_connectors(DEFAULT_TENANT_ID)
        domains = clients.graph.list_domains(DEFAULT_TENANT_ID)

        assert [c.name for c in connectors] == ["CrosswareInboundConnector"]
        assert "contoso.onmicrosoft.com" in {d.id for d in domains}
        assert clients.exchange.transport is clients.graph.transport is clients.transport
        assert clients.transport.policy.tenant_concurrency == 2
        assert clients.transport.stats().requests == 2


def test_exchange_page_size_passed(simulator, app_credentials, tmp_path):
    settings = settings_for(simulator, app_credentials, tmp_path)

    with build_clients(settings, exchange_page_size=1) as clients:
        domains = clients.exchange.get_accepted_domains(DEFAULT_TENANT_ID)

        assert clients.exchange.page_size == 1
        assert [d.domain_name for d in domains] == ["contoso.onmicrosoft.com", "contoso.com"]
        assert clients.transport.stats().requests == 2


def test_thumbprint_instead_of_certificate(simulator, app_credentials, tmp_path):
    settings = settings_for(simulator, app_credentials, tmp_path, client_certificate=app_credentials.thumbprint)

    with build_clients(settings) as clients:
        assert clients.tokens.get_token(DEFAULT_TENANT_ID, "https://graph.microsoft.com/.default")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"client_id": ""}, "client_id is not set"),
        ({"client_key": ""}, "client_key is not set"),
        ({"client_certificate": ""}, "client_certificate is not set"),
        ({"client_certificate": "/nonexistent/app.pem"}, "cannot read /nonexistent/app.pem: no such file or directory;"),
        ({"client_key": "env:TENANTTLS_TEST_MISSING_KEY"}, "TENANTTLS_TEST_MISSING_KEY is not set"),
    ],
    ids=["client-id", "key", "certificate", "certificate-path", "key-env"],
)
def test_missing_settings_rejected(simulator, app_credentials, tmp_path, overrides, message):
    settings = settings_for(simulator, app_credentials, tmp_path, **overrides)

    with pytest.raises(ConfigurationError, match=message):
        build_clients(settings)


def test_unknown_transport_option_rejected(simulator, app_credentials, tmp_path):
    settings = settings_for(simulator, app_credentials, tmp_path)

    with pytest.raises(ConfigurationError, match="unknown transport option"):
        build_clients(settings, transport_options={"retries": 3})


@pytest.mark.parametrize("setting", ["login_url", "graph_url", "exchange_url"])
def test_plain_http_url_rejected(simulator, app_credentials, tmp_path, setting):
    listener = ScriptedServer().start()
    try:
        settings = settings_for(simulator, app_credentials, tmp_path, **{setting: listener.url})

        with pytest.raises(ConfigurationError) as caught:
            build_clients(settings)

        assert f"invalid {setting} '{listener.url}'" in str(caught.value)
        assert "use " + listener.url.replace("http://", "https://") in str(caught.value)
        assert listener.requests == []
    finally:
        listener.stop()


def test_missing_certificate_named_once(simulator, app_credentials, tmp_path):
    settings = settings_for(simulator, app_credentials, tmp_path, client_certificate="/nonexistent/app.pem")

    with pytest.raises(ConfigurationError) as caught:
        build_clients(settings)

    assert str(caught.value).count("/nonexistent/app.pem") == 1
    assert "Errno" not in str(caught.value)
