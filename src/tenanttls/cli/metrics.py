"""The ``--metrics-port`` option shared by ``tenanttls worker``, ``relay`` and ``portal``."""

from __future__ import annotations

import errno
from typing import Callable, Iterable

import typer

from tenanttls.errors import ConfigurationError


def start_metrics(component: str, port: int, host: str, collectors: Iterable) -> Callable[[], None]:
    """Serve the component's Prometheus metrics at ``/metrics``, print the address and return the stop function.

    Raises `ConfigurationError` when the port cannot be opened.
    """
    from tenanttls.metrics import serve_metrics

    try:
        server = serve_metrics(port, host, collectors)
    except OSError as error:
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {error.strerror or error}; {_metrics_fix(error)}"
        ) from error
    typer.echo(f"{component}: metrics at http://{host}:{server.port}/metrics", err=True)
    return server.stop


def _metrics_fix(error: OSError) -> str:
    """Return the option to change: the port when it is taken, otherwise the host."""
    if error.errno in (errno.EADDRINUSE, errno.EACCES):
        return "choose another --metrics-port"
    return "check --metrics-host (an address of this machine, such as 127.0.0.1)"
