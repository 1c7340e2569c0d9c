"""TokenProvider against the simulated Microsoft identity platform over HTTPS."""

import logging
import socket
import ssl
import threading
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest

from tenanttls.clock import ManualClock
from tenanttls.errors import ConfigurationError, ConsentRequired, CredentialError, MicrosoftServiceError, NotFound
from tenanttls.identity.tokens import TokenProvider
from tests.fixtures.simulator import (
    DEFAULT_INITIAL_DOMAIN,
    DEFAULT_REDIRECT_URI,
    DEFAULT_TENANT_ID,
    make_app_credentials,
    make_tenant,
)
from tests.transport.scripted_server import ScriptedServer
from tests.transport.simulator_api import calls, inspect

EXCHANGE = "https://outlook.office365.com/.default"
GRAPH = "https://graph.microsoft.com/.default"


def provider(simulator, credentials, *, certificate=None, clock=None):
    return TokenProvider(
        credentials.client_id,
        credentials.private_key_pem,
        certificate or credentials.certificate_pem,
        login_url=simulator.base_url,
        verify=simulator.ca_path,
        clock=clock,
    )


def token_calls(simulator):
    return calls(simulator)["by_endpoint"].get("identity:token", 0)


def test_token_for_tenant(simulator, app_credentials):
    tokens = provider(simulator, app_credentials)

    token = tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tid"] == DEFAULT_TENANT_ID
    assert claims["aud"] in ("https://outlook.office365.com", "00000002-0000-0ff1-ce00-000000000000")
    assert "Exchange.ManageAsApp" in claims["roles"]


def test_token_by_initial_domain(simulator, app_credentials):
    tokens = provider(simulator, app_credentials)

    token = tokens.get_token(DEFAULT_INITIAL_DOMAIN, GRAPH)

    assert jwt.decode(token, options={"verify_signature": False})["tid"] == DEFAULT_TENANT_ID


def test_thumbprint_credential(simulator, app_credentials):
    tokens = provider(simulator, app_credentials, certificate=app_credentials.thumbprint)

    assert tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)


def test_tokens_cached_per_tenant_and_scope(simulator, app_credentials):
    tokens = provider(simulator, app_credentials)

    first = tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)
    second = tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)
    graph = tokens.get_token(DEFAULT_TENANT_ID, GRAPH)

    assert first == second
    assert graph != first
    assert token_calls(simulator) == 2


def test_concurrent_callers_share_token(simulator, app_credentials):
    tokens = provider(simulator, app_credentials)
    barrier = threading.Barrier(8)
    issued = []

    def fetch():
        barrier.wait()
        issued.append(tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(issued) == 8
    assert len(set(issued)) == 1
    assert token_calls(simulator) == 1


def test_expired_token_renewed(simulator, app_credentials):
    clock = ManualClock(datetime.now(timezone.utc))
    tokens = provider(simulator, app_credentials, clock=clock)
    tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    clock.advance(3600)
    tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    assert token_calls(simulator) == 2


def test_invalidate_gets_new_token(simulator, app_credentials):
    tokens = provider(simulator, app_credentials)
    tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    tokens.invalidate(DEFAULT_TENANT_ID, EXCHANGE)
    tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    assert token_calls(simulator) == 2


def test_consent_missing(simulator_factory, app_credentials, caplog):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})
    caplog.set_level(logging.DEBUG, logger="tenanttls.identity")

    with pytest.raises(ConsentRequired, match="AADSTS700016") as caught:
        provider(simulator, app_credentials).get_token(tenant["tenant_id"], EXCHANGE)

    assert caught.value.tenant == tenant["tenant_id"]
    assert f"client_id {app_credentials.client_id}" in str(caught.value)
    failures = [r for r in caplog.records if r.getMessage().startswith("token request failed")]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG


def test_consent_not_yet_effective(simulator_factory, app_credentials):
    tenant = make_tenant(delays={"consent_seconds": 600})
    clock = ManualClock(datetime.now(timezone.utc))
    simulator = simulator_factory({"tenants": [tenant]}, clock=clock)
    tokens = provider(simulator, app_credentials)
    inspect(simulator, "POST", f"/tenants/{tenant['tenant_id']}/consent", {"granted": True})

    with pytest.raises(ConsentRequired):
        tokens.get_token(tenant["tenant_id"], EXCHANGE)

    clock.advance(601)
    assert tokens.get_token(tenant["tenant_id"], EXCHANGE)


def test_unregistered_certificate(simulator):
    stranger = make_app_credentials()
    tokens = TokenProvider(
        simulator.state.app["client_id"],
        stranger.private_key_pem,
        stranger.certificate_pem,
        login_url=simulator.base_url,
        verify=simulator.ca_path,
    )

    with pytest.raises(CredentialError, match="AADSTS700027"):
        tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)


