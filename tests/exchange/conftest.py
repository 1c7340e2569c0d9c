"""Fixtures of these client tests: a scripted HTTPS server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.transport.scripted_server import ScriptedServer


@pytest.fixture
def scripted(tmp_path):
    """A started `ScriptedServer` speaking HTTPS (its CA is `scripted.ca_path`), stopped after the test."""
    server = ScriptedServer(tls_dir=tmp_path / "tls").start()
    yield server
    server.stop()
