"""ExchangeClient against scripted replies: the response shapes the simulator does not produce."""

import logging
import uuid

import pytest

from tenanttls.clock import ManualClock
from tenanttls.domain.exchange import ConnectorSettings
from tenanttls.errors import (
    ConfigurationError,
    CredentialError,
    InvalidInput,
    InvalidRequest,
    MicrosoftServiceError,
    NotFound,
    PermissionDenied,
    UnexpectedResponse,
)
from tenanttls.exchange import ExchangeClient
from tenanttls.exchange.parameters import MAX_PARAMETER_VALUE_LENGTH
from tenanttls.transport import Transport, TransportPolicy
from tests.transport.scripted_server import Reply, ScriptedServer, StaticTokens

TENANT = "0b7a4c1e-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
LEGACY = {
    "Name": "CrosswareInboundConnector",
    "Enabled": True,
    "ConnectorType": "onPremises",
    "ConnectorSource": "AdminUI",
    "SenderDomains": ["smtp:*;1"],
    "TlsSenderCertificateName": "*.crossware.co.nz",
    "RequireTls": True,
    "RestrictDomainsToCertificate": True,
    "CloudServicesMailEnabled": True,
}
NOT_FOUND = {
    "error": {
        "code": "NotFound",
        "message": "Error executing cmdlet",
        "details": [
            {
                "code": "Client",
                "target": "",
                "message": "Ex6F9304|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|"
                "The operation couldn't be performed because object 'Nope' couldn't be found.",
            }
        ],
    }
}


@pytest.fixture
def tokens():
    return StaticTokens()


@pytest.fixture
def client(scripted, tokens):
    transport = Transport(TransportPolicy(backoff_base=0.01), verify=scripted.ca_path, clock=ManualClock())
    yield ExchangeClient(tokens, base_url=scripted.url, transport=transport)
    transport.close()


def test_request_shape(client, scripted):
    scripted.default = Reply(200, {"value": [LEGACY]})

    client.get_inbound_connectors(TENANT)

    request = scripted.requests[0]
    assert request.method == "POST"
    assert request.path == f"/adminapi/beta/{TENANT}/InvokeCommand"
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["Prefer"] == "odata.maxpagesize=1000"
    assert request.headers["X-AnchorMailbox"] == f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT}"
    assert request.headers["X-CmdletName"] == "Get-InboundConnector"
    assert request.headers["X-ResponseFormat"] == "json"
    assert uuid.UUID(request.headers["client-request-id"])
    assert request.json() == {"CmdletInput": {"CmdletName": "Get-InboundConnector", "Parameters": {}}}


def test_each_call_new_request_id(client, scripted):
    client.get_accepted_domains(TENANT)
    client.get_accepted_domains(TENANT)

    assert scripted.requests[0].headers["client-request-id"] != scripted.requests[1].headers["client-request-id"]


def test_connector_forms_normalised(client, scripted):
    scripted.default = Reply(200, {"value": [LEGACY]})

    connector = client.get_inbound_connector(TENANT, "CrosswareInboundConnector")

    assert connector.sender_domains == ("*",)
    assert connector.connector_type == "OnPremises"
    assert connector.connector_source == "Default"
    assert scripted.requests[0].json()["CmdletInput"]["Parameters"] == {"Identity": "CrosswareInboundConnector"}


def test_pages_followed(client, scripted):
    second = dict(LEGACY, Name="Second")
    third = dict(LEGACY, Name="Third")
    scripted.replies = [
        Reply(200, {"value": [LEGACY], "@odata.nextLink": scripted.url + "/adminapi/beta/x/InvokeCommand?page=2"}),
        Reply(200, {"value": [second], "@odata.nextLink": scripted.url + "/adminapi/beta/x/InvokeCommand?page=3"}),
        Reply(200, {"value": [third]}),
    ]

    connectors = client.get_inbound_connectors(TENANT)

    assert [c.name for c in connectors] == ["CrosswareInboundConnector", "Second", "Third"]
    assert [r.path for r in scripted.requests][1:] == ["/adminapi/beta/x/InvokeCommand?page=2", "/adminapi/beta/x/InvokeCommand?page=3"]
    assert all(r.json()["CmdletInput"]["CmdletName"] == "Get-InboundConnector" for r in scripted.requests)


