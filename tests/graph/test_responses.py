"""GraphDomainsClient against scripted replies: the response shapes the simulator does not produce."""

import logging
import uuid

import pytest

from tenanttls.clock import ManualClock
from tenanttls.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidRequest,
    MicrosoftServiceError,
    NotFound,
    PermissionDenied,
    UnexpectedResponse,
)
from tenanttls.graph import GraphDomainsClient
from tenanttls.transport import Transport, TransportPolicy
from tests.transport.scripted_server import Reply, ScriptedServer, StaticTokens

TENANT = "contoso.onmicrosoft.com"
NAME = "k3j5h2g4f6d8s0a1q2w3e4r5t6.crosswaretls.com"
DOMAIN = {"id": NAME, "isVerified": False, "isDefault": False, "isInitial": False, "isRoot": True, "authenticationType": "Managed", "supportedServices": []}
TXT = {"recordType": "Txt", "label": NAME, "text": "MS=ms12345678", "ttl": 3600, "isOptional": False, "supportedService": "Email"}
MX = {"recordType": "Mx", "label": NAME, "mailExchange": "ms12345678.msv1.invalid", "preference": 32767, "ttl": 3600}
NOT_FOUND = {"error": {"code": "Request_ResourceNotFound", "message": f"Resource '{NAME}' does not exist.", "innerError": {}}}


@pytest.fixture
def tokens():
    return StaticTokens()


@pytest.fixture
def client(scripted, tokens):
    transport = Transport(TransportPolicy(backoff_base=0.01), verify=scripted.ca_path, clock=ManualClock())
    yield GraphDomainsClient(tokens, base_url=scripted.url, transport=transport)
    transport.close()


def test_add_domain_request(client, scripted):
    scripted.default = Reply(201, DOMAIN)

    domain = client.add_domain(TENANT, NAME.upper())

    request = scripted.requests[0]
    assert domain.id == NAME
    assert domain.is_verified is False
    assert request.method == "POST"
    assert request.path == "/v1.0/domains"
    assert request.json() == {"id": NAME}
    assert request.headers["Authorization"] == "Bearer token-1"
    assert uuid.UUID(request.headers["client-request-id"])


def test_get_domain(client, scripted):
    scripted.default = Reply(200, dict(DOMAIN, isVerified=True))

    domain = client.get_domain(TENANT, NAME)

    assert domain.is_verified is True
    assert scripted.requests[0].path == f"/v1.0/domains/{NAME}"


def test_missing_domain_not_found(client, scripted):
    scripted.default = Reply(404, NOT_FOUND)

    with pytest.raises(NotFound, match="does not exist") as caught:
        client.get_domain(TENANT, NAME)

    assert caught.value.operation == f"GET /v1.0/domains/{NAME}"
    assert caught.value.status == 404


def test_bare_404_not_not_found(client, scripted):
    scripted.default = Reply(404, "<html>no such page</html>")

    with pytest.raises(UnexpectedResponse) as caught:
        client.get_domain(TENANT, NAME)

    assert not isinstance(caught.value, NotFound)


def test_server_error_not_not_found(client, scripted):
    scripted.default = Reply(502, "<html>Bad gateway</html>")

    with pytest.raises(MicrosoftServiceError):
        client.get_domain(TENANT, NAME)


def test_verification_records_paged(client, scripted):
    scripted.replies = [
        Reply(200, {"value": [TXT], "@odata.nextLink": scripted.url + f"/v1.0/domains/{NAME}/verificationDnsRecords?$skiptoken=2"}),
        Reply(200, {"value": [MX]}),
    ]

    records = client.list_verification_records(TENANT, NAME)

    assert [r.record_type for r in records] == ["Txt", "Mx"]
    assert records[0].text == "MS=ms12345678"
    assert records[1].mail_exchange == "ms12345678.msv1.invalid"
    assert len(scripted.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [Reply(200, "<html/>"), Reply(200, b'{"value": [{"recordType"'), Reply(200, {}), Reply(200, {"value": [{"text": "MS=ms1"}]})],
    ids=["html", "truncated", "no-value", "no-record-type"],
)
def test_malformed_records_raise_unexpected(client, scripted, reply):
    scripted.default = reply

    with pytest.raises(UnexpectedResponse):
        client.list_verification_records(TENANT, NAME)


def test_domain_without_id_unexpected(client, scripted):
    scripted.default = Reply(200, {"isVerified": True})

    with pytest.raises(UnexpectedResponse) as caught:
        client.get_domain(TENANT, NAME)

    assert str(caught.value).startswith("Graph returned an object without the 'id' field for GET /v1.0/domains/")


def test_verify_failure_is_invalid_request(client, scripted):
    scripted.default = Reply(400, {"error": {"code": "Request_BadRequest", "message": "Domain verification failed."}})

    with pytest.raises(InvalidRequest, match="Domain verification failed"):
        client.verify_domain(TENANT, NAME)

    assert scripted.requests[0].path == f"/v1.0/domains/{NAME}/verify"
    assert len(scripted.requests) == 1


def test_forbidden(client, scripted):
    scripted.default = Reply(403, {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}})

    with pytest.raises(PermissionDenied, match="Domain.ReadWrite.All") as caught:
        client.add_domain(TENANT, NAME)

    assert "Insufficient privileges. The app needs the Domain.ReadWrite.All" in str(caught.value)
    assert ".;" not in str(caught.value)


def test_delete_domain(client, scripted):
    scripted.default = Reply(204, b"")

    assert client.delete_domain(TENANT, NAME) is None
    assert scripted.requests[0].method == "DELETE"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_domain("contoso", NAME),
        lambda c: c.get_domain(TENANT, ""),
        lambda c: c.get_domain(TENANT, "*.crosswaretls.com"),
        lambda c: c.add_domain(TENANT, "under_score.example.com"),
        lambda c: c.add_domain(TENANT, ("a" * 64) + ".example.com"),
        lambda c: c.verify_domain(TENANT, "nodot"),
        lambda c: c.delete_domain(TENANT, "../../users"),
    ],
    ids=["tenant", "empty", "wildcard", "underscore", "label-too-long", "single-label", "path"],
)
def test_bad_input_rejected_before_request(client, scripted, call):
    with pytest.raises(InvalidInput):
        call(client)

    assert scripted.requests == []


def test_plain_http_base_url_rejected(tokens):
    with pytest.raises(ConfigurationError, match="invalid graph_url 'http://127.0.0.1:8080': expected an https URL"):
        GraphDomainsClient(tokens, base_url="http://127.0.0.1:8080")


def test_plain_http_port_not_retried(tokens):
    plain = ScriptedServer().start()
    transport = Transport(clock=ManualClock())
    try:
        client = GraphDomainsClient(tokens, base_url=plain.url.replace("http://", "https://"), transport=transport)

        with pytest.raises(ConfigurationError, match="did not respond with TLS .*; check graph_url"):
            client.get_domain(TENANT, NAME)

        assert transport.stats().requests == 1
    finally:
        transport.close()
        plain.stop()


def test_raised_errors_logged_at_debug(client, scripted, caplog):
    scripted.default = Reply(404, NOT_FOUND)
    caplog.set_level(logging.DEBUG, logger="tenanttls")

    with pytest.raises(NotFound):
        client.get_domain(TENANT, NAME)

    graph_records = [r for r in caplog.records if r.name == "tenanttls.graph.client"]
    assert len(graph_records) == 1
    assert graph_records[0].levelno == logging.DEBUG
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name.startswith("tenanttls"))
