"""GraphDomainsClient against the simulated Graph over HTTPS, with DNS proof on the built-in DNS server."""

import secrets
from datetime import datetime, timezone

import pytest

from tenanttls.clock import ManualClock
from tenanttls.errors import InvalidRequest, MicrosoftServiceError, NotFound, Throttled
from tenanttls.exchange import ExchangeClient
from tenanttls.graph import GraphDomainsClient
from tenanttls.identity.tokens import TokenProvider
from tenanttls.transport import Transport, TransportPolicy
from tests.fixtures.dns import publisher_for
from tests.fixtures.simulator import make_tenant
from tests.transport.simulator_api import calls


def unique_name():
    return f"{secrets.token_hex(8)}.crosswaretls.test"


@pytest.fixture
def tenant():
    return make_tenant(accepted_domains=["fabrikam.com"])


@pytest.fixture
def store_backend() -> str:
    """The Graph client never reads the store; the DNS server's store runs on SQLite only."""
    return "sqlite"


@pytest.fixture
def simulator(simulator_factory, builtin_dns, tenant):
    return simulator_factory({"tenants": [tenant]}, dns_nameserver=builtin_dns.address)


@pytest.fixture
def clock():
    return ManualClock(datetime.now(timezone.utc))


@pytest.fixture
def make_clients(app_credentials, clock):
    transports = []

    def make(simulator, **policy):
        tokens = TokenProvider(
            app_credentials.client_id,
            app_credentials.private_key_pem,
            app_credentials.certificate_pem,
            login_url=simulator.base_url,
            verify=simulator.ca_path,
        )
        options = {"backoff_base": 0.05, "backoff_cap": 0.5, **policy}
        transport = Transport(TransportPolicy(**options), verify=simulator.ca_path, clock=clock)
        transports.append(transport)
        graph = GraphDomainsClient(tokens, base_url=simulator.base_url, transport=transport)
        exchange = ExchangeClient(tokens, base_url=simulator.base_url, transport=transport)
        return graph, exchange

    yield make
    for transport in transports:
        transport.close()


def test_add_verify_accept_delete(simulator, builtin_dns, tenant, make_clients):
    graph, exchange = make_clients(simulator)
    tenant_id = tenant["tenant_id"]
    name = unique_name()

    added = graph.add_domain(tenant_id, name)
    records = graph.list_verification_records(tenant_id, name)
    txt = next(record for record in records if record.record_type == "Txt")
    publisher_for(builtin_dns).add_txt(txt.label, txt.text, ttl=txt.ttl)
    verified = graph.verify_domain(tenant_id, name)

    assert added.id == name
    assert added.is_verified is False
    assert txt.label == name
    assert txt.text.startswith("MS=ms")
    assert verified.is_verified is True
    assert graph.get_domain(tenant_id, name).is_verified is True
    assert name in {d.id for d in graph.list_domains(tenant_id)}
    assert name in {d.domain_name for d in exchange.get_accepted_domains(tenant_id)}

    graph.delete_domain(tenant_id, name)
    with pytest.raises(NotFound):
        graph.get_domain(tenant_id, name)


def test_verify_without_record_rejected(simulator, tenant, make_clients):
    graph, _ = make_clients(simulator)
    name = unique_name()
    graph.add_domain(tenant["tenant_id"], name)

    with pytest.raises(InvalidRequest, match="verification failed"):
        graph.verify_domain(tenant["tenant_id"], name)

    assert graph.get_domain(tenant["tenant_id"], name).is_verified is False


def test_missing_domain_not_found(simulator, tenant, make_clients):
    graph, _ = make_clients(simulator)

    with pytest.raises(NotFound) as caught:
        graph.get_domain(tenant["tenant_id"], unique_name())

    assert caught.value.status == 404


def test_add_twice_invalid_request(simulator, tenant, make_clients):
    graph, _ = make_clients(simulator)
    name = unique_name()
    graph.add_domain(tenant["tenant_id"], name)

    with pytest.raises(InvalidRequest):
        graph.add_domain(tenant["tenant_id"], name)


def test_list_domains_by_initial_domain(simulator, tenant, make_clients):
    graph, _ = make_clients(simulator)

    names = {d.id for d in graph.list_domains(tenant["initial_domain"])}

    assert names == {tenant["initial_domain"], "fabrikam.com"}


def test_throttling_retried(simulator_factory, make_clients, clock):
    tenant = make_tenant(faults={"throttle_rate": 1.0, "retry_after_seconds": 12, "max_faults": 1, "surfaces": ["graph"]})
    simulator = simulator_factory({"tenants": [tenant]})
    graph, _ = make_clients(simulator)
    start = clock.now()

    domains = graph.list_domains(tenant["tenant_id"])

    assert [d.id for d in domains] == [tenant["initial_domain"]]
    assert calls(simulator)["faults"] == {"throttle": 1}
    assert (clock.now() - start).total_seconds() == 12


def test_throttling_exhausted(simulator_factory, make_clients):
    tenant = make_tenant(faults={"throttle_rate": 1.0, "retry_after_seconds": 1, "surfaces": ["graph"]})
    simulator = simulator_factory({"tenants": [tenant]})
    graph, _ = make_clients(simulator, max_attempts=3)

    with pytest.raises(Throttled) as caught:
        graph.get_domain(tenant["tenant_id"], tenant["initial_domain"])

    assert caught.value.retry_after == 1
    assert calls(simulator)["faults"] == {"throttle": 3}


def test_outage_on_read_not_not_found(simulator_factory, make_clients):
    tenant = make_tenant(faults={"unavailable_rate": 1.0, "surfaces": ["graph"]})
    simulator = simulator_factory({"tenants": [tenant]})
    graph, _ = make_clients(simulator, max_attempts=2)

    with pytest.raises(MicrosoftServiceError) as caught:
        graph.get_domain(tenant["tenant_id"], unique_name())

    assert not isinstance(caught.value, NotFound)
    assert caught.value.status == 503
