"""The simulated Exchange admin API over HTTPS: cmdlets, defaults, validation, value forms, errors, roles."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tenanttls.clock import ManualClock
from tests.fixtures.simulator import DEFAULT_INITIAL_DOMAIN, DEFAULT_TENANT_ID, legacy_connector, make_tenant
from tests.simulator.helpers import access_token, error_text, error_type, https_client, invoke

LEGACY = "CrosswareInboundConnector"
UNIQUE_NAME = "7k2m9q4x8w1c5v3b6n0z2r4t8y.crosswaretls.example"
DESIRED = {
    "Name": "CrosswareInboundConnector-Unique",
    "ConnectorType": "OnPremises",
    "SenderDomains": ["*"],
    "RequireTls": True,
    "RestrictDomainsToCertificate": True,
    "TlsSenderCertificateName": UNIQUE_NAME,
    "CloudServicesMailEnabled": True,
    "Comment": "tenanttls 0.1.0 run 42",
}

# 200 kB of nested arrays, far deeper than the 64 levels the simulator accepts.
DEEPLY_NESTED = b"[" * 100_000 + b"]" * 100_000


def _connectors(client, token, **parameters):
    response = invoke(client, DEFAULT_TENANT_ID, token, "Get-InboundConnector", parameters)
    assert response.status_code == 200, response.text
    return response.json()["value"]


def _mutations(client):
    return client.get("/_simulator/mutations", params={"tenant": DEFAULT_TENANT_ID}).json()["mutations"]


# --- Get-InboundConnector --------------------------------------------------------------------------


def test_get_lists_seeded_connector(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector")

    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith(f"/adminapi/beta/{DEFAULT_TENANT_ID}/$metadata#Collection(Exchange.GenericHashTable)")
    assert body["adminapi.warnings@odata.type"] == "#Collection(String)"
    assert body["@adminapi.warnings"] == []
    assert "@odata.nextLink" not in body
    [connector] = body["value"]
    assert connector["Name"] == LEGACY
    assert connector["Identity"] == LEGACY
    assert connector["SenderDomains"] == ["smtp:*;1"]
    assert connector["SenderDomains@odata.type"] == "#Collection(String)"
    assert connector["ConnectorType"] == "OnPremises"
    assert connector["TlsSenderCertificateName"] == "*.crossware.co.nz"
    assert connector["DistinguishedName"].startswith(f"CN={LEGACY},CN=Transport Settings,CN=Configuration,CN={DEFAULT_INITIAL_DOMAIN},")
    assert connector["Guid"] == connector["ExchangeObjectId"]
    assert connector["WhenCreatedUTC"].endswith("Z")


@pytest.mark.parametrize("identity", [LEGACY, LEGACY.lower(), "CROSSWAREINBOUNDCONNECTOR"])
def test_get_by_name_ignores_case(client, exchange_token, identity):
    [connector] = _connectors(client, exchange_token, Identity=identity)

    assert connector["Name"] == LEGACY


def test_get_by_guid(client, exchange_token):
    guid = _connectors(client, exchange_token)[0]["Guid"]

    [connector] = _connectors(client, exchange_token, Identity=guid)

    assert connector["Name"] == LEGACY


def test_get_unknown_identity(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector", {"Identity": "Nope"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"
    assert error_type(response) == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert error_text(response).startswith("The operation couldn't be performed because object 'Nope' couldn't be found on '")
    assert response.json()["error"]["details"][0]["message"].startswith("Ex")


def test_cmdlet_name_ignores_case(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "get-inboundconnector")

    assert response.status_code == 200


def test_tenant_by_initial_domain(client, exchange_token):
    response = invoke(client, DEFAULT_INITIAL_DOMAIN, exchange_token, "Get-InboundConnector")

    assert response.status_code == 200


# --- New-InboundConnector ---------------------------------------------------------------------------


def test_new_applies_documented_defaults(client, exchange_token):
    response = invoke(
        client,
        DEFAULT_TENANT_ID,
        exchange_token,
        "New-InboundConnector",
        {"Name": "Gateway", "SenderDomains": "contoso.com", "SenderIPAddresses": ["192.0.2.10"]},
    )
    [connector] = _connectors(client, exchange_token, Identity="Gateway")

    assert response.status_code == 200
    assert response.json()["value"] == []
    assert connector["Enabled"] is True
    assert connector["RequireTls"] is True
    assert connector["RestrictDomainsToCertificate"] is False
    assert connector["RestrictDomainsToIPAddresses"] is False
    assert connector["TreatMessagesAsInternal"] is False
    assert connector["ConnectorSource"] == "Default"
    assert connector["SenderDomains"] == ["smtp:contoso.com;1"]
    assert connector["SenderIPAddresses"] == ["192.0.2.10"]


def test_new_desired_connector(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", DESIRED)
    [connector] = _connectors(client, exchange_token, Identity=DESIRED["Name"])

    assert response.status_code == 200
    assert connector["ConnectorType"] == "OnPremises"
    assert connector["SenderDomains"] == ["smtp:*;1"]
    assert connector["RequireTls"] is True
    assert connector["RestrictDomainsToCertificate"] is True
    assert connector["TlsSenderCertificateName"] == UNIQUE_NAME
    assert connector["CloudServicesMailEnabled"] is True
    assert connector["Comment"] == "tenanttls 0.1.0 run 42"
    assert _mutations(client)[-1]["operation"] == "New-InboundConnector"
    assert _mutations(client)[-1]["tenant_id"] == DEFAULT_TENANT_ID


def test_new_after_rename_gets_own_guid(client, exchange_token):
    [legacy] = _connectors(client, exchange_token, Identity=LEGACY)
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "Name": f"{LEGACY}-BACKUP"})
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Name": LEGACY})

    [backup] = _connectors(client, exchange_token, Identity=f"{LEGACY}-BACKUP")
    [created] = _connectors(client, exchange_token, Identity=LEGACY)

    assert backup["Guid"] == legacy["Guid"]
    assert created["Guid"] != backup["Guid"]
    assert created["TlsSenderCertificateName"] == UNIQUE_NAME


@pytest.mark.parametrize("name", [LEGACY, LEGACY.upper()])
def test_new_rejects_duplicate_name(client, exchange_token, name):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Name": name})

    assert response.status_code == 400
    assert error_type(response) == "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
    assert len(_connectors(client, exchange_token)) == 1


def test_new_requires_name_and_sender_domains(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {"Comment": "x"})

    assert response.status_code == 400
    assert error_type(response) == "System.Management.Automation.ParameterBindingException"
    assert error_text(response) == "Cannot process command because of one or more missing mandatory parameters: Name SenderDomains."


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("*", "smtp:*;1"),
        ("contoso.com", "smtp:contoso.com;1"),
        ("*.contoso.com", "smtp:*.contoso.com;1"),
        ("Contoso.COM", "smtp:contoso.com;1"),
        ("smtp:fabrikam.com;1", "smtp:fabrikam.com;1"),
    ],
)
def test_sender_domain_forms(client, exchange_token, given, stored):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "SenderDomains": [given]})
    [connector] = _connectors(client, exchange_token, Identity=DESIRED["Name"])

    assert response.status_code == 200
    assert connector["SenderDomains"] == [stored]


@pytest.mark.parametrize("given", ["a.*.contoso.com", "contoso", "*contoso.com", "-bad-.com", ""])
def test_sender_domain_invalid(client, exchange_token, given):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "SenderDomains": [given]})

    assert response.status_code == 400
    assert "SenderDomains" in error_text(response)
    assert len(_connectors(client, exchange_token)) == 1


@pytest.mark.parametrize(
    ("given", "stored"),
    [("192.0.2.10", "192.0.2.10"), ("192.0.2.0/24", "192.0.2.0/24"), ("192.0.2.10/32", "192.0.2.10/32"), ("192.0.2.7/30", "192.0.2.4/30")],
)
def test_sender_ip_addresses_accepted(client, exchange_token, given, stored):
    parameters = {"Name": "Gateway", "SenderDomains": "*", "SenderIPAddresses": [given], "ConnectorType": "Partner"}
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", parameters)
    [connector] = _connectors(client, exchange_token, Identity="Gateway")

    assert response.status_code == 200
    assert connector["SenderIPAddresses"] == [stored]


@pytest.mark.parametrize("given", ["192.0.2.0/23", "10.0.0.0/8", "2001:db8::1", "2001:db8::/64", "not-an-ip", "300.1.1.1"])
def test_sender_ip_addresses_rejected(client, exchange_token, given):
    parameters = {"Name": "Gateway", "SenderDomains": "*", "SenderIPAddresses": [given]}
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", parameters)

    assert response.status_code == 400
    assert error_type(response) == "Microsoft.Exchange.Data.DataValidationException"
    assert len(_connectors(client, exchange_token)) == 1


@pytest.mark.parametrize(
    ("parameters", "accepted"),
    [
        ({"ConnectorType": "Partner", "TreatMessagesAsInternal": True, "CloudServicesMailEnabled": False}, False),
        ({"ConnectorType": "OnPremises", "TreatMessagesAsInternal": True, "CloudServicesMailEnabled": True}, False),
        ({"ConnectorType": "OnPremises", "TreatMessagesAsInternal": True, "CloudServicesMailEnabled": False}, True),
        ({"ConnectorType": "OnPremises", "TreatMessagesAsInternal": False, "CloudServicesMailEnabled": True}, True),
    ],
)
def test_treat_messages_as_internal_combinations(client, exchange_token, parameters, accepted):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, **parameters})

    assert (response.status_code == 200) is accepted
    if not accepted:
        assert "TreatMessagesAsInternal" in error_text(response)


@pytest.mark.parametrize(
    "parameters",
    [
        {"RestrictDomainsToIPAddresses": True, "ConnectorType": "Partner", "RestrictDomainsToCertificate": False},
        {"RestrictDomainsToCertificate": True, "TlsSenderCertificateName": None},
        {"ConnectorType": "OnPremises", "RestrictDomainsToCertificate": False, "TlsSenderCertificateName": None},
    ],
)
def test_restrictions_need_their_values(client, exchange_token, parameters):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, **parameters})

    assert response.status_code == 400
    assert error_type(response) == "Microsoft.Exchange.Data.DataValidationException"


@pytest.mark.parametrize("name", ["*.crossware.co.nz", UNIQUE_NAME.upper()])
def test_certificate_name_forms(client, exchange_token, name):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "TlsSenderCertificateName": name})
    [connector] = _connectors(client, exchange_token, Identity=DESIRED["Name"])

    assert response.status_code == 200
    assert connector["TlsSenderCertificateName"] == name.lower()


@pytest.mark.parametrize("name", ["<I>CN=CA<S>CN=host", "a.*.example", "host"])
def test_certificate_name_invalid(client, exchange_token, name):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "TlsSenderCertificateName": name})

    assert response.status_code == 400
    assert "TlsSenderCertificateName" in error_text(response)


# --- parameter binding and hostile values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"Enabled": "true"}, "Boolean parameters accept only Boolean values and numbers"),
        ({"Enabled": None}, "Boolean parameters accept only Boolean values and numbers"),
        ({"RequireTls": ["yes"]}, 'Cannot convert value "System.Object[]" to type "System.Boolean"'),
        ({"Name": ["a", "b"]}, "Cannot convert 'System.Object[]' to the type 'System.String' required by parameter 'Name'"),
        ({"Name": {"x": 1}}, "required by parameter 'Name'"),
        ({"ConnectorType": "Bogus"}, "Specify one of the following enumerator names and try again: Partner, OnPremises"),
        ({"SenderDomains": [{"Add": "x"}]}, "parameter 'SenderDomains'"),
        ({"SenderDomains": {"Add": ["x.example"]}}, "only the keys Add and Remove are allowed"),
        ({"Frobnicate": True}, "A parameter cannot be found that matches parameter name 'Frobnicate'."),
        ({"Name": "Other", "name": "Twice"}, "is specified more than once"),
    ],
)
def test_new_parameter_binding_errors(client, exchange_token, parameters, expected):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, **parameters})

    assert response.status_code == 400
    assert error_type(response) == "System.Management.Automation.ParameterBindingException"
    assert expected in error_text(response)
    assert len(_connectors(client, exchange_token)) == 1


def test_numbers_bind_to_booleans_and_strings(client, exchange_token):
    response = invoke(
        client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Enabled": 0, "Comment": 42}
    )
    [connector] = _connectors(client, exchange_token, Identity=DESIRED["Name"])

    assert response.status_code == 200
    assert connector["Enabled"] is False
    assert connector["Comment"] == "42"


def test_parameters_must_be_object(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector", ["Identity", LEGACY])  # type: ignore[arg-type]

    assert response.status_code == 400
    assert error_type(response) == "System.Management.Automation.ParameterBindingException"


@pytest.mark.parametrize(
    "name",
    ['Quoted "name"', "Line\nbreak", "Tab\tname", "Slash/name", "x" * 10_240, "  padded  ", "Nul\x00name"],
)
def test_hostile_names_rejected_without_change(client, exchange_token, name):
    before = _mutations(client)

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Name": name})

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["message"].count("|") >= 2
    assert len(_connectors(client, exchange_token)) == 1
    assert _mutations(client) == before


@pytest.mark.parametrize("length", [65, 10_240])
def test_name_length_one_limit(client, exchange_token, length):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Name": "n" * length})

    assert response.status_code == 400
    assert error_text(response) == (
        f"Cannot validate argument on parameter 'Name'. The length of the argument ({length}) "
        "is longer than the maximum length of 64 characters."
    )


def test_name_error_lists_rejected_characters(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Name": 'O\'Brien "quoted"'})

    assert error_type(response) == "Microsoft.Exchange.Data.DataValidationException"
    assert error_text(response) == (
        'The value of Name "O\'Brien \\"quoted\\"" isn\'t valid: it contains "\\"". '
        'A connector name can\'t contain \\ / : * ? " < > | or a control character.'
    )


@pytest.mark.parametrize("name", ["Connecteur Ünïcødé ✓", "O'Brien relay", "中文连接器", "Name;with,punctuation", "a,b;c=d#e"])
def test_unicode_and_punctuation_names_kept(client, exchange_token, name):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "Name": name})
    [connector] = _connectors(client, exchange_token, Identity=name)

    assert response.status_code == 200
    assert connector["Name"] == name


def test_comment_keeps_newlines_and_rejects_ten_kilobytes(client, exchange_token):
    kept = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "Comment": "line 1\nline 2 \"quoted\""})
    rejected = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "Comment": "c" * 10_240})
    [connector] = _connectors(client, exchange_token)

    assert kept.status_code == 200
    assert rejected.status_code == 400
    assert connector["Comment"] == 'line 1\nline 2 "quoted"'


def test_ten_kilobyte_identity(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector", {"Identity": "i" * 10_240})

    assert response.status_code == 400
    assert "maximum length" in error_text(response)


# --- Set-InboundConnector ---------------------------------------------------------------------------------


def test_set_renames_connector(simulator, client, exchange_token):
    before = _connectors(client, exchange_token)[0]
    simulator.clock.advance(3600)

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "Name": f"{LEGACY}-BACKUP"})
    old = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector", {"Identity": LEGACY})
    [renamed] = _connectors(client, exchange_token, Identity=f"{LEGACY}-BACKUP")

    assert response.status_code == 200
    assert response.json()["value"] == []
    assert old.status_code == 404
    assert renamed["Guid"] == before["Guid"]
    assert renamed["Identity"] == f"{LEGACY}-BACKUP"
    assert renamed["DistinguishedName"].startswith(f"CN={LEGACY}-BACKUP,")
    assert renamed["WhenCreatedUTC"] == before["WhenCreatedUTC"]
    assert renamed["WhenChangedUTC"] > before["WhenChangedUTC"]
    assert renamed["TlsSenderCertificateName"] == before["TlsSenderCertificateName"]
    assert _mutations(client)[-1]["detail"]["changed"] == ["DistinguishedName", "Id", "Identity", "Name"]


def test_set_rename_to_existing_name(client, exchange_token):
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", DESIRED)

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "Name": DESIRED["Name"].lower()})

    assert response.status_code == 400
    assert error_type(response) == "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
    assert {item["Name"] for item in _connectors(client, exchange_token)} == {LEGACY, DESIRED["Name"]}


def test_set_by_guid(client, exchange_token):
    guid = _connectors(client, exchange_token)[0]["Guid"]

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": guid, "Enabled": False})

    assert response.status_code == 200
    assert _connectors(client, exchange_token)[0]["Enabled"] is False


def test_set_add_and_remove_entries(client, exchange_token):
    parameters = {"Name": "Gateway", "SenderDomains": "*", "SenderIPAddresses": ["192.0.2.10", "192.0.2.11"]}
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", parameters)
    change = {"@odata.type": "#Exchange.GenericHashTable", "Add": ["198.51.100.0/24"], "Remove": ["192.0.2.10"]}

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": "Gateway", "SenderIPAddresses": change})
    [connector] = _connectors(client, exchange_token, Identity="Gateway")

    assert response.status_code == 200
    assert connector["SenderIPAddresses"] == ["192.0.2.11", "198.51.100.0/24"]


def test_set_without_change_warns(client, exchange_token):
    before = _mutations(client)

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "RequireTls": True})

    assert response.status_code == 200
    assert response.json()["@adminapi.warnings"] == [
        f"The command completed successfully but no settings of '{LEGACY}' have been modified."
    ]
    assert _mutations(client) == before


@pytest.mark.parametrize(
    ("parameters", "status"),
    [({"Identity": "Nope", "Enabled": False}, 404), ({"Identity": LEGACY, "Name": None}, 400), ({"Enabled": False}, 400)],
)
def test_set_errors(client, exchange_token, parameters, status):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", parameters)

    assert response.status_code == status
    assert _connectors(client, exchange_token)[0]["Enabled"] is True


def test_set_can_clear_sender_domains_only_with_error(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "SenderDomains": []})

    assert response.status_code == 400
    assert "SenderDomains can't be empty" in error_text(response)


def test_whatif_changes_nothing(client, exchange_token):
    created = invoke(client, DEFAULT_TENANT_ID, exchange_token, "New-InboundConnector", {**DESIRED, "WhatIf": True})
    changed = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": LEGACY, "Enabled": False, "WhatIf": True})
    removed = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Remove-InboundConnector", {"Identity": LEGACY, "WhatIf": True})

    assert [created.status_code, changed.status_code, removed.status_code] == [200, 200, 200]
    [connector] = _connectors(client, exchange_token)
    assert connector["Enabled"] is True


# --- Remove-InboundConnector ---------------------------------------------------------------------------------


def test_remove_connector(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Remove-InboundConnector", {"Identity": LEGACY, "Confirm": False})
    again = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Remove-InboundConnector", {"Identity": LEGACY, "Confirm": False})

    assert response.status_code == 200
    assert _connectors(client, exchange_token) == []
    assert again.status_code == 404
    assert _mutations(client)[-1]["operation"] == "Remove-InboundConnector"


# --- the "contact support" tenant ---------------------------------------------------------------------------


def test_disabled_tenant_creates_disabled_connectors(simulator_factory, app_credentials):
    tenant = make_tenant(connectors_created_disabled=True)
    simulator = simulator_factory({"tenants": [tenant]})
    tenant_id = tenant["tenant_id"]

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, tenant_id)
        created = invoke(http, tenant_id, token, "New-InboundConnector", DESIRED)
        enable = invoke(http, tenant_id, token, "Set-InboundConnector", {"Identity": DESIRED["Name"], "Enabled": True})
        comment = invoke(http, tenant_id, token, "Set-InboundConnector", {"Identity": DESIRED["Name"], "Comment": "still disabled"})
        [connector] = invoke(http, tenant_id, token, "Get-InboundConnector", {"Identity": DESIRED["Name"]}).json()["value"]

    assert created.status_code == 200
    assert created.json()["@adminapi.warnings"] == [
        "Inbound connector for this service offering is created in a disabled state. Contact Support to enable it."
    ]
    assert enable.status_code == 400
    assert "You can't enable an inbound connector" in error_text(enable)
    assert comment.status_code == 200
    assert connector["Enabled"] is False
    assert connector["Comment"] == "still disabled"


# --- read-only cmdlets ------------------------------------------------------------------------------------------


def test_get_accepted_domain(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain")

    assert response.status_code == 200
    initial, custom = response.json()["value"]
    assert initial["DomainName"] == DEFAULT_INITIAL_DOMAIN
    assert initial["InitialDomain"] is True
    assert initial["Default"] is True
    assert initial["DomainType"] == "Authoritative"
    assert custom["DomainName"] == "contoso.com"
    assert custom["InitialDomain"] is False
    assert custom["Default"] is False
    assert custom["DistinguishedName"].startswith("CN=contoso.com,CN=Accepted Domains,CN=Transport Settings,")


def test_accepted_domain_default_from_seed(simulator_factory, app_credentials):
    tenant = make_tenant(accepted_domains=[{"DomainName": "contoso.com", "Default": True}, "fabrikam.com"])
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, tenant["tenant_id"])
        response = invoke(http, tenant["tenant_id"], token, "Get-AcceptedDomain")

    defaults = [domain["DomainName"] for domain in response.json()["value"] if domain["Default"]]
    assert response.status_code == 200
    assert defaults == ["contoso.com"]


def test_get_accepted_domain_identity_and_result_size(client, exchange_token):
    by_name = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain", {"Identity": "CONTOSO.COM"})
    missing = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain", {"Identity": "fabrikam.com"})
    limited = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain", {"ResultSize": 1})
    unlimited = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain", {"ResultSize": "Unlimited"})
    invalid = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain", {"ResultSize": "lots"})

    assert [item["Name"] for item in by_name.json()["value"]] == ["contoso.com"]
    assert missing.status_code == 404
    assert len(limited.json()["value"]) == 1
    assert len(unlimited.json()["value"]) == 2
    assert invalid.status_code == 400


def test_outbound_connectors_and_transport_rules(simulator_factory, app_credentials):
    tenant = make_tenant(
        outbound_connectors=[{"Name": "Crossware Outbound", "SmartHosts": ["smtp.crossware.co.nz"], "ConnectorType": "Partner"}],
        transport_rules=[
            {"Name": "Route via Crossware", "RouteMessageOutboundConnector": "Crossware Outbound"},
            {"Name": "Old rule", "State": "Disabled"},
        ],
    )
    simulator = simulator_factory({"tenants": [tenant]})
    tenant_id = tenant["tenant_id"]

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, tenant_id)
        outbound = invoke(http, tenant_id, token, "Get-OutboundConnector").json()["value"]
        by_identity = invoke(http, tenant_id, token, "Get-OutboundConnector", {"Identity": "crossware outbound"}).json()["value"]
        rules = invoke(http, tenant_id, token, "Get-TransportRule").json()["value"]
        enabled = invoke(http, tenant_id, token, "Get-TransportRule", {"State": "Enabled"}).json()["value"]
        missing = invoke(http, tenant_id, token, "Get-TransportRule", {"Identity": "Nope"})
        write = invoke(http, tenant_id, token, "Set-OutboundConnector", {"Identity": "Crossware Outbound", "Enabled": False})

    assert outbound[0]["SmartHosts"] == ["smtp.crossware.co.nz"]
    assert outbound[0]["Identity"] == "Crossware Outbound"
    assert by_identity[0]["Name"] == "Crossware Outbound"
    assert [rule["Priority"] for rule in rules] == [0, 1]
    assert [rule["Name"] for rule in enabled] == ["Route via Crossware"]
    assert missing.status_code == 404
    assert write.status_code == 403


# --- request errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"CmdletInput": "Get-InboundConnector"}', b'{"CmdletInput": {"CmdletName": 5}}', b"\xff\xfe"],
)
def test_malformed_bodies(client, exchange_token, body):
    response = client.post(
        f"/adminapi/beta/{DEFAULT_TENANT_ID}/InvokeCommand",
        content=body,
        headers={"Authorization": f"Bearer {exchange_token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


def test_deeply_nested_body(client, exchange_token):
    response = client.post(
        f"/adminapi/beta/{DEFAULT_TENANT_ID}/InvokeCommand",
        content=DEEPLY_NESTED,
        headers={"Authorization": f"Bearer {exchange_token}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert response.json()["error"]["message"] == (
        "The request body nests arrays or objects more than 64 levels deep; the maximum is 64."
    )


def test_malformed_body_names_position(client, exchange_token):
    response = client.post(
        f"/adminapi/beta/{DEFAULT_TENANT_ID}/InvokeCommand",
        content=b'{"CmdletInput": }',
        headers={"Authorization": f"Bearer {exchange_token}", "Content-Type": "application/json"},
    )

    assert response.json()["error"]["message"] == "The request body is not valid JSON: expecting value at line 1 column 17."


def test_unknown_cmdlet(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Remove-Mailbox", {"Identity": "admin"})

    assert response.status_code == 403
    assert response.content == b""


def test_v1_path_rejects_invoke_command(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector", url=f"/adminapi/v1.0/{DEFAULT_TENANT_ID}/InvokeCommand")

    assert response.status_code == 405


# --- authentication and roles ----------------------------------------------------------------------------------------


def _diagnostics(response):
    return response.headers.get("x-ms-diagnostics", "")


def test_missing_token(client):
    response = client.post(f"/adminapi/beta/{DEFAULT_TENANT_ID}/InvokeCommand", json={"CmdletInput": {"CmdletName": "Get-InboundConnector"}})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert _diagnostics(response).startswith("2000000;")


def test_graph_token_rejected(client, domains_token):
    response = invoke(client, DEFAULT_TENANT_ID, domains_token, "Get-InboundConnector")

    assert response.status_code == 401
    assert _diagnostics(response).startswith("2000003;")


def test_expired_token_rejected(simulator, client, exchange_token):
    simulator.clock.advance(3599 + 301)

    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-InboundConnector")

    assert response.status_code == 401
    assert "invalid_lifetime" in _diagnostics(response)


@pytest.mark.parametrize("mangle", [lambda token: token[:-4] + "AAAA", lambda token: "x" + token, lambda token: "not-a-jwt"])
def test_forged_token_rejected(client, exchange_token, mangle):
    response = invoke(client, DEFAULT_TENANT_ID, mangle(exchange_token), "Get-InboundConnector")

    assert response.status_code == 401


def test_token_of_other_tenant(simulator_factory, app_credentials):
    first, second = make_tenant(), make_tenant()
    simulator = simulator_factory({"tenants": [first, second]})

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, second["tenant_id"])
        response = invoke(http, first["tenant_id"], token, "Get-InboundConnector")
        unknown = invoke(http, "fabrikam.onmicrosoft.com", token, "Get-InboundConnector")

    assert response.status_code == 401
    assert "invalid_tenant" in _diagnostics(response)
    assert unknown.status_code == 401


@pytest.mark.parametrize(
    ("tenant", "cmdlet", "expected"),
    [
        (make_tenant(consent={"granted": True, "permissions": ["Domain.ReadWrite.All"]}), "Get-InboundConnector", "Exchange.ManageAsApp"),
        (make_tenant(app_roles=[]), "Get-InboundConnector", "isn't supported in this scenario"),
        (make_tenant(app_roles=["Domain Name Administrator"]), "Get-InboundConnector", "isn't supported in this scenario"),
        (make_tenant(app_roles=["Global Reader"]), "New-InboundConnector", "User is not allowed to call New-InboundConnector"),
        (make_tenant(app_roles=["Helpdesk Administrator"]), "Get-InboundConnector", "User is not allowed to call Get-InboundConnector"),
    ],
)
def test_roles_required(simulator_factory, app_credentials, tenant, cmdlet, expected):
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, tenant["tenant_id"])
        response = invoke(http, tenant["tenant_id"], token, cmdlet, DESIRED if cmdlet.startswith("New") else None)
        count = len(invoke(http, tenant["tenant_id"], token, "Get-InboundConnector").json().get("value", []))

    assert response.status_code == 403
    assert expected in response.json()["error"]["message"]
    assert count <= 1


def test_global_reader_can_read(simulator_factory, app_credentials):
    tenant = make_tenant(app_roles=["Global Reader"])
    simulator = simulator_factory({"tenants": [tenant]})

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, tenant["tenant_id"])
        response = invoke(http, tenant["tenant_id"], token, "Get-InboundConnector")

    assert response.status_code == 200


# --- paging and $select -----------------------------------------------------------------------------------------------


@pytest.fixture
def five_connectors(simulator_factory, app_credentials):
    connectors = [legacy_connector(f"Connector {index}", f"*.host{index}.example") for index in range(5)]
    tenant = make_tenant(inbound_connectors=connectors)
    simulator = simulator_factory({"tenants": [tenant], "settings": {"page_size": 2}})
    token = access_token(simulator, app_credentials, tenant["tenant_id"])
    with https_client(simulator) as http:
        yield http, tenant["tenant_id"], token


def _all_pages(http, tenant_id, token, *, params=None, headers=None):
    """Return every page, repeating the POST against @odata.nextLink as clients do (at most 10 pages)."""
    pages = [invoke(http, tenant_id, token, "Get-InboundConnector", params=params, headers=headers)]
    while pages[-1].status_code == 200 and "@odata.nextLink" in pages[-1].json() and len(pages) < 10:
        pages.append(invoke(http, tenant_id, token, "Get-InboundConnector", url=pages[-1].json()["@odata.nextLink"], headers=headers))
    assert all(page.status_code == 200 for page in pages)
    return [page.json() for page in pages]


def test_paging_follows_next_link(five_connectors):
    http, tenant_id, token = five_connectors

    pages = _all_pages(http, tenant_id, token)

    assert [len(page["value"]) for page in pages] == [2, 2, 1]
    assert [item["Name"] for page in pages for item in page["value"]] == [f"Connector {index}" for index in range(5)]


def test_prefer_max_page_size(five_connectors):
    http, tenant_id, token = five_connectors

    first = invoke(http, tenant_id, token, "Get-InboundConnector", headers={"Prefer": "odata.maxpagesize=1"})
    pages = _all_pages(http, tenant_id, token, headers={"Prefer": "odata.maxpagesize=1000"})

    assert len(first.json()["value"]) == 1
    assert first.headers["preference-applied"] == "odata.maxpagesize=1"
    assert [len(page["value"]) for page in pages] == [2, 2, 1]


def test_select_limits_properties_on_every_page(five_connectors):
    http, tenant_id, token = five_connectors

    pages = _all_pages(http, tenant_id, token, params={"$select": "Name,SenderDomains"})

    for page in pages:
        for item in page["value"]:
            assert set(item) == {"Name", "SenderDomains", "SenderDomains@odata.type"}


def test_invalid_skip_token(five_connectors):
    http, tenant_id, token = five_connectors

    response = invoke(http, tenant_id, token, "Get-InboundConnector", params={"$skiptoken": "garbage!"})

    assert response.status_code == 400


def test_skip_token_of_other_cmdlet(five_connectors):
    http, tenant_id, token = five_connectors
    next_link = invoke(http, tenant_id, token, "Get-InboundConnector").json()["@odata.nextLink"]

    response = invoke(http, tenant_id, token, "Get-AcceptedDomain", url=next_link)

    assert response.status_code == 400


def test_select_on_accepted_domains(client, exchange_token):
    response = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Get-AcceptedDomain", params={"$select": "DomainName"})

    assert response.json()["value"] == [{"DomainName": DEFAULT_INITIAL_DOMAIN}, {"DomainName": "contoso.com"}]


# --- propagation ---------------------------------------------------------------------------------------------------------


def test_connector_changes_reach_mail_after_delay(simulator_factory, app_credentials):
    clock = ManualClock(datetime.now(timezone.utc))
    tenant = make_tenant(delays={"connector_seconds": 300})
    simulator = simulator_factory({"tenants": [tenant]}, clock=clock)
    tenant_id = tenant["tenant_id"]

    def mail_connectors():
        [view] = simulator.state.mail_view(clock.now(), [tenant_id])
        return {item["Name"]: item["TlsSenderCertificateName"] for item in view.inbound_connectors}

    with https_client(simulator) as http:
        token = access_token(simulator, app_credentials, tenant_id)
        invoke(http, tenant_id, token, "Set-InboundConnector", {"Identity": LEGACY, "Name": f"{LEGACY}-BACKUP"})
        invoke(http, tenant_id, token, "New-InboundConnector", DESIRED)
        before = mail_connectors()
        clock.advance(299)
        almost = mail_connectors()
        clock.advance(1)
        after = mail_connectors()
        invoke(http, tenant_id, token, "Remove-InboundConnector", {"Identity": DESIRED["Name"]})
        removing = mail_connectors()
        clock.advance(300)
        removed = mail_connectors()
        listed = [item["Name"] for item in invoke(http, tenant_id, token, "Get-InboundConnector").json()["value"]]

    assert before == {LEGACY: "*.crossware.co.nz"}
    assert almost == before
    assert after == {f"{LEGACY}-BACKUP": "*.crossware.co.nz", DESIRED["Name"]: UNIQUE_NAME}
    assert removing == after
    assert removed == {f"{LEGACY}-BACKUP": "*.crossware.co.nz"}
    assert listed == [f"{LEGACY}-BACKUP"]
