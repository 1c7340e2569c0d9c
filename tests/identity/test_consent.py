from urllib.parse import parse_qs, urlsplit

import pytest

from tenanttls.errors import InvalidInput
from tenanttls.identity.consent import (
    MAX_REDIRECT_URI_LENGTH,
    ConsentResult,
    build_admin_consent_url,
    parse_consent_callback,
)

CLIENT_ID = "6a1d0c8e-6f3b-4c55-9d2e-0a6e8f1b2c3d"
TENANT_ID = "0b7a4c1e-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
REDIRECT = "https://portal.crossware.example/consent/callback"


def test_url_has_client_redirect_state():
    url = build_admin_consent_url("https://login.microsoftonline.com/", CLIENT_ID, TENANT_ID, REDIRECT, "s-123")

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "login.microsoftonline.com"
    assert parts.path == f"/{TENANT_ID}/adminconsent"
    assert query == {"client_id": [CLIENT_ID], "redirect_uri": [REDIRECT], "state": ["s-123"]}


def test_url_for_unknown_tenant():
    url = build_admin_consent_url("https://login.microsoftonline.com", CLIENT_ID, "organizations", REDIRECT, "s")

    assert urlsplit(url).path == "/organizations/adminconsent"


def test_url_accepts_localhost_http():
    url = build_admin_consent_url("https://127.0.0.1:8443", CLIENT_ID, "contoso.onmicrosoft.com", "http://127.0.0.1:8080/cb", "s")

    assert urlsplit(url).path == "/contoso.onmicrosoft.com/adminconsent"


@pytest.mark.parametrize(
    "tenant, redirect, state",
    [
        ("contoso.com", REDIRECT, "s"),
        (TENANT_ID, "http://portal.example/cb", "s"),
        (TENANT_ID, "https://portal.example/cb#frag", "s"),
        (TENANT_ID, "https://portal.example/" + "a" * MAX_REDIRECT_URI_LENGTH, "s"),
        (TENANT_ID, "/relative", "s"),
        (TENANT_ID, REDIRECT, ""),
        (TENANT_ID, REDIRECT, "has space"),
    ],
    ids=["tenant", "plain-http", "fragment", "long-redirect", "relative", "empty-state", "state-space"],
)
def test_url_rejects_bad_input(tenant, redirect, state):
    with pytest.raises(InvalidInput):
        build_admin_consent_url("https://login.microsoftonline.com", CLIENT_ID, tenant, redirect, state)


def test_url_rejects_bad_client_id():
    with pytest.raises(InvalidInput, match="'my-app'"):
        build_admin_consent_url("https://login.microsoftonline.com", "my-app", TENANT_ID, REDIRECT, "s")


def test_callback_granted():
    result = parse_consent_callback({"admin_consent": "True", "tenant": TENANT_ID.upper(), "state": "s-1"}, "s-1")

    assert result == ConsentResult(tenant_id=TENANT_ID, granted=True)


def test_callback_declined():
    params = {
        "error": "access_denied",
        "error_description": "AADSTS65004: User declined to consent to access the app.",
        "state": "s-1",
    }

    result = parse_consent_callback(params, "s-1")

    assert result.granted is False
    assert result.tenant_id is None
    assert result.error == "access_denied"
    assert result.error_description.startswith("AADSTS65004")


def test_callback_not_granted_without_flag():
    result = parse_consent_callback({"tenant": TENANT_ID, "state": "s"}, "s")

    assert result.granted is False
    assert result.tenant_id == TENANT_ID


@pytest.mark.parametrize(
    "params",
    [
        {"admin_consent": "True", "tenant": TENANT_ID, "state": "other"},
        {"admin_consent": "True", "tenant": TENANT_ID},
    ],
    ids=["mismatch", "missing"],
)
def test_callback_state_checked(params):
    with pytest.raises(InvalidInput, match="state does not match"):
        parse_consent_callback(params, "s-1")


def test_callback_parse_qs_lists():
    params = parse_qs(f"admin_consent=True&tenant={TENANT_ID}&state=s-1")

    result = parse_consent_callback(params, "s-1")

    assert result == ConsentResult(tenant_id=TENANT_ID, granted=True)


def test_callback_repeated_parameter_rejected():
    params = {"admin_consent": ["True"], "tenant": [TENANT_ID], "state": ["s-1", "s-2"]}

    with pytest.raises(InvalidInput, match="state has 2 values"):
        parse_consent_callback(params, "s-1")


def test_callback_non_string_rejected():
    with pytest.raises(InvalidInput, match="admin_consent is a bool; expected strings"):
        parse_consent_callback({"admin_consent": True, "tenant": TENANT_ID, "state": "s"}, "s")


def test_callback_tenant_must_be_guid():
    with pytest.raises(InvalidInput, match="contoso.onmicrosoft.com"):
        parse_consent_callback({"admin_consent": "True", "tenant": "contoso.onmicrosoft.com", "state": "s"}, "s")


def test_callback_without_tenant_or_error():
    with pytest.raises(InvalidInput, match="neither a tenant nor an error"):
        parse_consent_callback({"admin_consent": "True", "state": "s"}, "s")
