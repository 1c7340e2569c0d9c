"""ExchangeClient against the simulated Exchange admin API over HTTPS."""

import threading
import time
import uuid
from datetime import datetime, timezone

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tenanttls.clock import ManualClock
from tenanttls.domain.exchange import ConnectorSettings
from tenanttls.errors import (
    ConsentRequired,
    CredentialError,
    InvalidRequest,
    MicrosoftServiceError,
    NotFound,
    PermissionDenied,
    Throttled,
)
from tenanttls.exchange import ExchangeClient
from tenanttls.identity.tokens import TokenProvider
from tenanttls.transport import Transport, TransportPolicy
from tests.fixtures.simulator import DEFAULT_INITIAL_DOMAIN, DEFAULT_TENANT_ID, legacy_connector, make_tenant
from tests.transport.simulator_api import calls

NEW_NAME = "k3j5h2g4f6d8s0a1q2w3e4r5t6.crosswaretls.com"


class Clients:
    """An ExchangeClient on its own transport, with the clock that its retries sleep on."""

    def __init__(self, simulator, credentials, page_size=1000, **policy):
        self.clock = ManualClock(datetime.now(timezone.utc))
        self.tokens = TokenProvider(
            credentials.client_id,
            credentials.private_key_pem,
            credentials.certificate_pem,
            login_url=simulator.base_url,
            verify=simulator.ca_path,
        )
        options = {"backoff_base": 0.05, "backoff_cap": 0.5, **policy}
        self.transport = Transport(TransportPolicy(**options), verify=simulator.ca_path, clock=self.clock)
        self.exchange = ExchangeClient(self.tokens, base_url=simulator.base_url, transport=self.transport, page_size=page_size)


@pytest.fixture
def make_clients(app_credentials):
    created = []

    def make(simulator, **options):
        clients = Clients(simulator, app_credentials, **options)
        created.append(clients)
        return clients

    yield make
    for clients in created:
        clients.transport.close()


@pytest.fixture
def exchange(simulator, make_clients):
    return make_clients(simulator).exchange


def new_settings(name="CrosswareTlsInboundConnector"):
    return ConnectorSettings(name=name, tls_sender_certificate_name=NEW_NAME, comment="tenanttls test")


def exchange_calls(simulator, cmdlet):
    return calls(simulator)["by_endpoint"].get(f"exchange:{cmdlet}", 0)


def test_list_connectors_normalised(exchange):
    connectors = exchange.get_inbound_connectors(DEFAULT_TENANT_ID)

    assert [c.name for c in connectors] == ["CrosswareInboundConnector"]
    assert connectors[0].sender_domains == ("*",)
    assert connectors[0].connector_type == "OnPremises"
    assert connectors[0].connector_source == "Default"
    assert connectors[0].tls_sender_certificate_name == "*.crossware.co.nz"
    assert connectors[0].raw["SenderDomains"] == ["smtp:*;1"]


def test_get_connector_by_initial_domain(exchange):
    connector = exchange.get_inbound_connector(DEFAULT_INITIAL_DOMAIN, "CrosswareInboundConnector")

    assert connector.require_tls is True
    assert connector.restrict_domains_to_certificate is True


def test_missing_connector_not_found(exchange):
    with pytest.raises(NotFound, match="couldn't be found") as caught:
        exchange.get_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector-BACKUP")

    assert caught.value.operation == "Get-InboundConnector"
    assert caught.value.correlation_id


def test_create_rename_remove(exchange):
    exchange.set_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector", {"Name": "CrosswareInboundConnector-BACKUP"})
    result = exchange.new_inbound_connector(DEFAULT_TENANT_ID, new_settings("CrosswareInboundConnector"))
    created = exchange.get_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector")
    backup = exchange.get_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector-BACKUP")

    assert result.warnings == []
    assert new_settings("CrosswareInboundConnector").differences(created) == {}
    assert created.comment == "tenanttls test"
    assert backup.tls_sender_certificate_name == "*.crossware.co.nz"

    exchange.remove_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector-BACKUP")
    assert [c.name for c in exchange.get_inbound_connectors(DEFAULT_TENANT_ID)] == ["CrosswareInboundConnector"]


def test_set_changes_field(exchange):
    exchange.set_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector", {"Enabled": False, "Comment": "paused"})

    connector = exchange.get_inbound_connector(DEFAULT_TENANT_ID, "CrosswareInboundConnector")
    assert connector.enabled is False
    assert connector.comment == "paused"