def test_foreign_next_link_rejected(client, scripted):
    scripted.default = Reply(200, {"value": [LEGACY], "@odata.nextLink": "https://evil.example/steal"})

    with pytest.raises(UnexpectedResponse, match="does not point to"):
        client.get_inbound_connectors(TENANT)

    assert len(scripted.requests) == 1


def test_repeated_next_link_stops(client, scripted):
    link = scripted.url + "/adminapi/beta/x/InvokeCommand?page=2"
    scripted.default = Reply(200, {"value": [], "@odata.nextLink": link})

    with pytest.raises(UnexpectedResponse, match="kept returning pages"):
        client.get_inbound_connectors(TENANT)

    assert len(scripted.requests) == 2


def test_warnings_returned(client, scripted):
    warning = "Inbound connector for this service offering is created in a disabled state. Contact Support to enable it."
    scripted.default = Reply(200, {"@adminapi.warnings": [warning], "value": []})

    result = client.new_inbound_connector(TENANT, ConnectorSettings(name="CrosswareTls", tls_sender_certificate_name="abc.crosswaretls.com"))

    assert result.warnings == [warning]
    assert result.values == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, "<html><body>Sign in</body></html>"),
        Reply(200, b'{"value": [{"Name": "Cross'),
        Reply(200, {"@odata.context": "x"}),
        Reply(200, {"value": "oops"}),
        Reply(200, {"value": [{"Enabled": True}]}),
    ],
    ids=["html", "truncated", "no-value", "value-not-list", "no-name"],
)
def test_malformed_reads_raise_unexpected(client, scripted, reply):
    scripted.default = reply

    with pytest.raises(UnexpectedResponse):
        client.get_inbound_connectors(TENANT)


@pytest.mark.parametrize(
    "value, found",
    [
        ("oops", "a 'value' of type str"),
        ([{"Name": "A"}, "B"], "a 'value' array whose item 1 is a str, not an object"),
    ],
    ids=["str", "str-item"],
)
def test_malformed_value_described(client, scripted, value, found):
    scripted.default = Reply(200, {"value": value})

    with pytest.raises(UnexpectedResponse) as caught:
        client.get_inbound_connectors(TENANT)

    assert f"with {found} for Get-InboundConnector" in str(caught.value)
    assert "expected an OData collection, a 'value' array of objects" in str(caught.value)


@pytest.mark.parametrize(
    "connector, found",
    [
        ({"Enabled": True}, "an inbound connector without the 'Name' field"),
        ({"Name": "X", "SenderDomains": 5}, "an inbound connector with a field of an unexpected type or value"),
    ],
    ids=["no-name", "domains-int"],
)
def test_malformed_connector_described(client, scripted, connector, found):
    scripted.default = Reply(200, {"value": [connector]})

    with pytest.raises(UnexpectedResponse) as caught:
        client.get_inbound_connectors(TENANT)

    assert str(caught.value).startswith(f"Exchange returned {found}")


def test_html_error_page_not_not_found(client, scripted):
    scripted.default = Reply(404, "<html>Not Found</html>")

    with pytest.raises(UnexpectedResponse) as caught:
        client.get_inbound_connector(TENANT, "CrosswareInboundConnector")

    assert not isinstance(caught.value, NotFound)


def test_server_error_not_not_found(client, scripted):
    scripted.default = Reply(500, "<html>Internal error</html>")

    with pytest.raises(MicrosoftServiceError):
        client.get_inbound_connector(TENANT, "CrosswareInboundConnector")


def test_missing_object_not_found(client, scripted):
    scripted.default = Reply(404, NOT_FOUND)

    with pytest.raises(NotFound, match="couldn't be found") as caught:
        client.get_inbound_connector(TENANT, "Nope")

    assert caught.value.operation == "Get-InboundConnector"
    assert caught.value.tenant == TENANT
    assert caught.value.status == 404


def test_empty_result_not_not_found(client, scripted):
    scripted.default = Reply(200, {"value": []})

    with pytest.raises(UnexpectedResponse, match="returned 0 connectors"):
        client.get_inbound_connector(TENANT, "Nope")


def test_rejected_parameters_carry_text(client, scripted):
    text = "A connector with the name 'X' already exists."
    scripted.default = Reply(
        400, {"error": {"code": "BadRequest", "message": "Error executing cmdlet", "details": [{"message": f"Ex1|Microsoft.Exchange.Management.Tasks.DataValidationException|{text}"}]}}
    )

    with pytest.raises(InvalidRequest, match="already exists"):
        client.new_inbound_connector(TENANT, ConnectorSettings(name="X", tls_sender_certificate_name="a.crosswaretls.com"))

    assert len(scripted.requests) == 1


