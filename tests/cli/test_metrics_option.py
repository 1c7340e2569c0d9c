from __future__ import annotations

import socket

import pytest

from tenanttls.cli.metrics import start_metrics
from tenanttls.errors import ConfigurationError


def test_metrics_bad_host_names_host():
    with pytest.raises(ConfigurationError) as error:
        start_metrics("worker", 0, "999.1.1.1", [])

    assert "999.1.1.1" in str(error.value)
    assert "--metrics-host" in str(error.value)


def test_metrics_port_in_use_names_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(ConfigurationError) as error:
            start_metrics("worker", port, "127.0.0.1", [])

    assert "--metrics-port" in str(error.value)
