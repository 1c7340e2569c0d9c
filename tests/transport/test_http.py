import logging
import socket
import threading
from datetime import timedelta

import pytest

from tenanttls.clock import ManualClock
from tenanttls.errors import ConfigurationError, MicrosoftServiceError, Throttled
from tenanttls.transport import Transport, TransportPolicy
from tests.transport.scripted_server import Reply

TENANT = "contoso.onmicrosoft.com"


def make_transport(**policy) -> tuple[Transport, ManualClock]:
    clock = ManualClock()
    options = {"backoff_base": 0.5, "backoff_cap": 4.0, **policy}
    return Transport(TransportPolicy(**options), clock=clock), clock


def send(transport, server, *, idempotent=True, headers=None):
    return transport.send(
        "POST",
        server.url + "/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand",
        tenant=TENANT,
        operation="Get-InboundConnector",
        idempotent=idempotent,
        headers=headers,
        json={"CmdletInput": {"CmdletName": "Get-InboundConnector"}},
    )


def test_retry_after_honoured(scripted):
    scripted.replies = [Reply(429, {"error": {}}, {"Retry-After": "7"}), Reply(200, {"value": []})]
    transport, clock = make_transport()
    start = clock.now()

    response = send(transport, scripted)

    assert response.status_code == 200
    assert len(scripted.requests) == 2
    assert clock.now() - start == timedelta(seconds=7)


def test_retries_share_client_request_id(scripted):
    scripted.replies = [Reply(503), Reply(503), Reply(200, {"value": []})]
    transport, _ = make_transport()

    send(transport, scripted)

    ids = {request.headers["client-request-id"] for request in scripted.requests}
    assert len(scripted.requests) == 3
    assert len(ids) == 1


def test_backoff_waits_grow_within_cap(scripted):
    scripted.default = Reply(503)
    transport, clock = make_transport(max_attempts=4, backoff_base=1.0, backoff_cap=2.0)
    start = clock.now()

    with pytest.raises(MicrosoftServiceError):
        send(transport, scripted)

    assert len(scripted.requests) == 4
    assert clock.now() - start <= timedelta(seconds=1 + 2 + 2)


def test_throttled_after_attempts(scripted):
    scripted.default = Reply(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "1"})
    transport, _ = make_transport(max_attempts=3)

    with pytest.raises(Throttled) as caught:
        send(transport, scripted)

    assert len(scripted.requests) == 3
    assert caught.value.retry_after == 1.0
    assert caught.value.status == 429
    assert caught.value.tenant == TENANT
    assert caught.value.operation == "Get-InboundConnector"
    assert caught.value.correlation_id == scripted.requests[0].headers["client-request-id"]


def test_retry_after_past_deadline_not_slept(scripted):
    scripted.default = Reply(429, {}, {"Retry-After": "600"})
    transport, clock = make_transport(deadline=60.0)
    start = clock.now()

    with pytest.raises(Throttled) as caught:
        send(transport, scripted)

    assert len(scripted.requests) == 1
    assert caught.value.retry_after == 600.0
    assert clock.now() == start


def test_503_with_retry_after_is_throttled(scripted):
    scripted.default = Reply(503, "busy", {"Retry-After": "120"})
    transport, _ = make_transport(deadline=30.0)

    with pytest.raises(Throttled) as caught:
        send(transport, scripted)

    assert caught.value.retry_after == 120.0


def test_outcome_unknown_not_retried_for_writes(scripted):
    scripted.default = Reply(504, "gateway timeout")
    transport, _ = make_transport()

    with pytest.raises(MicrosoftServiceError, match="read the object's current state"):
        send(transport, scripted, idempotent=False)

    assert len(scripted.requests) == 1


def test_outcome_unknown_retried_for_reads(scripted):
    scripted.replies = [Reply(504, "gateway timeout"), Reply(200, {"value": []})]
    transport, _ = make_transport()

    assert send(transport, scripted).status_code == 200
    assert len(scripted.requests) == 2


def test_not_processed_retried_for_writes(scripted):
    scripted.replies = [Reply(429, {}, {"Retry-After": "1"}), Reply(200, {"value": []})]
    transport, _ = make_transport()

    assert send(transport, scripted, idempotent=False).status_code == 200


def test_client_errors_returned_unretried(scripted):
    scripted.default = Reply(400, {"error": {"code": "BadRequest"}})
    transport, _ = make_transport()

    assert send(transport, scripted).status_code == 400
    assert len(scripted.requests) == 1


