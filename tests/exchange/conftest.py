"""Fixtures of these client tests: a scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.transport.scripted_server import ScriptedServer


@pytest.fixture
def scripted():
    """A started `ScriptedServer`, stopped after the test."""
    server = ScriptedServer().start()
    yield server
    server.stop()