def test_forbidden_empty_body(client, scripted):
    scripted.default = Reply(403, b"")

    with pytest.raises(PermissionDenied) as caught:
        client.invoke(TENANT, "Get-Mailbox")

    assert "with HTTP 403 and an empty body" in str(caught.value)
    assert "Exchange does not offer the cmdlet Get-Mailbox" in str(caught.value)
    assert "assign the app the Exchange Administrator role" in str(caught.value)


def test_forbidden_text_then_fix(client, scripted):
    text = "The role assigned to application x isn't supported in this scenario."
    scripted.default = Reply(403, {"error": {"code": "Forbidden", "message": text}})

    with pytest.raises(PermissionDenied) as caught:
        client.get_accepted_domains(TENANT)

    assert f"{text} Assign the app the Exchange Administrator role" in str(caught.value)
    assert ".;" not in str(caught.value)


def test_401_refreshes_token_once(client, scripted, tokens):
    scripted.replies = [Reply(401, b""), Reply(200, {"value": []})]

    client.get_accepted_domains(TENANT)

    assert tokens.invalidated == [(TENANT, "https://outlook.office365.com/.default")]
    assert scripted.requests[1].headers["Authorization"] == "Bearer token-2"


def test_401_twice_is_credential_error(client, scripted, tokens):
    scripted.default = Reply(401, {"error": {"code": "Unauthorized", "message": "invalid token"}})

    with pytest.raises(CredentialError):
        client.get_accepted_domains(TENANT)

    assert len(scripted.requests) == 2
    assert len(tokens.invalidated) == 1


def test_concurrency_limit_text_retried(client, scripted):
    busy = {"error": {"code": "TooManyRequests", "message": "You have reached the maximum number of concurrent requests per tenant. Please wait and try again."}}
    scripted.replies = [Reply(500, busy), Reply(200, {"value": []})]

    assert client.get_accepted_domains(TENANT) == []
    assert len(scripted.requests) == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_inbound_connectors("contoso.com"),
        lambda c: c.get_inbound_connectors("not-a-guid"),
        lambda c: c.get_inbound_connector(TENANT, "bad/name"),
        lambda c: c.get_inbound_connector(TENANT, "x" * 65),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"Name": ""}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"Nmae": "X"}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"Comment": "x" * (MAX_PARAMETER_VALUE_LENGTH + 1)}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"RequireTls": "yes"}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"TlsSenderCertificateName": "a.*.example.com"}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"SenderIPAddresses": ["10.0.0.0/16"]}),
        lambda c: c.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"ConnectorType": "Hybrid"}),
        lambda c: c.new_inbound_connector(TENANT, ConnectorSettings(name="Bad:Name")),
        lambda c: c.new_inbound_connector(TENANT, ConnectorSettings(name="Ok", sender_domains=())),
        lambda c: c.invoke(TENANT, "Get-InboundConnector; Remove-Mailbox"),
        lambda c: c.invoke(TENANT, "Get-InboundConnector", {"Identity": "  "}),
        lambda c: c.invoke(TENANT, "Get-InboundConnector", {"Bad Name": "x"}),
    ],
    ids=[
        "tenant-domain",
        "tenant-garbage",
        "identity-slash",
        "identity-long",
        "rename-empty",
        "unknown-parameter",
        "no-parameters",
        "comment-long",
        "bool-as-string",
        "certificate-inner-wildcard",
        "ip-range-too-wide",
        "connector-type",
        "new-name-colon",
        "new-no-sender-domains",
        "cmdlet-injection",
        "blank-value",
        "parameter-name",
    ],
)
def test_bad_input_rejected_before_request(client, scripted, call):
    with pytest.raises(InvalidInput):
        call(client)

    assert scripted.requests == []