def test_unknown_tenant_not_found(simulator, app_credentials):
    with pytest.raises(NotFound, match="was not found"):
        provider(simulator, app_credentials).get_token("0f0f0f0f-0000-4000-8000-000000000000", EXCHANGE)


def test_unreachable_login_is_service_error(app_credentials):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens = TokenProvider(
        app_credentials.client_id,
        app_credentials.private_key_pem,
        app_credentials.certificate_pem,
        login_url=f"https://127.0.0.1:{port}",
        timeout=2.0,
    )

    with pytest.raises(MicrosoftServiceError) as caught:
        tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    assert f"Microsoft Entra ID at https://127.0.0.1:{port} could not be reached" in str(caught.value)
    assert ": connection refused; retry later" in str(caught.value)


def test_untrusted_server_is_configuration_error(simulator, app_credentials):
    tokens = TokenProvider(
        app_credentials.client_id,
        app_credentials.private_key_pem,
        app_credentials.certificate_pem,
        login_url=simulator.base_url,
    )

    with pytest.raises(ConfigurationError) as caught:
        tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

    assert str(caught.value).startswith(f"TLS certificate verification failed for {simulator.base_url}: ")
    assert "set microsoft_ca_bundle" in str(caught.value)
    assert "HTTPSConnectionPool" not in str(caught.value)


def test_missing_ca_bundle_rejected(app_credentials, tmp_path):
    missing = tmp_path / "missing-ca.pem"

    with pytest.raises(ConfigurationError, match=f"CA bundle not found: {missing}"):
        TokenProvider(
            app_credentials.client_id, app_credentials.private_key_pem, app_credentials.certificate_pem, verify=missing
        )


def test_plain_http_login_url_rejected(app_credentials):
    with pytest.raises(ConfigurationError, match="invalid login_url 'http://127.0.0.1:8080': expected an https URL"):
        TokenProvider(
            app_credentials.client_id,
            app_credentials.private_key_pem,
            app_credentials.certificate_pem,
            login_url="http://127.0.0.1:8080",
        )


def test_login_port_without_tls(app_credentials):
    plain = ScriptedServer().start()
    try:
        login_url = plain.url.replace("http://", "https://")
        tokens = TokenProvider(
            app_credentials.client_id, app_credentials.private_key_pem, app_credentials.certificate_pem, login_url=login_url
        )

        with pytest.raises(ConfigurationError) as caught:
            tokens.get_token(DEFAULT_TENANT_ID, EXCHANGE)

        assert str(caught.value).startswith(f"{login_url} did not respond with TLS")
        assert "check login_url" in str(caught.value)
    finally:
        plain.stop()


def test_ca_environment_does_not_override(simulator, app_credentials, monkeypatch, tmp_path):
    other_ca = tmp_path / "other.pem"
    other_ca.write_text(make_app_credentials().certificate_pem)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))

    assert provider(simulator, app_credentials).get_token(DEFAULT_TENANT_ID, EXCHANGE)


def test_admin_consent_round_trip(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})
    tokens = provider(simulator, app_credentials)

    url = tokens.admin_consent_url(tenant["tenant_id"], DEFAULT_REDIRECT_URI, "state-42")
    response = httpx.get(url, verify=ssl.create_default_context(cafile=str(simulator.ca_path)))
    location = urlsplit(response.headers["Location"])
    result = tokens.parse_consent_callback(dict(parse_qsl(location.query)), "state-42")

    assert response.status_code == 302
    assert f"{location.scheme}://{location.netloc}{location.path}" == DEFAULT_REDIRECT_URI
    assert result.granted is True
    assert result.tenant_id == tenant["tenant_id"]
    assert tokens.get_token(tenant["tenant_id"], EXCHANGE)


def test_admin_consent_declined(simulator_factory, app_credentials):
    tenant = make_tenant(consent=False, consent_decision="deny")
    simulator = simulator_factory({"tenants": [tenant]})
    tokens = provider(simulator, app_credentials)

    url = tokens.admin_consent_url(tenant["tenant_id"], DEFAULT_REDIRECT_URI, "state-7")
    response = httpx.get(url, verify=ssl.create_default_context(cafile=str(simulator.ca_path)))
    result = tokens.parse_consent_callback(dict(parse_qsl(urlsplit(response.headers["Location"]).query)), "state-7")

    assert result.granted is False
    assert result.error == "access_denied"
    with pytest.raises(ConsentRequired):
        tokens.get_token(tenant["tenant_id"], EXCHANGE)
