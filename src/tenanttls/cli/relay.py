"""Commands of the relay: ``tenanttls relay`` runs it, ``tenanttls relay-queue`` shows its queue.

The relay reads its settings from the configuration (``relay_*``, ``legacy_*``),
overridden by the options here; see `tenanttls.relay.settings.relay_settings_from`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from tenanttls.config import load_settings
from tenanttls.errors import ConfigurationError

logger = logging.getLogger(__name__)

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="TOML configuration file; the settings go in its tenanttls table.")
DATA_OPTION = typer.Option(None, "--data", "-d", help="Data folder; the default store is DATA/tenanttls.db and the queue DATA/relay-queue.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("relay")(relay)
    app.command("relay-queue")(relay_queue)


def relay(
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    listen: Optional[str] = typer.Option(None, "--listen", help="host:port to accept mail on (port 0: the system chooses)."),
    smart_host: Optional[str] = typer.Option(None, "--smart-host", help="host:port that receives every tenant's mail, such as the simulator."),
    smart_host_ca: Optional[Path] = typer.Option(None, "--smart-host-ca", help="CA bundle (PEM) that verifies smart hosts."),
    queue_dir: Optional[Path] = typer.Option(None, "--queue-dir", help="Queue folder."),
    tls_certificate: Optional[Path] = typer.Option(None, "--tls-certificate", help="Server certificate (PEM) offered with STARTTLS."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="Private key (PEM) of the server certificate."),
    legacy_certificate: Optional[Path] = typer.Option(None, "--legacy-certificate", help="Chain (PEM) of the shared client certificate."),
    legacy_key: Optional[Path] = typer.Option(None, "--legacy-key", help="Private key (PEM) of the shared client certificate."),
    no_reuse: bool = typer.Option(False, "--no-reuse", help="Open a new connection for every delivery."),
    retry: Optional[str] = typer.Option(None, "--retry", help="Retry delays in seconds, comma-separated, such as 60,300,900; the last repeats."),
    port_file: Optional[Path] = typer.Option(None, "--port-file", help="Write the listening port to this file once the relay listens."),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics at /metrics on this port (0 picks a free one); off when not given."
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address the metrics port listens on."),
) -> None:
    """Run the relay until SIGTERM or Ctrl-C: receive tenants' mail, queue it, deliver it with the tenant's certificate."""
    from tenanttls.relay.settings import relay_settings_from

    overrides = {
        "relay_listen": listen,
        "relay_smart_host": smart_host,
        "relay_smart_host_ca": smart_host_ca,
        "relay_queue_dir": queue_dir,
        "relay_tls_certificate": tls_certificate,
        "relay_tls_key": tls_key,
        "legacy_certificate": legacy_certificate,
        "legacy_key": legacy_key,
    }
    settings = load_settings(config, data_dir=data, **{key: str(value) for key, value in overrides.items() if value is not None})
    extra = {"reuse_connections": False} if no_reuse else {}
    if _store_notifies(settings):
        # The listener drops a switched tenant's cached assignment at once, so the cache
        # can live longer; expiry stays the fallback while the listener reconnects.
        extra["assignment_max_age"] = LISTENING_ASSIGNMENT_MAX_AGE
    if retry:
        extra["retry_schedule"] = _retry_schedule(retry)
    relay_settings = relay_settings_from(settings, **extra)
    asyncio.run(_run_relay(settings, relay_settings, port_file, metrics=(metrics_port, metrics_host)))


# NOTE: estimate. Bounds how stale a cached assignment can get if notifications stop arriving.
LISTENING_ASSIGNMENT_MAX_AGE = 30.0


def _store_notifies(settings) -> bool:
    """Return True when the store is PostgreSQL, which notifies relays of assignment changes."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(settings.database).get_backend_name() == "postgresql"
    except (ArgumentError, ValueError):
        return False  # open_store reports the invalid URL, such as a port that is not a number


