"""Rejected request data: messages in the portal's words, over HTTP and for single Pydantic errors."""

from __future__ import annotations

import pytest

from tenanttls.portal.validation import describe_error
from tests.portal.conftest import ADMIN_A, OPERATOR, TENANT_A


def test_api_note_too_long_names_field(portal):
    client = portal.signed_in(ADMIN_A)
    answer = client.post(
        f"/api/tenants/{TENANT_A}/manual", json={"contact_email": "it@tenanta.example", "note": "x" * 2001},
        headers={"X-CSRF-Token": portal.csrf(client)},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == "The field 'note' is 2001 characters long; the maximum is 2000. Shorten it."
    assert answer.json()["errors"] == [{"field": "note", "message": answer.json()["detail"]}]


@pytest.mark.parametrize("body", [[], None, "text"])
def test_api_body_not_object(portal, body):
    client = portal.signed_in(ADMIN_A)
    answer = client.post(f"/api/tenants/{TENANT_A}/rollback", json=body, headers={"X-CSRF-Token": portal.csrf(client)})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("The request body ")
    assert "dictionary" not in answer.json()["detail"]


def test_api_bad_json_explained(portal):
    client = portal.signed_in(ADMIN_A)
    answer = client.post(
        f"/api/tenants/{TENANT_A}/rollback", content=b"{confirm: true}",
        headers={"X-CSRF-Token": portal.csrf(client), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("The request body is not valid JSON")


def test_api_query_integer_explained(portal):
    client = portal.signed_in(OPERATOR, operator=True)
    answer = client.get(f"/api/operator/tenants/{TENANT_A}/audit", params={"before": "abc"})
    assert answer.status_code == 422
    assert answer.json()["detail"] == "The query parameter 'before' must be a whole number, not 'abc'."


def test_file_upload_rejected_415(portal):
    client = portal.signed_in(ADMIN_A)
    answer = client.post(
        f"/tenants/{TENANT_A}/manual",
        data={"csrf_token": portal.csrf(client), "contact_email": "it@tenanta.example"},
        files={"note": ("note.txt", b"hello", "text/plain")},
    )
    assert answer.status_code == 415
    assert "File uploads are not accepted" in answer.text
    assert "security token" not in answer.text
    assert portal.upgrade(TENANT_A).state == "awaiting_consent"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"type": "missing", "loc": ("body", "confirm")}, "The field 'confirm' is missing; add it."),
        ({"type": "extra_forbidden", "loc": ("body", "force"), "input": 1}, "The field 'force' is not part of this request; remove it"),
        ({"type": "bool_parsing", "loc": ("body", "confirm"), "input": "maybe"}, "The field 'confirm' must be true or false, not 'maybe'."),
        ({"type": "string_type", "loc": ("body", "note"), "input": 5}, "The field 'note' must be text in double quotes, not 5."),
        (
            {"type": "string_pattern_mismatch", "loc": ("body", "plan_fingerprint"), "input": "nope", "ctx": {"pattern": "x"}},
            "The field 'plan_fingerprint' value 'nope' is not valid; send the 64 hexadecimal characters",
        ),
        ({"type": "model_type", "loc": ("body",), "input": None}, "The request body must be a JSON object"),
    ],
)
def test_describe_error_cases(error, message):
    assert describe_error(error).startswith(message)
