from tenanttls.domain.exchange import (
    AcceptedDomain,
    ConnectorSettings,
    InboundConnector,
    normalise_connector_source,
    normalise_connector_type,
    normalise_sender_domain,
)

LEGACY = {
    "Name": "CrosswareInboundConnector",
    "Enabled": True,
    "ConnectorType": "onPremises",
    "ConnectorSource": "AdminUI",
    "SenderDomains": ["smtp:*;1"],
    "SenderIPAddresses": [],
    "TlsSenderCertificateName": "*.Crossware.co.nz",
    "RequireTls": True,
    "RestrictDomainsToCertificate": True,
    "RestrictDomainsToIPAddresses": False,
    "CloudServicesMailEnabled": True,
    "TreatMessagesAsInternal": False,
    "Comment": "",
    "Guid": "0f4c2d4e-8c51-4d6b-9f3a-7b1e2f0a9c11",
    "WhenCreatedUTC": "2024-03-01T10:00:00Z",
}


def test_sender_domain_unwrapped():
    assert normalise_sender_domain("smtp:*;1") == "*"
    assert normalise_sender_domain("SMTP:Fabrikam.com;1") == "fabrikam.com"
    assert normalise_sender_domain("contoso.com") == "contoso.com"


def test_connector_enums_normalised():
    assert normalise_connector_type("onPremises") == "OnPremises"
    assert normalise_connector_type("PARTNER") == "Partner"
    assert normalise_connector_source("AdminUI") == "Default"
    assert normalise_connector_source("hybridwizard") == "HybridWizard"


def test_inbound_connector_from_exchange_normalises():
    connector = InboundConnector.from_exchange(LEGACY)

    assert connector.connector_type == "OnPremises"
    assert connector.connector_source == "Default"
    assert connector.sender_domains == ("*",)
    assert connector.tls_sender_certificate_name == "*.crossware.co.nz"
    assert connector.when_created is not None
    assert connector.raw["ConnectorSource"] == "AdminUI"


def test_settings_differences_empty_when_matching():
    connector = InboundConnector.from_exchange(LEGACY)
    settings = ConnectorSettings(name="crosswareinboundconnector", tls_sender_certificate_name="*.CROSSWARE.co.nz")

    assert settings.differences(connector) == {}


def test_settings_differences_name_each_field():
    connector = InboundConnector.from_exchange({**LEGACY, "Enabled": False, "RequireTls": False})
    settings = ConnectorSettings(name="CrosswareInboundConnector", tls_sender_certificate_name="abc.crosswaretls.com")

    differences = settings.differences(connector)

    assert differences["Enabled"] == (False, True)
    assert differences["RequireTls"] == (False, True)
    assert differences["TlsSenderCertificateName"] == ("*.crossware.co.nz", "abc.crosswaretls.com")
    assert "Comment" not in differences


def test_settings_parameters_for_new_connector():
    settings = ConnectorSettings(
        name="CrosswareInboundConnector",
        tls_sender_certificate_name="abc.crosswaretls.com",
        comment="tenanttls 0.1.0 run=r1",
    )

    parameters = settings.parameters()

    assert parameters["SenderDomains"] == ["*"]
    assert parameters["ConnectorType"] == "OnPremises"
    assert parameters["TlsSenderCertificateName"] == "abc.crosswaretls.com"
    assert parameters["RestrictDomainsToCertificate"] is True
    assert "SenderIPAddresses" not in parameters


def test_accepted_domain_from_exchange():
    domain = AcceptedDomain.from_exchange(
        {"DomainName": "Contoso.onmicrosoft.com", "DomainType": "Authoritative", "InitialDomain": True}
    )

    assert domain.domain_name == "contoso.onmicrosoft.com"
    assert domain.initial is True
    assert domain.default is False