def _retry_schedule(text: str) -> tuple[float, ...]:
    """Parse ``--retry``: delays in seconds, comma-separated, each a finite number above 0."""
    from tenanttls.errors import InvalidInput

    usage = "give delays in seconds separated by commas, each more than 0, such as 60,300,900"
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise InvalidInput(f"invalid --retry {text!r}: {usage}") from error

    if not delays or not all(math.isfinite(delay) and delay > 0 for delay in delays):
        raise InvalidInput(f"invalid --retry {text!r}: {usage}")
    return delays


async def _run_relay(settings, relay_settings, port_file: Optional[Path], metrics: tuple = (None, "127.0.0.1")) -> None:
    from tenanttls.relay.notifications import AssignmentListener, listens
    from tenanttls.relay.server import Relay
    from tenanttls.relay.wiring import key_pairs_from
    from tenanttls.store.db import open_store, set_process_role

    set_process_role("relay")
    store = open_store(settings.database)
    relay = Relay(relay_settings, engine=store.engine, key_pairs=key_pairs_from(settings, store.engine))
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)

    await relay.start()
    stop_metrics = None
    if metrics[0] is not None:
        from tenanttls.cli.metrics import start_metrics
        from tenanttls.metrics import RelayCollector

        stop_metrics = start_metrics("relay", metrics[0], metrics[1], [RelayCollector(relay.queue)])
    listener = None
    if listens(store.engine):
        listener = AssignmentListener(store.engine, relay.assignments).start()
    try:
        if relay.recovery is not None and relay.recovery.possible_duplicates:
            typer.echo(f"relay: {len(relay.recovery.possible_duplicates)} messages were being delivered at the last stop; "
                       "they are delivered again and listed as possible-duplicate in the outcomes", err=True)
        if port_file is not None:
            port_file.write_text(f"{relay.port}\n")
        typer.echo(f"relay listening on {relay_settings.listen_host}:{relay.port}, queue {relay_settings.queue_dir}", err=True)
        await stopped.wait()
    finally:
        await relay.stop()
        if listener is not None:
            listener.stop()
        if stop_metrics is not None:
            stop_metrics()
        store.close()


def _queue_dir_source(queue_dir: Optional[Path], settings) -> str:
    """Name the option or setting that chose the queue folder, for error messages."""
    if queue_dir is not None:
        return "--queue-dir"
    if settings.relay_queue_dir:
        return "the relay_queue_dir setting"
    return "--data"


def relay_queue(
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    queue_dir: Optional[Path] = typer.Option(None, "--queue-dir", help="Queue folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show the queued messages and the count of each delivery outcome, with the reported ones listed."""
    from tenanttls.relay.queue import MessageQueue
    from tenanttls.relay.settings import queue_dir_from

    settings = load_settings(config, data_dir=data, **({"relay_queue_dir": str(queue_dir)} if queue_dir else {}))
    folder = queue_dir_from(settings)
    if not folder.is_dir():
        raise ConfigurationError(
            f"queue folder not found: {folder}; check {_queue_dir_source(queue_dir, settings)} "
            "(the relay creates the folder when it first starts)"
        )
    queue = MessageQueue(folder, create=False)
    queued = queue.snapshot()
    outcomes = queue.outcomes()
    reported = [line for line in outcomes if line["outcome"] in ("dropped", "possible-duplicate")]
    counts = Counter(line["outcome"] for line in outcomes)

    if as_json:
        typer.echo(json.dumps({
            "queued": [message.to_json() for message in queued],
            "outcomes": dict(counts),
            "reported": reported,
        }, indent=2))
        return

    typer.echo(f"queued: {len(queued)}")
    for message in queued:
        pending = ", ".join(r.address for r in message.pending)
        typer.echo(f"  {message.id} tenant={message.tenant_id} attempts={message.attempts} "
                   f"next={message.next_attempt_at:%Y-%m-%d %H:%M:%S} to={pending} last={message.last_reply or '-'}")
    typer.echo("outcomes: " + (", ".join(f"{name}={count}" for name, count in sorted(counts.items())) or "none"))
    for line in reported:
        typer.echo(f"  {line['outcome']}: tenant={line['tenant_id']} message_id={line['message_id']} "
                   f"to={line['recipient']} reply={line['reply']}")
