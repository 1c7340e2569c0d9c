"""The /_simulator/ inspection API: seeding, reading and changing tenants, settings, clock, mutation log, mail view."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tenanttls.clock import ManualClock
from tests.fixtures.simulator import DEFAULT_INITIAL_DOMAIN, DEFAULT_TENANT_ID, make_tenant
from tests.simulator.helpers import access_token, https_client, invoke, token_request

EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"


def test_health(client):
    response = client.get("/_simulator/health")

    assert response.json() == {"status": "ok", "tenants": 1}


def test_seed_adds_tenants(client, app_credentials):
    tenant = make_tenant(initial_domain="fabrikam.onmicrosoft.com", accepted_domains=["fabrikam.com"])

    response = client.post("/_simulator/seed", json={"tenants": [tenant]})
    listed = client.get("/_simulator/tenants").json()["tenants"]

    assert response.status_code == 201
    assert response.json() == {"tenants": [tenant["tenant_id"]]}
    assert [item["initial_domain"] for item in listed] == [DEFAULT_INITIAL_DOMAIN, "fabrikam.onmicrosoft.com"]
    assert token_request(client, "fabrikam.com", app_credentials).status_code == 200


def test_seed_existing_tenant_needs_replace(client, simulator_tenant):
    replacement = {**simulator_tenant, "display_name": "Contoso Ltd", "inbound_connectors": []}

    refused = client.post("/_simulator/seed", json={"tenants": [replacement]})
    replaced = client.post("/_simulator/seed", params={"replace": "true"}, json={"tenants": [replacement]})
    document = client.get(f"/_simulator/tenants/{DEFAULT_TENANT_ID}").json()

    assert refused.status_code == 400
    assert "already exists" in refused.json()["error"]
    assert replaced.status_code == 201
    assert document["display_name"] == "Contoso Ltd"
    assert document["inbound_connectors"] == []


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ({"tenants": [make_tenant(tenant_id="not-a-guid")]}, 'invalid tenant_id "not-a-guid" of tenants[0] in the seed'),
        ({"tenants": [make_tenant(initial_domain="contoso.com")]}, "must end in .onmicrosoft.com"),
        ({"tenants": [{**make_tenant(), "colour": "blue"}]}, "unknown tenant key(s) colour"),
        ({"tenants": [make_tenant(inbound_connectors=[{"Enabled": True}])]}, "has no Name"),
        ({"tenants": [make_tenant(inbound_connectors=[{"Name": "A", "SenderDomains": ["a.*.b"]}])]}, "SenderDomains"),
        ({"tenants": [make_tenant(app_roles=["Chief Wizard"])]}, "unknown Entra role"),
        ({"tenants": [make_tenant(accepted_domains=["contoso.com"])]}, "already verified in tenant"),
        ({"tenants": [make_tenant(delays={"connector_seconds": "soon"})]}, "invalid duration"),
        ({"tenants": [make_tenant(faults={"throttle_rate": 3})]}, "probability"),
        ({"app": {"client_id": "x", "certificates": ["pem"]}, "tenants": []}, "client_id"),
        ({"app": {"client_id": DEFAULT_TENANT_ID, "certificates": ["not a pem"]}, "tenants": []}, "certificate"),
        ({"tenants": "all"}, "must be a list"),
        ({"tenant": []}, "unknown seed key(s) tenant"),
        ([], "must be a JSON object"),
    ],
)
def test_invalid_seed_changes_nothing(client, seed, message):
    before = client.get("/_simulator/tenants").json()

    response = client.post("/_simulator/seed", json=seed)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.get("/_simulator/tenants").json() == before


def _without(tenant: dict, key: str) -> dict:
    return {name: value for name, value in tenant.items() if name != key}


def test_seed_messages_name_missing_keys(client):
    second = make_tenant("5d6c7b8a-0000-4000-8000-000000000001", "second.onmicrosoft.com")

    no_id = client.post("/_simulator/seed", json={"tenants": [make_tenant(), _without(make_tenant(), "tenant_id")]})
    no_initial = client.post("/_simulator/seed", json={"tenants": [_without(second, "initial_domain")]})
    no_client_id = client.post("/_simulator/seed", json={"app": {"certificates": ["x"]}, "tenants": []})

    assert no_id.json()["error"] == (
        "missing tenant_id of tenants[1] in the seed: give the tenant's id, a GUID such as 0e5a8c3b-6f1d-4d2a-9b7e-2c4f8a1d3e5b"
    )
    assert no_initial.json()["error"] == (
        'missing initial_domain of tenant 5d6c7b8a-0000-4000-8000-000000000001 (tenants[0] in the seed): '
        'give a name like "contoso.onmicrosoft.com"'
    )
    assert no_client_id.json()["error"].startswith("missing client_id of the app in the seed")


def test_seed_messages_show_values_as_json(client, app_credentials):
    bad_initial = client.post("/_simulator/seed", json={"tenants": [make_tenant(initial_domain="not a name")]})
    bad_certificate = client.post(
        "/_simulator/seed",
        json={"app": {**app_credentials.seed_app(), "certificates": ["-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"]}},
    )
    twice = client.post(
        "/_simulator/seed",
        json={"tenants": [make_tenant(inbound_connectors=[{"Name": 'O\'Brien "A"'}, {"Name": 'o\'brien "a"'}])]},
    )
    bad_consent = client.post("/_simulator/seed", json={"tenants": [make_tenant(consent_decision="maybe")]})

    assert bad_initial.json()["error"].startswith('invalid initial_domain "not a name" of tenant ')
    assert bad_initial.json()["error"].endswith('expected a name like "contoso.onmicrosoft.com"')
    assert bad_certificate.json()["error"] == (
        "app certificate 1 in the seed is not a PEM certificate; give the public certificate, "
        "the text from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"
    )
    assert 'the name "o\'brien \\"a\\"" twice' in twice.json()["error"]
    assert "MalformedFraming" not in bad_certificate.text
    assert 'invalid consent_decision "maybe" of tenant ' in bad_consent.json()["error"]


def test_seed_malformed_json(client):
    response = client.post("/_simulator/seed", content=b"{", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "the request body is not valid JSON: expecting property name enclosed in double quotes at line 1 column 2"
    }


def test_seed_deeply_nested_json(client):
    before = client.get("/_simulator/tenants").json()

    response = client.post("/_simulator/seed", content=b"[" * 100_000 + b"]" * 100_000)
    nested_tenant = client.post("/_simulator/seed", json={"tenants": [make_tenant(display_name=_nested(70))]})

    assert response.status_code == 400
    assert response.json() == {"error": "the request body nests arrays or objects more than 64 levels deep; the maximum is 64"}
    assert nested_tenant.status_code == 400
    assert client.get("/_simulator/tenants").json() == before


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("reference", [DEFAULT_TENANT_ID, DEFAULT_INITIAL_DOMAIN, "CONTOSO.COM"])
def test_get_tenant_document(client, reference):
    response = client.get(f"/_simulator/tenants/{reference}")

    assert response.status_code == 200
    document = response.json()
    assert document["tenant_id"] == DEFAULT_TENANT_ID
    assert document["consent"]["granted"] is True
    assert document["app_roles"] == [EXCHANGE_ADMINISTRATOR]
    assert set(document["domains"]) == {DEFAULT_INITIAL_DOMAIN, "contoso.com"}
    assert document["inbound_connectors"][0]["current"]["Name"] == "CrosswareInboundConnector"


def test_unknown_tenant_is_404(client):
    assert client.get("/_simulator/tenants/unknown.onmicrosoft.com").status_code == 404
    assert client.patch("/_simulator/tenants/unknown.onmicrosoft.com", json={}).status_code == 404
    assert client.delete("/_simulator/tenants/unknown.onmicrosoft.com").status_code == 404


def test_update_tenant(client, exchange_token):
    response = client.patch(
        f"/_simulator/tenants/{DEFAULT_TENANT_ID}",
        json={
            "display_name": "Contoso Pty",
            "connectors_created_disabled": True,
            "app_roles": ["Global Reader"],
            "delays": {"connector_seconds": "5m"},
            "consent_decision": "deny",
        },
    )
    document = response.json()
    write = invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": "CrosswareInboundConnector", "Enabled": False})

    assert response.status_code == 200
    assert document["display_name"] == "Contoso Pty"
    assert document["connectors_created_disabled"] is True
    assert document["app_roles"] == [GLOBAL_READER]
    assert document["delays"] == {"connector_seconds": 300.0}
    assert document["consent"]["decision"] == "deny"
    # The token was issued before the role changed; Exchange reads roles from the token.
    assert write.status_code == 200


@pytest.mark.parametrize(
    "update",
    [
        {"colour": "blue"},
        {"connectors_created_disabled": "yes"},
        {"app_roles": "Global Reader"},
        {"display_name": ""},
        {"consent_decision": "maybe"},
        {"delays": {"connector_seconds": -1}},
        [],
    ],
)
def test_update_tenant_rejects_invalid(client, update):
    before = client.get(f"/_simulator/tenants/{DEFAULT_TENANT_ID}").json()

    response = client.patch(f"/_simulator/tenants/{DEFAULT_TENANT_ID}", json=update)

    assert response.status_code == 400
    assert client.get(f"/_simulator/tenants/{DEFAULT_TENANT_ID}").json() == before


def test_delete_tenant(client, app_credentials):
    response = client.delete(f"/_simulator/tenants/{DEFAULT_TENANT_ID}")

    assert response.status_code == 204
    assert client.get("/_simulator/tenants").json() == {"tenants": []}
    assert token_request(client, DEFAULT_TENANT_ID, app_credentials).json()["error_codes"] == [90002]


@pytest.mark.parametrize("body", [{"granted": "yes"}, {"granted": True, "permissions": "all"}, {}, None])
def test_consent_rejects_invalid(client, body):
    response = client.post(f"/_simulator/tenants/{DEFAULT_TENANT_ID}/consent", json=body)

    assert response.status_code == 400


def test_consent_with_permissions(client, app_credentials):
    response = client.post(f"/_simulator/tenants/{DEFAULT_TENANT_ID}/consent", json={"granted": True, "permissions": ["Domain.Read.All"]})

    assert response.status_code == 200
    assert response.json()["permissions"] == ["Domain.Read.All"]


def test_consent_decision_rejects_invalid(client):
    response = client.post(f"/_simulator/tenants/{DEFAULT_TENANT_ID}/consent-decision", json={"decision": "later"})

    assert response.status_code == 400


def test_settings(client):
    before = client.get("/_simulator/settings").json()
    response = client.patch("/_simulator/settings", json={"delays": {"accepted_domain_seconds": "15m"}, "page_size": 50})
    restored = client.patch("/_simulator/settings", json={"delays": {"accepted_domain_seconds": None}})

    assert before["delays"] == {"accepted_domain_seconds": 0.0, "connector_seconds": 0.0, "consent_seconds": 0.0}
    assert before["page_size"] == 1000
    assert response.json()["delays"]["accepted_domain_seconds"] == 900.0
    assert response.json()["page_size"] == 50
    assert restored.json()["delays"]["accepted_domain_seconds"] == 0.0


@pytest.mark.parametrize("update", [{"page_size": 0}, {"page_size": "ten"}, {"token_lifetime_seconds": True}, {"speed": 1}])
def test_settings_reject_invalid(client, update):
    response = client.patch("/_simulator/settings", json=update)

    assert response.status_code == 400


def test_settings_range_messages(client):
    page_size = client.patch("/_simulator/settings", json={"page_size": 1001})
    lifetime = client.patch("/_simulator/settings", json={"token_lifetime_seconds": 86401})
    largest = client.patch("/_simulator/settings", json={"page_size": 1000})

    assert page_size.json()["error"] == "invalid page_size 1001: expected a whole number from 1 to 1000 (objects per InvokeCommand page)"
    assert lifetime.json()["error"] == "invalid token_lifetime_seconds 86401: expected a whole number from 1 to 86400 (seconds)"
    assert largest.json()["page_size"] == 1000


def test_settings_null_clears_all_faults(client):
    defaults = client.get("/_simulator/settings").json()
    client.patch("/_simulator/settings", json={"faults": {"throttle_rate": 0.5, "max_faults": 3}, "delays": {"connector_seconds": 60}})

    cleared = client.patch("/_simulator/settings", json={"faults": None, "delays": None})
    unchanged = client.patch("/_simulator/settings", json={"faults": {}})

    assert cleared.status_code == 200
    assert cleared.json()["faults"] == defaults["faults"]
    assert cleared.json()["delays"] == defaults["delays"]
    assert unchanged.json() == cleared.json()


def test_tenant_null_clears_all_overrides(client):
    client.patch(f"/_simulator/tenants/{DEFAULT_TENANT_ID}", json={"faults": {"throttle_rate": 1}, "delays": {"consent_seconds": 5}})

    response = client.patch(f"/_simulator/tenants/{DEFAULT_TENANT_ID}", json={"faults": None, "delays": None})

    assert response.status_code == 200
    assert response.json()["faults"] == {}
    assert response.json()["delays"] == {}


def test_token_lifetime_setting(simulator, client, app_credentials):
    client.patch("/_simulator/settings", json={"token_lifetime_seconds": 60})

    response = token_request(client, DEFAULT_TENANT_ID, app_credentials)

    assert response.json()["expires_in"] == 60


def test_clock(simulator, client):
    before = client.get("/_simulator/clock").json()
    advanced = client.post("/_simulator/clock/advance", json={"seconds": 86400})
    backwards = client.post("/_simulator/clock/advance", json={"seconds": -1})
    nonsense = client.post("/_simulator/clock/advance", json={"seconds": "a day"})

    assert before["kind"] == "ManualClock"
    assert advanced.status_code == 200
    assert advanced.json()["now"] > before["now"]
    assert simulator.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ") == advanced.json()["now"]
    assert backwards.status_code == 400
    assert nonsense.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"seconds": 1e12}',
        b'{"seconds": 1e308}',
        b'{"seconds": 1' + b"0" * 400 + b"}",
        b'{"seconds": NaN}',
        b'{"seconds": Infinity}',
        b'{"seconds": -1}',
        b'{"seconds": "1h"}',
        b'{"seconds": true}',
        b'{"seconds": null}',
        b"{}",
    ],
)
def test_clock_rejects_invalid_advance(client, body):
    before = client.get("/_simulator/clock").json()

    response = client.post("/_simulator/clock/advance", content=body, headers={"Content-Type": "application/json"})
    after = client.get("/_simulator/clock")
    tenant = client.get(f"/_simulator/tenants/{DEFAULT_TENANT_ID}")

    assert response.status_code == 400
    assert "seconds" in response.json()["error"]
    assert after.status_code == 200
    assert after.json() == before
    assert tenant.status_code == 200


def test_clock_advance_names_maximum(client):
    response = client.post("/_simulator/clock/advance", json={"seconds": 1e12})

    assert response.json()["error"] == (
        "invalid 'seconds' 1000000000000.0: expected a number from 0 to 3153600000 (100 years); the clock only moves forward"
    )


def test_clock_stops_at_latest_time(simulator_factory):
    simulator = simulator_factory(clock=ManualClock(datetime(8950, 1, 1, tzinfo=timezone.utc)))
    with https_client(simulator) as http:
        too_far = http.post("/_simulator/clock/advance", json={"seconds": 3153600000})
        clock = http.get("/_simulator/clock")
        within = http.post("/_simulator/clock/advance", json={"seconds": 86400})

    assert too_far.status_code == 400
    assert "would pass 9000-01-01T00:00:00Z" in too_far.json()["error"]
    assert clock.json()["now"] == "8950-01-01T00:00:00Z"
    assert within.json()["now"] == "8950-01-02T00:00:00Z"


def test_settings_reject_delay_beyond_maximum(client):
    response = client.patch("/_simulator/settings", json={"delays": {"connector_seconds": 1e12}})
    duration = client.patch("/_simulator/settings", json={"faults": {"hang_seconds": "99999999999d"}})

    assert response.status_code == 400
    assert "expected seconds from 0 to 3153600000 (100 years)" in response.json()["error"]
    assert duration.status_code == 400
    assert client.get("/_simulator/settings").json()["delays"]["connector_seconds"] == 0.0


def test_mutation_log(client, exchange_token):
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": "CrosswareInboundConnector", "Enabled": False})
    client.post("/_simulator/clock/advance", json={"seconds": 1})

    mine = client.get("/_simulator/mutations", params={"tenant": DEFAULT_INITIAL_DOMAIN}).json()["mutations"]
    everything = client.get("/_simulator/mutations", params={"limit": 1}).json()["mutations"]
    unknown = client.get("/_simulator/mutations", params={"tenant": "nobody.onmicrosoft.com"})

    assert [item["operation"] for item in mine] == ["seed-tenant", "Set-InboundConnector"]
    assert all(item["tenant_id"] == DEFAULT_TENANT_ID for item in mine)
    assert mine[-1]["detail"]["changed"] == ["Enabled"]
    assert [item["operation"] for item in everything] == ["advance-clock"]
    assert unknown.status_code == 404


def test_mail_view(simulator, client, exchange_token):
    client.patch(f"/_simulator/tenants/{DEFAULT_TENANT_ID}", json={"delays": {"connector_seconds": 60}})
    invoke(client, DEFAULT_TENANT_ID, exchange_token, "Set-InboundConnector", {"Identity": "CrosswareInboundConnector", "Enabled": False})

    now = client.get("/_simulator/mail-view").json()
    later = client.get("/_simulator/mail-view", params={"at": "2999-01-01T00:00:00Z"}).json()
    invalid = client.get("/_simulator/mail-view", params={"at": "tomorrow"})

    [tenant] = now["tenants"]
    assert tenant["tenant_id"] == DEFAULT_TENANT_ID
    assert tenant["accepted_domains"] == [DEFAULT_INITIAL_DOMAIN, "contoso.com"]
    assert tenant["inbound_connectors"][0]["Enabled"] is True
    assert later["tenants"][0]["inbound_connectors"][0]["Enabled"] is False
    assert invalid.status_code == 400


def test_mail_view_from_python(simulator, app_credentials, client):
    token = access_token(simulator, app_credentials, DEFAULT_TENANT_ID)
    invoke(client, DEFAULT_TENANT_ID, token, "Remove-InboundConnector", {"Identity": "CrosswareInboundConnector"})

    [view] = simulator.state.mail_view(simulator.clock.now())

    assert view.tenant_id == DEFAULT_TENANT_ID
    assert view.initial_domain == DEFAULT_INITIAL_DOMAIN
    assert view.inbound_connectors == ()
