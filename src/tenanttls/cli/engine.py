"""Commands of the upgrade engine: init, tenants, plan, upgrade, status, rollback, worker, history, demo.

Each command parses its options, calls `tenanttls.migration.service` (or the
worker, or the demo) and prints text, or JSON with ``--json``. Errors derived from
`TenantTlsError` exit with the error's code (see `tenanttls.errors` and the table
in docs/engine.md): 1 other errors, 2 invalid input, 3 unknown tenant, 4 Microsoft 365
call failed (such as no consent), 5 rejected by the safety gate, 6 wrong upgrade state,
7 DNS, 8 certificate, 9 relay, 10 store, 78 configuration.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from tenanttls import __version__
from tenanttls.cli.output import actor, print_json
from tenanttls.clock import SystemClock
from tenanttls.config import Settings, load_settings
from tenanttls.errors import InvalidInput
from tenanttls.migration.safety import Overrides
from tenanttls.migration.states import UpgradeState, progress
from tenanttls.store.db import open_store, safe_url, set_process_role

logger = logging.getLogger(__name__)

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="TOML configuration file (table [tenanttls]).", exists=False)
DATA_OPTION = typer.Option(None, "--data", "-d", help="Data folder; the default store is DATA/tenanttls.db.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of text.")


def _settings(config: Optional[Path], data: Optional[Path]) -> Settings:
    # Every command but the worker loads its settings here before it opens a store,
    # so its connections report tenanttls-cli.
    set_process_role("cli")
    return load_settings(config, data_dir=data)


def _duration_with_unit(value: Optional[str]) -> Optional[str]:
    """Return `value` unchanged, or raise `InvalidInput` for a bare number other than 0.

    The settings file reads a bare number as seconds, but on the command line
    ``--grace 24`` is more likely meant as hours, so the CLI requires a unit.
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text) and float(text) != 0:
        raise InvalidInput(f"invalid duration '{text}': add a unit, such as {text}h or 90m")
    return value




def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("init")(init)
    tenants = typer.Typer(help="Add and list the customer tenants.", no_args_is_help=True)
    tenants.command("import")(tenants_import)
    tenants.command("list")(tenants_list)
    app.add_typer(tenants, name="tenants")
    app.command("plan")(plan)
    app.command("upgrade")(upgrade)
    app.command("status")(status)
    app.command("rollback")(rollback)
    app.command("worker")(worker)
    app.command("history")(history)
    app.command("demo")(demo)


def init(config: Optional[Path] = CONFIG_OPTION, data: Optional[Path] = DATA_OPTION) -> None:
    """Create the data folder and the store, or migrate an existing store to this version's schema."""
    settings = _settings(config, data)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.database, create=True)
    store.close()
    typer.echo(f"store ready at schema revision {store.revision}: {safe_url(settings.database)}")


