"""The HTTPS application as a whole: errors that escape a handler, unknown paths and methods."""

from __future__ import annotations

import logging

import pytest
from starlette.requests import Request
from starlette.routing import Route

from tests.simulator.helpers import https_client


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _FailingService:
    """A front door whose only route raises, as a bug in a handler would."""

    def __init__(self) -> None:
        self.routes = [Route("/_simulator/failing", self._fail, methods=["GET"])]

    async def _fail(self, request: Request) -> None:
        raise RuntimeError("handler bug")

    def start(self, simulator) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def log_records():
    """Records of the simulator's and uvicorn's loggers, which do not all reach pytest's caplog."""
    handler = _ListHandler()
    loggers = [logging.getLogger("tenanttls.simulator"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler.records
    for logger in loggers:
        logger.removeHandler(handler)


def test_unexpected_error_logged_once(simulator, log_records):
    simulator.add_service(_FailingService())

    with https_client(simulator) as http:
        failed = http.get("/_simulator/failing")
        health = http.get("/_simulator/health")

    errors = [record for record in log_records if record.levelno >= logging.ERROR]
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "InternalServerError"
    assert health.status_code == 200
    assert len(errors) == 1
    assert errors[0].name == "tenanttls.simulator.app"
    assert errors[0].exc_info is not None


def test_graph_unknown_segment(client):
    response = client.get("/v1.0/nothing")
    deeper = client.get("/v1.0/domains/contoso.com/nothing")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert response.json()["error"]["message"] == "Resource not found for the segment 'nothing'."
    assert "request-id" in response.json()["error"]["innerError"]
    assert deeper.json()["error"]["message"] == "Resource not found for the segment 'nothing'."


def test_graph_wrong_method(client):
    response = client.get("/v1.0/domains/contoso.com/verify")

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "Request_BadRequest"


def test_exchange_wrong_method_and_path(client):
    wrong_method = client.get("/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand")
    unknown = client.post("/adminapi/beta/contoso.onmicrosoft.com/Nothing")

    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.json()["error"]["code"] == "MethodNotAllowed"
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "NotFound"


def test_inspection_wrong_method_and_path(client):
    wrong_method = client.get("/_simulator/clock/advance")
    unknown = client.get("/_simulator/nothing")

    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "method GET is not allowed on /_simulator/clock/advance; use POST"}
    assert unknown.status_code == 404
    assert "unknown inspection path /_simulator/nothing" in unknown.json()["error"]


def test_identity_wrong_method_and_path(client):
    wrong_method = client.put("/contoso.onmicrosoft.com/oauth2/v2.0/token")
    unknown = client.get("/contoso.onmicrosoft.com/oauth2/v2.0/nothing")

    assert wrong_method.status_code == 405
    assert wrong_method.json()["error_codes"] == [900561]
    assert "Received a PUT request" in wrong_method.json()["error_description"]
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    assert "/contoso.onmicrosoft.com/oauth2/v2.0/nothing" in unknown.json()["error_description"]