def test_created_disabled_warning(simulator_factory, make_clients):
    tenant = make_tenant(connectors_created_disabled=True)
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator).exchange

    result = exchange.new_inbound_connector(tenant["tenant_id"], new_settings())

    assert any("created in a disabled state" in warning for warning in result.warnings)
    assert exchange.get_inbound_connector(tenant["tenant_id"], "CrosswareTlsInboundConnector").enabled is False


def test_duplicate_name_invalid_request(exchange):
    with pytest.raises(InvalidRequest, match="CrosswareInboundConnector") as caught:
        exchange.new_inbound_connector(DEFAULT_TENANT_ID, new_settings("CrosswareInboundConnector"))

    assert caught.value.status == 400


def test_remove_missing_not_found(exchange):
    with pytest.raises(NotFound):
        exchange.remove_inbound_connector(DEFAULT_TENANT_ID, "NoSuchConnector")


def test_accepted_domains(exchange):
    domains = {d.domain_name: d for d in exchange.get_accepted_domains(DEFAULT_TENANT_ID)}

    assert set(domains) == {"contoso.onmicrosoft.com", "contoso.com"}
    assert domains["contoso.onmicrosoft.com"].initial is True
    assert domains["contoso.com"].domain_type == "Authoritative"


def test_generic_invoke_with_select(exchange):
    result = exchange.invoke(DEFAULT_TENANT_ID, "Get-InboundConnector", select=["Name", "Enabled"])

    assert [set(k for k in v if "@" not in k) for v in result.values] == [{"Name", "Enabled"}]


def test_paging_across_pages(simulator_factory, make_clients):
    connectors = [legacy_connector(f"Connector{i}", f"c{i}.example.com") for i in range(7)]
    tenant = make_tenant(inbound_connectors=connectors)
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator, page_size=3).exchange

    found = exchange.get_inbound_connectors(tenant["tenant_id"])

    assert sorted(c.name for c in found) == sorted(f"Connector{i}" for i in range(7))
    assert exchange_calls(simulator, "Get-InboundConnector") == 3


def test_throttling_retry_after_honoured(simulator_factory, make_clients):
    faults = {"throttle_rate": 1.0, "retry_after_seconds": 30, "max_faults": 2, "surfaces": ["exchange"]}
    tenant = make_tenant(faults=faults)
    simulator = simulator_factory({"tenants": [tenant]})
    clients = make_clients(simulator)
    start = clients.clock.now()

    connectors = clients.exchange.get_inbound_connectors(tenant["tenant_id"])

    assert [c.name for c in connectors] == ["CrosswareInboundConnector"]
    assert calls(simulator)["faults"] == {"throttle": 2}
    assert exchange_calls(simulator, "Get-InboundConnector") == 3
    assert (clients.clock.now() - start).total_seconds() == 60


def test_throttling_past_deadline_raises(simulator_factory, make_clients):
    faults = {"throttle_rate": 1.0, "retry_after_seconds": 600, "surfaces": ["exchange"]}
    tenant = make_tenant(faults=faults)
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator, deadline=120).exchange

    with pytest.raises(Throttled) as caught:
        exchange.get_accepted_domains(tenant["tenant_id"])

    assert caught.value.retry_after == 600
    assert caught.value.tenant == tenant["tenant_id"]
    assert exchange_calls(simulator, "Get-AcceptedDomain") == 1


def test_unavailable_retried(simulator_factory, make_clients):
    tenant = make_tenant(faults={"unavailable_rate": 1.0, "max_faults": 2, "surfaces": ["exchange"]})
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator).exchange

    assert len(exchange.get_accepted_domains(tenant["tenant_id"])) == 1
    assert calls(simulator)["faults"] == {"unavailable": 2}


def test_hung_request_hits_deadline(simulator_factory, make_clients):
    tenant = make_tenant(faults={"hang_rate": 1.0, "hang_seconds": 5, "surfaces": ["exchange"]})
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator, read_timeout=0.4, deadline=1.5).exchange

    with pytest.raises(MicrosoftServiceError, match="deadline") as caught:
        exchange.get_inbound_connectors(tenant["tenant_id"])

    assert not isinstance(caught.value, NotFound)
    assert exchange_calls(simulator, "Get-InboundConnector") >= 2


def test_hung_write_not_repeated(simulator_factory, make_clients):
    tenant = make_tenant(faults={"hang_rate": 1.0, "hang_seconds": 5, "surfaces": ["exchange"]})
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator, read_timeout=0.4, deadline=5).exchange

    with pytest.raises(MicrosoftServiceError, match="may have been applied"):
        exchange.new_inbound_connector(tenant["tenant_id"], new_settings())

    assert exchange_calls(simulator, "New-InboundConnector") == 1


