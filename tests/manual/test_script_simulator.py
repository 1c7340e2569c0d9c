"""The upgrade script's cmdlets, as read back from the script, run against the simulator's
admin API reach the same end state as the engine."""

from __future__ import annotations

import pytest

from tenanttls.manual.service import write_upgrade_script
from tenanttls.migration.states import UpgradeState

from tests.fixtures.simulator import make_tenant
from tests.manual.engine import start_environment
from tests.manual.psreader import read_calls, read_values

ENGINE_TENANT = "0a1b2c3d-0000-4000-8000-00000000000a"
SCRIPT_TENANT = "0a1b2c3d-0000-4000-8000-00000000000b"
NO_CONSENT_TENANT = "0a1b2c3d-0000-4000-8000-00000000000c"


@pytest.fixture
def environment(tmp_path, simulator_factory, monkeypatch, store_url):
    # NOTE: requests prefers these variables over the CA bundle that the token provider passes
    # to MSAL, so the simulator's CA would not be trusted while they are set.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    tenants = [
        make_tenant(ENGINE_TENANT, "enginetenant.onmicrosoft.com", accepted_domains=["contoso.com"]),
        make_tenant(SCRIPT_TENANT, "scripttenant.onmicrosoft.com", accepted_domains=["fabrikam.com"]),
        make_tenant(NO_CONSENT_TENANT, "noconsent.onmicrosoft.com", consent=False),
    ]
    environment, stops = start_environment(tmp_path, simulator_factory, tenants, store_url)
    environment.add(ENGINE_TENANT, "enginetenant.onmicrosoft.com")
    environment.add(SCRIPT_TENANT, "scripttenant.onmicrosoft.com")
    environment.add(NO_CONSENT_TENANT, "noconsent.onmicrosoft.com")
    yield environment
    for stop in stops:
        stop()


def _run_script(environment, tenant_id: str, script: str) -> list[str]:
    """Run the script's changing cmdlets on its first-run path through the clients; return what ran.

    The script's own reads decide the path at run time; on a fresh tenant they choose:
    add the domain, verify it, rename the legacy connector, create the new one. The
    provider publishes the TXT value between the two domain calls, as support asks it to.
    """
    context = environment.context
    values = read_values(script)
    ran = []
    environment.clock.advance(60)  # see EngineEnvironment.upgrade: the simulator's Guids depend on the second
    for call in read_calls(script):
        if call.cmdlet == "New-MgDomain":
            context.graph.add_domain(tenant_id, call.parameters["BodyParameter"]["id"])
        elif call.cmdlet == "Get-MgDomainVerificationDnsRecord":
            name = call.parameters["DomainId"]
            record = next(r for r in context.graph.list_verification_records(tenant_id, name) if r.record_type == "Txt")
            context.dns.add_txt(name, record.text, 60)
            context.dns.wait_until_visible(name, record.text, 10.0)
        elif call.cmdlet == "Confirm-MgDomain":
            context.graph.verify_domain(tenant_id, call.parameters["DomainId"])
        elif call.function == "Wait-AcceptedDomain":
            _wait_accepted(environment, tenant_id, values["UniqueName"])
        elif call.cmdlet == "Set-InboundConnector" and call.function == "Backup-LegacyConnector":
            context.exchange.invoke(tenant_id, call.cmdlet, call.parameters)
        elif call.cmdlet == "New-InboundConnector" and call.function == "New-ProviderConnector":
            context.exchange.invoke(tenant_id, call.cmdlet, values[call.splats[0]])
        else:
            continue
        ran.append(call.cmdlet)
    return ran


def _wait_accepted(environment, tenant_id: str, name: str) -> None:
    for _ in range(100):
        if any(d.domain_name == name for d in environment.context.exchange.get_accepted_domains(tenant_id)):
            return
        environment.clock.advance(60)
    raise AssertionError(f"{name} never became an accepted domain")


def test_script_reaches_engine_end_state(environment):
    assert environment.upgrade(ENGINE_TENANT) == UpgradeState.COMPLETED.value
    script = write_upgrade_script(
        environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="test"
    ).text

    ran = _run_script(environment, SCRIPT_TENANT, script)

    assert ran == [
        "New-MgDomain", "Get-MgDomainVerificationDnsRecord", "Confirm-MgDomain", "Get-AcceptedDomain",
        "Set-InboundConnector", "New-InboundConnector",
    ]
    assert environment.end_state(SCRIPT_TENANT) == environment.end_state(ENGINE_TENANT)


def test_script_new_connector_is_engines(environment):
    script = write_upgrade_script(environment.settings, environment.store, environment.clock, SCRIPT_TENANT, actor="test").text
    values = read_values(script)
    _run_script(environment, SCRIPT_TENANT, script)

    created = environment.context.exchange.get_inbound_connector(SCRIPT_TENANT, values["ConnectorName"])

    assert created.tls_sender_certificate_name == values["UniqueName"]
    assert created.comment == values["NewConnector"]["Comment"]
    assert created.enabled is True
