"""The `tenanttls` command line: a thin layer that parses input and calls service functions.

Each component adds its commands in its own module through `register(app)`.
Errors derived from `TenantTlsError` are printed as one line and exit with the
error's `exit_code`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from tenanttls import __version__
from tenanttls.cli import engine, identity, manual, portal, relay, simulator
from tenanttls.errors import TenantTlsError

app = typer.Typer(
    name="tenanttls",
    help=(
        "Move Microsoft 365 tenants from a shared TLS certificate name to a unique, per-tenant "
        "certificate name and accepted domain, with no mail-flow downtime.\n\n"
        "Start with 'tenanttls demo' to run a whole fleet upgrade against the built-in simulator."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would swallow '[tenanttls]' and print types as '<bool>'.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tenanttls {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Log more: -v for INFO, -vv for DEBUG."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Configure logging for every command."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for module in (simulator, engine, identity, relay, portal, manual):
    module.register(app)


def main() -> None:
    """Run the CLI, turning a `TenantTlsError` into a one-line message and its exit code."""
    try:
        app()
    except TenantTlsError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