def tenants_import(
    file: Path = typer.Argument(..., help="CSV (header tenant_id,initial_domain,display_name) or JSON array of objects."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add or update tenants from a file. The whole file is checked first; a bad line changes nothing."""
    from tenanttls.migration.service import import_tenants

    settings = _settings(config, data)
    store = open_store(settings.database)
    summary = import_tenants(
        store, file, legacy_certificate_name=settings.legacy_certificate_name, now=SystemClock().now(), actor=actor()
    )
    if as_json:
        print_json(summary.to_json())
    else:
        typer.echo(f"imported {file}: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged")


def tenants_list(
    config: Optional[Path] = CONFIG_OPTION, data: Optional[Path] = DATA_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List the tenants with their upgrade state."""
    from tenanttls.migration.service import fleet_status

    statuses = fleet_status(open_store(_settings(config, data).database))
    if as_json:
        print_json([{"tenant_id": s.tenant.tenant_id, "initial_domain": s.tenant.initial_domain,
                      "display_name": s.tenant.display_name, "state": s.upgrade.state} for s in statuses])
        return
    typer.echo(f"{'tenant':<36}  {'initial domain':<40} {'state':<16} display name")
    for item in statuses:
        typer.echo(f"{item.tenant.tenant_id:<36}  {item.tenant.initial_domain:<40} {item.upgrade.state:<16} {item.tenant.display_name}")


def _override_options(
    force_backup_overwrite: bool, allow_foreign_connector: bool, adopt_connector: bool,
    legacy_connector: Optional[str], allow_disabled_connector: bool,
) -> Overrides:
    return Overrides(
        force_backup_overwrite=force_backup_overwrite,
        allow_foreign_connector=allow_foreign_connector,
        adopt_connector=adopt_connector,
        legacy_connector=legacy_connector,
        allow_disabled_connector=allow_disabled_connector,
    )


FORCE_BACKUP = typer.Option(False, "--force-backup-overwrite", help="Replace an existing <Name>-BACKUP connector whose settings differ (a copy is stored first).")
ALLOW_FOREIGN = typer.Option(False, "--allow-foreign-connector", help="Go on although a connector tenanttls did not create already names the unique certificate.")
ADOPT = typer.Option(False, "--adopt-connector", help="Take over a connector tenanttls did not create that has the new connector's name.")
LEGACY = typer.Option(None, "--legacy-connector", metavar="NAME", help="The connector to keep as the backup when several look like the legacy one.")
ALLOW_DISABLED = typer.Option(False, "--allow-disabled-connector", help="Keep waiting for Microsoft support to enable a connector that Exchange created disabled.")


def plan(
    tenant: str = typer.Argument(..., help="Tenant id (GUID)."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
    force_backup_overwrite: bool = FORCE_BACKUP,
    allow_foreign_connector: bool = ALLOW_FOREIGN,
    adopt_connector: bool = ADOPT,
    legacy_connector: Optional[str] = LEGACY,
    allow_disabled_connector: bool = ALLOW_DISABLED,
) -> None:
    """Show what the upgrade would change in the tenant, field by field, without changing anything.

    Exits with 5 when the safety gate rejects the plan.
    """
    from tenanttls.migration.observe import plan_for
    from tenanttls.migration.wiring import build_context

    settings = _settings(config, data)
    overrides = _override_options(force_backup_overwrite, allow_foreign_connector, adopt_connector, legacy_connector, allow_disabled_connector)
    context = build_context(settings)
    try:
        result = plan_for(context, tenant, overrides)
    finally:
        context.close()

    if as_json:
        print_json(result.to_json())
    else:
        typer.echo(f"plan for tenant {result.tenant_id}:")
        for line in result.describe():
            typer.echo(f"  {line}")
    if not result.is_safe:
        raise typer.Exit(5)


def upgrade(
    tenants: Optional[list[str]] = typer.Argument(None, help="Tenant ids (GUIDs) to upgrade."),
    all_tenants: bool = typer.Option(False, "--all", help="Upgrade every tenant not yet completed, except rolled-back ones (name those)."),
    wave: Optional[int] = typer.Option(None, "--wave", min=1, metavar="SIZE", help="Start at most SIZE new upgrades (with --all or a list)."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
    force_backup_overwrite: bool = FORCE_BACKUP,
    allow_foreign_connector: bool = ALLOW_FOREIGN,
    adopt_connector: bool = ADOPT,
    legacy_connector: Optional[str] = LEGACY,
    allow_disabled_connector: bool = ALLOW_DISABLED,
) -> None:
    """Request the upgrade of tenants; a running 'tenanttls worker' carries it out.

    A completed tenant is left alone, with a message saying so. A tenant in needs_attention
    resumes where it stopped, with the given override flags stored for it.
    """
    from tenanttls.migration.service import request_upgrades

    if bool(tenants) == all_tenants:
        raise InvalidInput("give tenant ids or --all, not both and not neither")
    settings = _settings(config, data)
    overrides = _override_options(force_backup_overwrite, allow_foreign_connector, adopt_connector, legacy_connector, allow_disabled_connector)
    results = request_upgrades(
        open_store(settings.database), None if all_tenants else tenants, wave=wave, overrides=overrides,
        now=SystemClock().now(), actor=actor(),
    )
    handled = [result for result in results if result.outcome != "deferred"]
    deferred = [result.tenant_id for result in results if result.outcome == "deferred"]
    if as_json:
        print_json({"tenants": [result.to_json() for result in handled], "deferred": deferred})
        return
    for result in handled:
        # Some messages already name the state ("resumes in state backup"); say it once.
        state = "" if f"state {result.state}" in result.message else f" (state {result.state})"
        typer.echo(f"{result.tenant_id}: {result.message}{state}")
    if deferred:
        typer.echo(f"left for a later wave: {', '.join(deferred)} (run upgrade again)")
    if not results:
        typer.echo("no tenant to upgrade")


def status(
    tenants: Optional[list[str]] = typer.Argument(None, help="Tenant ids; all tenants when omitted."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the upgrade progress of tenants and a summary per state for the fleet."""
    from tenanttls.migration.service import fleet_status

    statuses = fleet_status(open_store(_settings(config, data).database), tenants or None)
    counts: dict[str, int] = {}
    for item in statuses:
        counts[item.upgrade.state] = counts.get(item.upgrade.state, 0) + 1

    if as_json:
        print_json({"tenants": [item.to_json() for item in statuses], "states": counts})
        return

    typer.echo(f"{'tenant':<36}  {'initial domain':<32} {'state':<16} {'step':<16} {'next attempt (UTC)':<20} detail")
    for item in statuses:
        upgrade = item.upgrade
        state = UpgradeState(upgrade.state)
        typer.echo(
            f"{item.tenant.tenant_id:<36}  {item.tenant.initial_domain:<32} {state.value:<16} {_step_text(upgrade, state):<16} "
            f"{_utc(upgrade.next_attempt_at):<20} {_detail_text(upgrade, state)}"
        )
    # With tenant ids given, the summary counts those tenants only, so its label names them, not the fleet.
    label = "fleet" if not tenants else f"{len(statuses)} tenant(s) shown"
    typer.echo(f"{label}: " + ", ".join(f"{state} {count}" for state, count in sorted(counts.items())) if counts else "no tenants")


def _utc(value) -> str:
    """Return a stored UTC time as text, or "-" when there is none."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _step_text(upgrade, state: UpgradeState) -> str:
    """Return the step column: "n/9", or the state a stopped tenant resumes in."""
    if not upgrade.requested and state is UpgradeState.AWAITING_CONSENT:
        return "-"
    if state in (UpgradeState.NEEDS_ATTENTION, UpgradeState.ROLLED_BACK):
        return f"at {upgrade.resume_state}" if upgrade.resume_state else "-"
    return f"{progress(state)}/9"


def _detail_text(upgrade, state: UpgradeState) -> str:
    if not upgrade.requested and state is UpgradeState.AWAITING_CONSENT:
        return "upgrade not requested"
    if upgrade.last_error and upgrade.stop_kind:
        return f"[{upgrade.stop_kind}] {upgrade.last_error}"
    if upgrade.last_error:
        return upgrade.last_error
    if state is UpgradeState.GRACE and upgrade.grace_until:
        return f"grace until {_utc(upgrade.grace_until)} UTC"
    if upgrade.wait_reason:
        return f"waiting: {upgrade.wait_reason}"
    return ""


def rollback(
    tenant: str = typer.Argument(..., help="Tenant id (GUID)."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
    wait: bool = typer.Option(True, "--run/--no-run", help="Run the rollback now in this process (default), or leave it to the worker."),
) -> None:
    """Restore the tenant's original connector and switch the relay back to the shared certificate.

    Works from any state. Exits with 6 for a tenant that was never upgraded.
    """
    from tenanttls.errors import UpgradeStateError
    from tenanttls.migration.context import default_owner
    from tenanttls.migration.service import request_rollback, run_now
    from tenanttls.migration.wiring import build_context

    settings = _settings(config, data)
    result = request_rollback(open_store(settings.database), tenant, now=SystemClock().now(), actor=actor())
    reports = []
    message = result.message
    if wait and result.outcome == "requested":
        context = build_context(settings)
        try:
            reports = run_now(context, result.tenant_id, default_owner())
        except UpgradeStateError as error:
            message += f"; {error}"
        finally:
            context.close()
    final = reports[-1].state_after.value if reports else result.state
    detail = reports[-1].detail if reports else ""

    if as_json:
        print_json({**result.to_json(), "final_state": final, "detail": detail})
    else:
        # A skipped step only reports "terminal state", which the state itself already says.
        shown = f" {detail}." if detail and reports[-1].kind != "skip" else ""
        typer.echo(f"{result.tenant_id}: {message}. The tenant is now in state {final}.{shown}")
    if final == UpgradeState.NEEDS_ATTENTION.value:
        raise typer.Exit(6)


def worker(
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    concurrency: int = typer.Option(4, "--concurrency", "-n", min=1, help="Tenants processed at once."),
    poll: float = typer.Option(1.0, "--poll", min=0.05, help="Seconds between looks for due tenants when idle."),
    exit_when_idle: bool = typer.Option(False, "--exit-when-idle", help="Exit when no requested tenant is due or waiting (for scripts)."),
    grace: Optional[str] = typer.Option(None, "--grace", help="Grace period before the switch, such as 24h or 5s (overrides the setting)."),
    drift_interval: Optional[str] = typer.Option(
        None, "--drift-interval", help="How often each completed tenant is checked for drift, such as 6h; 0 turns the check off in this worker (overrides the setting)."
    ),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", min=0, max=65535, help="Serve Prometheus metrics at /metrics on this port (0 picks a free one); off when not given."
    ),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address the metrics port listens on."),
) -> None:
    """Run upgrades: claim due tenants with leases and run their steps until SIGTERM or Ctrl-C.

    Several workers may share one PostgreSQL store; a crashed worker's tenants are
    taken over when its leases expire. Logs every step with the tenant id (use -v).
    The workers sharing a store also check each completed tenant for drift once per
    drift interval (6h by default), each tenant by one of them, and record what they
    find in its audit trail without repairing it.
    """
    from tenanttls.migration.wiring import build_context
    from tenanttls.migration.worker import Worker

    grace, drift_interval = _duration_with_unit(grace), _duration_with_unit(drift_interval)
    settings = load_settings(config, data_dir=data, grace=grace, drift_interval=drift_interval)
    set_process_role("worker")
    context = build_context(settings)
    runner = Worker(context, concurrency=concurrency, poll_interval=poll, periodic=_periodic_tasks(context, settings))
    if metrics_port is not None:
        from tenanttls.cli.metrics import start_metrics
        from tenanttls.metrics import TenantStateCollector

        context.closers.append(start_metrics("worker", metrics_port, metrics_host, [TenantStateCollector(context.store)]))

    def _stop(signum, _frame) -> None:
        logger.warning("worker stopping: signal=%s; running steps finish first", signal.Signals(signum).name)
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    until = (lambda: _nothing_scheduled(context)) if exit_when_idle else None
    try:
        stats = runner.run(until=until)
    finally:
        context.close()
    typer.echo(f"worker stopped: {stats.steps} steps, {stats.advances} state changes, {stats.retries} retries, {stats.stops} stopped for attention", err=True)


def _periodic_tasks(context, settings: Settings) -> tuple:
    """Return the worker's scheduled jobs: the drift check, unless its interval is 0."""
    from tenanttls.audit.drift import DRIFT_POLL_SECONDS, check_completed_tenants
    from tenanttls.migration.worker import PeriodicTask

    interval = settings.drift_interval
    if interval.total_seconds() <= 0:
        return ()
    # Each worker looks for due tenants often, and the claims in the store let only one of
    # them check a tenant per interval, so the checks spread over the workers.
    period = min(interval.total_seconds(), DRIFT_POLL_SECONDS)
    return (PeriodicTask("drift", period, lambda stop: check_completed_tenants(context, interval=interval, stop=stop)),)


def _nothing_scheduled(context) -> bool:
    from tenanttls.store.upgrades import next_due_at

    with context.store.engine.connect() as connection:
        return next_due_at(connection) is None


def history(
    tenant: str = typer.Argument(..., help="Tenant id (GUID)."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the tenant's audit trail: who changed what, before and after, when, under which run id."""
    from tenanttls.migration.service import history as read_history

    events = read_history(open_store(_settings(config, data).database), tenant)
    if as_json:
        print_json([{"at": event.at.isoformat(), "actor": event.actor, "action": event.action, "step": event.step,
                      "before": event.before, "after": event.after, "correlation_id": event.correlation_id,
                      "detail": event.detail} for event in events])
        return
    for event in events:
        change = ""
        if event.before is not None or event.after is not None:
            change = f" {json.dumps(event.before, default=str)} → {json.dumps(event.after, default=str)}"
        detail = f" ({event.detail})" if event.detail else ""
        typer.echo(f"{event.at:%Y-%m-%d %H:%M:%S}Z {event.actor} {event.action}{' [' + event.step + ']' if event.step else ''}{change}{detail}")


def demo(
    ctx: typer.Context,
    tenants: int = typer.Option(25, "--tenants", "-n", min=1, max=5000, help="Number of simulated tenants."),
    grace: str = typer.Option("5s", "--grace", help="Grace period before each switch, such as 5s or 24h."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data folder to create (must not exist or be empty); default: a new temporary folder."),
    as_json: bool = JSON_OPTION,
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Tenants the worker processes at once."),
    seed: int = typer.Option(1, "--seed", help="Seed for the generated tenants."),
) -> None:
    """Run the whole upgrade against the built-in simulator, with nothing to configure.

    Creates a fresh data folder, starts the simulated Microsoft 365 with N tenants
    (plus awkward ones: a foreign connector, one that never consents, one with a
    pre-existing CrosswareInboundConnector-BACKUP), consents for them and runs the
    worker with a short grace period.

    While the fleet upgrades, a relay in front of the simulator's SMTP front door
    carries a steady stream of mail for every tenant: normal and null-sender
    messages, each to a recipient inside the tenant and one outside. Progress goes
    to stderr. The report ends with the mail table: per upgrade state, the messages
    sent, accepted, deferred, rejected, lost and pending.

    Exits 0 only when every consenting tenant completed, nothing timed out and no
    message broke the mail-flow expectation (null-sender mail to outside recipients
    is rejected only before a tenant's switch, and nothing is lost).
    """
    from tenanttls.domain.durations import parse_duration
    from tenanttls.migration.demo import DemoOptions, run_demo

    verbose = bool(ctx.parent and ctx.parent.params.get("verbose"))
    report = run_demo(DemoOptions(tenants=tenants, grace=parse_duration(_duration_with_unit(grace)), data_dir=data,
                                  concurrency=concurrency, seed=seed, version=__version__, log_to_stderr=verbose))
    if as_json:
        print_json(report.to_json())
    else:
        for line in report.lines():
            typer.echo(line)
    if not report.success:
        sys.exit(1)