def test_hung_request_hits_deadline(scripted):
    scripted.default = Reply(200, {"value": []}, delay=10.0)
    transport, _ = make_transport(read_timeout=0.2, deadline=0.7, backoff_base=0.05)

    with pytest.raises(MicrosoftServiceError, match="deadline") as caught:
        send(transport, scripted)

    assert caught.value.status is None
    assert 2 <= len(scripted.requests) <= 5


def test_hung_write_not_repeated(scripted):
    scripted.default = Reply(200, {"value": []}, delay=10.0)
    transport, _ = make_transport(read_timeout=0.2, deadline=5.0)

    with pytest.raises(MicrosoftServiceError, match="may have been applied") as caught:
        send(transport, scripted, idempotent=False)

    assert len(scripted.requests) == 1
    assert f"timed out waiting for the response ({scripted.url})" in str(caught.value)


def test_dropped_connection_in_words(scripted):
    scripted.default = Reply(close=True)
    transport, _ = make_transport()

    with pytest.raises(MicrosoftServiceError) as caught:
        send(transport, scripted, idempotent=False)

    assert f"the connection closed unexpectedly ({scripted.url})" in str(caught.value)
    assert "RemoteProtocolError" not in str(caught.value)
    assert len(scripted.requests) == 1


def test_invalid_ca_bundle_rejected(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")

    with pytest.raises(ConfigurationError) as caught:
        Transport(verify=bundle)

    assert str(caught.value) == f"invalid CA bundle {bundle}: no certificate or crl found; give a file of PEM CA certificates"


def test_connection_refused_retried_then_fails():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport, _ = make_transport(max_attempts=3)

    with pytest.raises(MicrosoftServiceError) as caught:
        transport.send(
            "GET", f"http://127.0.0.1:{port}/v1.0/domains", tenant=TENANT, operation="GET /v1.0/domains", idempotent=False
        )

    assert "failed after 3 attempt(s)" in str(caught.value)
    assert f"connection refused (http://127.0.0.1:{port})" in str(caught.value)
    assert "ConnectError" not in str(caught.value)


def test_retry_logged_without_token(scripted, caplog):
    scripted.replies = [Reply(429, {}, {"Retry-After": "2"}), Reply(429, {}, {"Retry-After": "2"})]
    scripted.default = Reply(429, {}, {"Retry-After": "2"})
    transport, _ = make_transport(max_attempts=2)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(Throttled):
        send(transport, scripted, headers={"Authorization": "Bearer very-secret-token"})

    request_id = scripted.requests[0].headers["client-request-id"]
    retry = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request retry")]
    failure = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request failed")]
    assert len(retry) == 1
    assert f"tenant={TENANT}" in retry[0]
    assert "operation=Get-InboundConnector" in retry[0]
    assert "attempt=1" in retry[0]
    assert f"client_request_id={request_id}" in retry[0]
    assert len(failure) == 1
    assert f"client_request_id={request_id}" in failure[0]
    assert all("very-secret-token" not in r.getMessage() for r in caplog.records)


def test_tenant_limit_holds_under_load(scripted):
    scripted.default = Reply(200, {"value": []}, delay=0.1)
    transport, _ = make_transport(tenant_concurrency=2)
    errors = []

    def call():
        try:
            send(transport, scripted)
        except Exception as error:  # collected for the assert below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(scripted.requests) == 8
    assert scripted.peak_in_flight == 2


def test_global_budget_holds_under_burst(scripted):
    transport, _ = make_transport(requests_per_second=0.001, burst=3, deadline=0.5, tenant_concurrency=20)
    outcomes = []

    def call():
        try:
            outcomes.append(send(transport, scripted).status_code)
        except Throttled as error:
            outcomes.append(error)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(scripted.requests) == 3
    assert outcomes.count(200) == 3
    assert sum(isinstance(outcome, Throttled) for outcome in outcomes) == 7


def test_stats_count_requests_and_retries(scripted):
    scripted.replies = [Reply(503), Reply(200, {"value": []})]
    transport, _ = make_transport()

    send(transport, scripted)

    stats = transport.stats()
    assert stats.requests == 2
    assert stats.retries == 1
    assert stats.failures == 0


def test_plain_http_port_not_retried(scripted):
    transport, _ = make_transport()
    https_url = scripted.url.replace("http://", "https://")

    with pytest.raises(ConfigurationError) as caught:
        transport.send(
            "GET", https_url + "/v1.0/domains", tenant=TENANT, operation="GET /v1.0/domains", idempotent=True,
            url_setting="graph_url",
        )

    assert str(caught.value).startswith(f"{https_url} did not respond with TLS (wrong version number)")
    assert "check graph_url" in str(caught.value)
    assert transport.stats().requests == 1
    assert transport.stats().retries == 0
