"""Commands of the simulator component: ``tenanttls simulator serve`` and ``tenanttls simulator seed-example``."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from tenanttls.domain.names import is_guid
from tenanttls.errors import InvalidInput
from tenanttls.simulator import Simulator
from tenanttls.simulator.example import EXAMPLE_CLIENT_ID, example_seed, new_app_certificate, write_private_key

logger = logging.getLogger(__name__)


def serve(
    data: Path = typer.Option(..., "--data", "-d", help="Folder for the simulator's state, TLS files and keys; created if missing."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Keep loopback: the /_simulator/ API has no authentication."),
    http_port: int = typer.Option(0, "--http-port", help="HTTPS port; 0 picks a free port, printed at start."),
    seed: Optional[Path] = typer.Option(
        None,
        "--seed",
        help="JSON seed file (see docs/simulator.md). On a DATA folder with stored state it only adds missing tenants: "
        "stored tenants, app and settings are kept.",
    ),
    dns_nameserver: Optional[str] = typer.Option(
        None, "--dns-nameserver", help="HOST:PORT of the nameserver that Graph's domain verify queries; default: the system resolver."
    ),
    smtp_port: Optional[int] = typer.Option(
        None,
        "--smtp-port",
        help="Run the SMTP front door, which stands for every tenant's <tenant>.mail.protection.outlook.com, on this port; "
        "0 picks a free port, printed at start. Without this option the front door is off.",
    ),
) -> None:
    """Run the simulated Microsoft 365 over HTTPS and SMTP until SIGINT or SIGTERM.

    HTTPS serves identity, Graph domains and the Exchange admin API. The SMTP front door runs only with --smtp-port.
    Prints the base URL (the authority, Graph and Exchange host in one), the CA certificate that clients must trust
    and, with --smtp-port, the SMTP front door's address.
    """
    simulator = Simulator(data, host=host, http_port=http_port, smtp_port=smtp_port, seed=seed, dns_nameserver=dns_nameserver)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        simulator.start()
        typer.echo(f"simulator listening: {simulator.base_url}")
        typer.echo(f"CA certificate: {simulator.ca_path}")
        typer.echo(f"inspection API: {simulator.base_url}/_simulator/tenants")
        if simulator.services.smtp_address is not None:
            typer.echo(f"SMTP front door: {simulator.services.smtp_address}")
        stop.wait()
    finally:
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("simulator stopped")


def seed_example(
    key_out: Optional[Path] = typer.Option(
        None, "--key-out", help="Write the example app's private key (PEM, mode 0600) here, to get tokens with it."
    ),
    client_id: Optional[str] = typer.Option(None, "--client-id", help="Client id of the example app (a GUID)."),
) -> None:
    """Print an example seed (Contoso and Fabrikam) with a freshly made app certificate."""
    if client_id is not None and not is_guid(client_id.strip().lower()):
        raise InvalidInput(f"invalid --client-id {client_id!r}: expected a GUID such as {EXAMPLE_CLIENT_ID}")

    key_pem, certificate_pem = new_app_certificate()
    seed = example_seed(certificate_pem, (client_id or EXAMPLE_CLIENT_ID).strip().lower())
    if key_out is not None:
        write_private_key(key_out, key_pem)
        typer.echo(f"private key written to {key_out}", err=True)
    else:
        typer.echo("note: the app's private key was not kept; pass --key-out FILE to keep it", err=True)
    typer.echo(json.dumps(seed, indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    simulator = typer.Typer(help="Run the simulated Microsoft 365 that tenanttls is tested against.", no_args_is_help=True)
    simulator.command("serve")(serve)
    simulator.command("seed-example")(seed_example)
    app.add_typer(simulator, name="simulator")
