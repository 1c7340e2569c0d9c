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


def test_domain_name_empty_label_described():
    with pytest.raises(InvalidInput) as caught:
        validate_domain_name("a..crosswaretls.com", what="provider zone")

    assert "an empty label (two dots in a row, or a leading dot)" in str(caught.value)
    assert "label ''" not in str(caught.value)
    assert "'*'" not in str(caught.value)


def test_domain_name_bad_label_without_wildcard_hint():
    with pytest.raises(InvalidInput) as caught:
        validate_domain_name("a_b.crosswaretls.com", what="provider zone")

    assert "label 'a_b' must be 1-63 letters" in str(caught.value)
    assert "'*'" not in str(caught.value)


def test_domain_name_misplaced_wildcard_explained():
    with pytest.raises(InvalidInput, match="a '\\*' is allowed only as the whole first label"):
        validate_domain_name("a.*.crossware.co.nz", allow_wildcard=True)


@pytest.mark.parametrize("value", ["1.2.3.4", "10.0.0.1.", "a.123"])
def test_domain_name_numeric_last_label_rejected(value):
    with pytest.raises(InvalidInput, match="is all digits, so this is an IP address, not a domain name"):
        validate_domain_name(value, what="provider zone")


def test_domain_name_numeric_inner_labels_accepted():
    assert validate_domain_name("4.3.2.1.in-addr.arpa") == "4.3.2.1.in-addr.arpa"
    assert validate_domain_name("123.example.com") == "123.example.com"


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
