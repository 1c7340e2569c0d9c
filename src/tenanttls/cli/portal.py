"""Commands of the portal component: ``tenanttls portal``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

logger = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""

    @app.command("portal")
    def portal(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", min=0, max=65535, help="TCP port to listen on; 0 picks a free one."),
        config: Path | None = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML settings file."),
        public_url: str | None = typer.Option(
            None, "--public-url", help="The portal's address as browsers see it (default: the portal_url setting)."
        ),
    ) -> None:
        """Serve the provider portal: Admin Settings > Setup > Connector, the operator view and the JSON API."""
        import uvicorn

        from tenanttls.config import load_settings
        from tenanttls.portal import build_portal
        from tenanttls.portal.app import create_app

        settings = load_settings(config)
        context = build_portal(settings, public_url=public_url or settings.portal_url or f"http://{host}:{port}")
        logger.info("portal starting: host=%s port=%s public_url=%s", host, port, context.config.public_url)
        try:
            # The access log is off: it would write the query strings of the sign-in and consent
            # callbacks, which carry authorization codes. The app logs each request without them.
            uvicorn.run(create_app(context), host=host, port=port, access_log=False, log_level="info", proxy_headers=True)
        finally:
            context.close()