def test_bad_input_message_names_value(client):
    with pytest.raises(InvalidInput, match="'bad/name'"):
        client.get_inbound_connector(TENANT, "bad/name")
    with pytest.raises(InvalidInput, match="'contoso.com'"):
        client.get_accepted_domains("contoso.com")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sender_domains", "contoso.com", "invalid sender_domains 'contoso.com': expected a tuple of strings, not one str; write ('contoso.com',)"),
        ("sender_ip_addresses", "192.0.2.1", "invalid sender_ip_addresses '192.0.2.1': expected a tuple of strings, not one str"),
        ("sender_domains", None, "invalid sender_domains None: expected a tuple of strings, got NoneType"),
        ("sender_domains", ["contoso.com", 5], "invalid sender_domains entry 5: expected a str, got int"),
    ],
    ids=["domains-str", "ips-str", "domains-none", "domains-int-entry"],
)
def test_connector_settings_types(field, value, message):
    with pytest.raises(InvalidInput) as caught:
        ConnectorSettings(name="X", **{field: value})

    assert str(caught.value).startswith(message)


def test_connector_settings_list_kept():
    settings = ConnectorSettings(name="X", sender_domains=["contoso.com"])

    assert settings.sender_domains == ("contoso.com",)
    assert settings.parameters()["SenderDomains"] == ["contoso.com"]


def test_set_sends_identity_and_parameters(client, scripted):
    client.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"Name": "CrosswareInboundConnector-BACKUP"})

    parameters = scripted.requests[0].json()["CmdletInput"]["Parameters"]
    assert parameters == {"Identity": "CrosswareInboundConnector", "Name": "CrosswareInboundConnector-BACKUP"}


def test_accepted_domains_unlimited(client, scripted):
    scripted.default = Reply(200, {"value": [{"DomainName": "Contoso.com", "DomainType": "Authoritative"}]})

    domains = client.get_accepted_domains(TENANT)

    assert [d.domain_name for d in domains] == ["contoso.com"]
    assert scripted.requests[0].json()["CmdletInput"]["Parameters"] == {"ResultSize": "Unlimited"}


def test_remove_skips_confirmation(client, scripted):
    client.remove_inbound_connector(TENANT, "CrosswareInboundConnector-BACKUP")

    body = scripted.requests[0].json()["CmdletInput"]
    assert body["CmdletName"] == "Remove-InboundConnector"
    assert body["Parameters"] == {"Identity": "CrosswareInboundConnector-BACKUP", "Confirm": False}


def test_write_not_repeated_after_504(client, scripted):
    scripted.default = Reply(504, "gateway timeout")

    with pytest.raises(MicrosoftServiceError, match="may have been applied"):
        client.set_inbound_connector(TENANT, "CrosswareInboundConnector", {"Enabled": False})

    assert len(scripted.requests) == 1


def test_plain_http_base_url_rejected(tokens):
    with pytest.raises(ConfigurationError, match="invalid exchange_url 'http://127.0.0.1:8080': expected an https URL"):
        ExchangeClient(tokens, base_url="http://127.0.0.1:8080")


def test_plain_http_port_not_retried(tokens):
    plain = ScriptedServer().start()
    transport = Transport(clock=ManualClock())
    try:
        client = ExchangeClient(tokens, base_url=plain.url.replace("http://", "https://"), transport=transport)

        with pytest.raises(ConfigurationError, match="did not respond with TLS .*; check exchange_url"):
            client.get_accepted_domains(TENANT)

        assert transport.stats().requests == 1
    finally:
        transport.close()
        plain.stop()


def test_untrusted_certificate_in_words(tokens, scripted):
    transport = Transport(clock=ManualClock())
    try:
        client = ExchangeClient(tokens, base_url=scripted.url, transport=transport)

        with pytest.raises(ConfigurationError) as caught:
            client.get_accepted_domains(TENANT)

        assert str(caught.value) == (
            f"TLS certificate verification failed for {scripted.url}: unable to get local issuer certificate; "
            "set microsoft_ca_bundle to the CA that signed it"
        )
        assert transport.stats().retries == 0
    finally:
        transport.close()


@pytest.mark.parametrize(
    "reply, error",
    [(Reply(404, NOT_FOUND), NotFound), (Reply(403, b""), PermissionDenied)],
    ids=["not-found", "forbidden"],
)
def test_raised_errors_logged_at_debug(client, scripted, caplog, reply, error):
    scripted.default = reply
    caplog.set_level(logging.DEBUG, logger="tenanttls")

    with pytest.raises(error):
        client.get_inbound_connector(TENANT, "Nope")

    exchange_records = [r for r in caplog.records if r.name == "tenanttls.exchange.client"]
    assert len(exchange_records) == 1
    assert exchange_records[0].levelno == logging.DEBUG
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name.startswith("tenanttls"))
