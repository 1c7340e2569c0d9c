import pytest

from tenanttls.domain.names import (
    validate_connector_name,
    validate_domain_name,
    validate_tenant,
    validate_tenant_id,
)
from tenanttls.errors import InvalidInput

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Contoso.com", "contoso.com"),
        ("contoso.com.", "contoso.com"),
        ("0abc.crosswaretls.com", "0abc.crosswaretls.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_domain_name_valid_forms(value, expected):
    assert validate_domain_name(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "   ", "localhost", "a..b.com", "-a.com", "a-.com", "a b.com", "a" * 64 + ".com", "ex\nample.com", "käse.com"],
)
def test_domain_name_invalid_forms(value):
    with pytest.raises(InvalidInput) as caught:
        validate_domain_name(value)
    assert "invalid domain name" in str(caught.value)


def test_domain_name_too_long():
    name = ".".join(["a" * 60] * 5)
    with pytest.raises(InvalidInput, match="maximum is 253"):
        validate_domain_name(name)


def test_domain_name_wildcard_rules():
    assert validate_domain_name("*.Crossware.co.nz", allow_wildcard=True) == "*.crossware.co.nz"
    with pytest.raises(InvalidInput, match="wildcard is not allowed"):
        validate_domain_name("*.crossware.co.nz")
    with pytest.raises(InvalidInput):
        validate_domain_name("a.*.crossware.co.nz", allow_wildcard=True)


def test_tenant_accepts_guid_and_onmicrosoft_name():
    assert validate_tenant(GUID.upper()) == GUID
    assert validate_tenant("Contoso.onmicrosoft.com") == "contoso.onmicrosoft.com"


@pytest.mark.parametrize("value", ["", "contoso.com", "not-a-guid", GUID + "0", "{" + GUID + "}"])
def test_tenant_rejects_other_forms(value):
    with pytest.raises(InvalidInput) as caught:
        validate_tenant(value)
    assert "invalid tenant" in str(caught.value)


def test_tenant_id_requires_guid():
    assert validate_tenant_id(f" {GUID} ") == GUID
    with pytest.raises(InvalidInput, match="expected a GUID"):
        validate_tenant_id("contoso.onmicrosoft.com")


def test_connector_name_valid():
    assert validate_connector_name("CrosswareInboundConnector-BACKUP") == "CrosswareInboundConnector-BACKUP"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        (" padded", "leading or trailing spaces"),
        ("x" * 65, "maximum is 64"),
        ('bad"quote', "contains"),
        ("new\nline", "contains"),
        ("path/name", "contains"),
    ],
)
def test_connector_name_invalid(value, reason):
    with pytest.raises(InvalidInput, match=reason):
        validate_connector_name(value)
