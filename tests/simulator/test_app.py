"""The HTTPS application as a whole: errors that escape a handler."""

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
