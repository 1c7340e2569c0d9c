import pytest

from tenanttls.errors import (
    ConsentRequired,
    CredentialError,
    InvalidRequest,
    MicrosoftServiceError,
    NotFound,
)
from tenanttls.identity.errors import error_codes, error_for_result

TENANT = "0b7a4c1e-3f5d-4e2a-9c8b-1d2e3f4a5b6c"
SCOPE = "https://graph.microsoft.com/.default"


def result(error, description, codes=None):
    return {"error": error, "error_description": description, "error_codes": codes or [], "correlation_id": "c-1"}


@pytest.mark.parametrize(
    "response, expected",
    [
        (result("unauthorized_client", "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.", [700016]), ConsentRequired),
        (result("invalid_grant", "AADSTS65001: The user or administrator has not consented to use the application.", [65001]), ConsentRequired),
        (result("invalid_client", "AADSTS7000229: The client application is missing service principal in the tenant.", [7000229]), ConsentRequired),
        (result("unauthorized_client", "The client is not authorized."), ConsentRequired),
        (result("invalid_client", "AADSTS700027: Client assertion failed signature validation.", [700027]), CredentialError),
        (result("invalid_client", "AADSTS7000215: Invalid client secret provided.", [7000215]), CredentialError),
        (result("invalid_client", "The client credential is wrong."), CredentialError),
        (result("invalid_request", "AADSTS90002: Tenant 'x' not found.", [90002]), NotFound),
        (result("temporarily_unavailable", "AADSTS50168: try again"), MicrosoftServiceError),
        (result("invalid_scope", "AADSTS1002012: The provided value for scope is not valid."), InvalidRequest),
    ],
    ids=["700016", "65001", "7000229", "unauthorized", "700027", "7000215", "invalid-client", "90002", "transient", "scope"],
)
def test_result_mapped(response, expected):
    error = error_for_result(response, tenant=TENANT, scope=SCOPE)

    assert type(error) is expected
    assert error.tenant == TENANT
    assert error.correlation_id == "c-1"


def test_codes_read_from_description():
    assert error_codes({"error_description": "AADSTS700016: app missing\nTrace ID: 1"}) == {700016}


def test_message_names_tenant_and_next_step():
    error = error_for_result(result("unauthorized_client", "AADSTS700016: not found", [700016]), tenant=TENANT, scope=SCOPE)

    assert TENANT in str(error)
    assert "ask the tenant's admin to consent" in str(error)


def test_unknown_app_names_client_id():
    client_id = "11111111-2222-3333-4444-555555555555"
    description = (
        f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory 'Contoso'.\r\n"
        "Trace ID: 9b5a\r\nCorrelation ID: c-1\r\nTimestamp: 2026-01-01 00:00:00Z"
    )
    response = result("unauthorized_client", description, [700016])

    error = error_for_result(response, tenant=TENANT, scope=SCOPE, client_id=client_id)

    assert type(error) is ConsentRequired
    assert f"Check that client_id {client_id} is the app registration's application (client) id" in str(error)
    assert "ask the tenant's admin to consent" in str(error)
    assert "Trace ID" not in str(error)


def test_trace_ids_dropped_from_one_line():
    description = "AADSTS65001: The administrator has not consented. Trace ID: 9b5a Correlation ID: c-1 Timestamp: 2026"
    response = result("invalid_grant", description, [65001])

    error = error_for_result(response, tenant=TENANT, scope=SCOPE)

    assert "(invalid_grant: AADSTS65001: The administrator has not consented.)" in str(error)
