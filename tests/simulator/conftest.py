"""Fixtures of the simulator tests: an HTTPS client for the `simulator` fixture and tokens for its tenant."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from tenanttls.simulator import Simulator
from tests.fixtures.simulator import DEFAULT_TENANT_ID, AppCredentials
from tests.simulator.helpers import access_token, graph_token, https_client


@pytest.fixture
def client(simulator: Simulator) -> Iterator[httpx.Client]:
    """An httpx client for the `simulator` fixture, trusting its CA."""
    with https_client(simulator) as http:
        yield http


@pytest.fixture
def exchange_token(simulator: Simulator, app_credentials: AppCredentials) -> str:
    """An Exchange token for the `simulator` fixture's tenant."""
    return access_token(simulator, app_credentials, DEFAULT_TENANT_ID)


@pytest.fixture
def domains_token(simulator: Simulator, app_credentials: AppCredentials) -> str:
    """A Graph token for the `simulator` fixture's tenant."""
    return graph_token(simulator, app_credentials, DEFAULT_TENANT_ID)
