"""Commands of the portal component: ``tenanttls portal``."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import typer

logger = logging.getLogger(__name__)


def _listen(host: str, port: int) -> socket.socket:
    """Return a socket bound to `host` and `port` (0: a free port), ready for uvicorn.

    The portal binds before it starts so that, with port 0, the public URL and the redirect
    URIs built from it name the real port. Accepted connections inherit TCP_NODELAY, which
    uvicorn does not set on a socket it is given; without it, small responses wait for the
    client's delayed ACK.
    """
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, protocol)
    if port:
        # Only for a fixed port: with port 0, Linux may hand two SO_REUSEADDR sockets the same port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        from tenanttls.errors import ConfigurationError

        raise ConfigurationError(f"cannot listen on {host} port {port}: {error.strerror}; choose another --port") from error
    return sock


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("portal")
    def portal(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", min=0, max=65535, help="TCP port to listen on; 0 picks a free one."),
        config: Path | None = typer.Option(
            None, "--config", "-c", exists=True, dir_okay=False, help="TOML settings file (default: DATA/tenanttls.toml when it exists)."
        ),
        data: Path | None = typer.Option(None, "--data", "-d", help="Data folder; the default store is DATA/tenanttls.db."),
        public_url: str | None = typer.Option(
            None, "--public-url", help="The portal's address as browsers see it (default: the portal_url setting, else http://HOST:PORT)."
        ),
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics at /metrics on this port (0 picks a free one); off when not given."
        ),
        metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address the metrics port listens on."),
    ) -> None:
        """Serve the provider portal: Admin Settings > Setup > Connector, the operator view and the JSON API."""
        import uvicorn

        from tenanttls.config import load_settings
        from tenanttls.portal import build_portal
        from tenanttls.portal.app import create_app
        from tenanttls.store.db import set_process_role

        settings = load_settings(config, data_dir=data)
        set_process_role("portal")
        sock = _listen(host, port)
        bound = sock.getsockname()[1]
        listen_url = f"http://{host}:{bound}" if ":" not in host else f"http://[{host}]:{bound}"
        context = build_portal(settings, public_url=public_url or settings.portal_url or listen_url)
        typer.echo(f"portal: listening on {listen_url}, public URL {context.config.public_url}", err=True)
        if metrics_port is not None:
            from tenanttls.cli.metrics import start_metrics
            from tenanttls.metrics import TenantStateCollector

            context.closers.append(start_metrics("portal", metrics_port, metrics_host, [TenantStateCollector(context.services.store)]))
        try:
            # The access log is off: it would write the query strings of the sign-in and consent
            # callbacks, which carry authorization codes. The app logs each request without them.
            server = uvicorn.Server(uvicorn.Config(create_app(context), access_log=False, log_level="info", proxy_headers=True))
            server.run(sockets=[sock])
        finally:
            context.close()
            sock.close()