def test_consent_missing(simulator_factory, make_clients):
    tenant = make_tenant(consent=False)
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator).exchange

    with pytest.raises(ConsentRequired):
        exchange.get_inbound_connectors(tenant["tenant_id"])

    assert calls(simulator)["by_endpoint"].get("exchange:Get-InboundConnector", 0) == 0


def test_missing_role_permission_denied(simulator_factory, make_clients):
    tenant = make_tenant(app_roles=[])
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator).exchange

    with pytest.raises(PermissionDenied, match="Exchange Administrator") as caught:
        exchange.get_inbound_connectors(tenant["tenant_id"])

    assert ".;" not in str(caught.value)


def test_unknown_cmdlet_names_both_causes(exchange):
    with pytest.raises(PermissionDenied) as caught:
        exchange.invoke(DEFAULT_TENANT_ID, "Get-Mailbox")

    assert "Exchange does not offer the cmdlet Get-Mailbox" in str(caught.value)
    assert "or the app lacks the role to run it" in str(caught.value)


class ForgedTokens:
    """A token source that signs its own tokens with a key Microsoft never issued."""

    def __init__(self, tenant_id):
        self.tenant_id = tenant_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issued = 0
        self.invalidated = 0

    def get_token(self, tenant, scope):
        self.issued += 1
        now = int(time.time())
        claims = {
            "aud": "https://outlook.office365.com",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "tid": self.tenant_id,
            "appid": str(uuid.uuid4()),
            "roles": ["Exchange.ManageAsApp"],
            "wids": ["29232cdf-9323-42fd-ade2-1d097af3e4de"],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "forged"})

    def invalidate(self, tenant, scope):
        self.invalidated += 1


def test_forged_token_refused(simulator, app_credentials):
    forged = ForgedTokens(DEFAULT_TENANT_ID)
    with Transport(verify=simulator.ca_path) as transport:
        exchange = ExchangeClient(forged, base_url=simulator.base_url, transport=transport)

        with pytest.raises(CredentialError, match="x-ms-diagnostics|signature") as caught:
            exchange.get_inbound_connectors(DEFAULT_TENANT_ID)

    assert caught.value.status == 401
    assert forged.issued == 2
    assert forged.invalidated == 1
    assert exchange_calls(simulator, "Get-InboundConnector") == 2


def run_concurrently(count, call):
    """Run `call` in `count` threads at once; return the results and errors."""
    results, errors = [], []
    barrier = threading.Barrier(count)

    def worker():
        barrier.wait()
        try:
            results.append(call())
        except Exception as error:  # collected for the caller's asserts
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_tenant_limit_avoids_concurrency_refusals(simulator_factory, make_clients):
    faults = {"max_concurrent_requests": 2, "latency_seconds": 0.2, "surfaces": ["exchange"]}
    tenant = make_tenant(faults=faults)
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator, tenant_concurrency=2).exchange
    exchange.tokens.get_token(tenant["tenant_id"], exchange.scope)

    results, errors = run_concurrently(8, lambda: exchange.get_accepted_domains(tenant["tenant_id"]))

    counts = calls(simulator)
    assert errors == []
    assert len(results) == 8
    assert counts["by_endpoint"]["exchange:Get-AcceptedDomain"] == 8
    assert counts["faults"].get("concurrency", 0) == 0


def test_without_tenant_limit_simulator_refuses(simulator_factory, make_clients):
    faults = {"max_concurrent_requests": 2, "latency_seconds": 0.2, "surfaces": ["exchange"]}
    tenant = make_tenant(faults=faults)
    simulator = simulator_factory({"tenants": [tenant]})
    exchange = make_clients(simulator, tenant_concurrency=8).exchange
    exchange.tokens.get_token(tenant["tenant_id"], exchange.scope)

    results, errors = run_concurrently(8, lambda: exchange.get_accepted_domains(tenant["tenant_id"]))

    assert len(results) + len(errors) == 8
    assert all(isinstance(error, Throttled) for error in errors)
    assert calls(simulator)["faults"]["concurrency"] > 0


def test_global_budget_holds_under_burst(simulator, make_clients):
    exchange = make_clients(simulator, requests_per_second=0.01, burst=3, deadline=1.0, tenant_concurrency=20).exchange
    exchange.tokens.get_token(DEFAULT_TENANT_ID, exchange.scope)

    results, errors = run_concurrently(10, lambda: exchange.get_accepted_domains(DEFAULT_TENANT_ID))

    assert len(results) == 3
    assert len(errors) == 7
    assert all(isinstance(error, Throttled) for error in errors)
    assert exchange_calls(simulator, "Get-AcceptedDomain") == 3
