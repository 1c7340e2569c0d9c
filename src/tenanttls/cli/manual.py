"""Commands of the manual path and the configuration checks: script, manual done, audit, drift.

Exit codes: 0 when clean; 1 when `audit` reports a finding of severity error, when
`drift` finds drift (after `--repair`: drift that remains), or when `manual done`
finds the tenant differs from what the script sets up. Errors derived from
`TenantTlsError` exit with their own code (2 invalid input or unreadable export,
3 unknown tenant, 4 Microsoft 365 failed, 5 rejected by the safety gate, 6 wrong
upgrade state, 7 DNS, 8 certificate, 10 store, 78 configuration). `drift` goes on
after a tenant that fails and exits with the code of the first one that failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tenanttls.cli.output import actor, print_json
from tenanttls.clock import SystemClock
from tenanttls.config import Settings, load_settings
from tenanttls.errors import InvalidInput

# The table is named in words: brackets are markup when typer renders help with rich.
CONFIG_OPTION = typer.Option(
    None, "--config", "-c", help="TOML configuration file with the settings in a table named tenanttls."
)
DATA_OPTION = typer.Option(None, "--data", "-d", help="Data folder; the default store is DATA/tenanttls.db.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of text.")
EXPORT_OPTION = typer.Option(
    None, "--export", "-e", help="An export file (Get-InboundConnector or Get-AcceptedDomain, ConvertTo-Json or Format-List); repeat for several."
)


def _settings(config: Optional[Path], data: Optional[Path]) -> Settings:
    from tenanttls.store.db import set_process_role

    # Every command loads its settings here before it opens a store, so its connections
    # report tenanttls-cli.
    set_process_role("cli")
    return load_settings(config, data_dir=data)




def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("script")(script)
    manual = typer.Typer(help="Record what support did on the manual path.", no_args_is_help=True)
    manual.command("done")(manual_done)
    app.add_typer(manual, name="manual")
    app.command("audit")(audit)
    app.command("drift")(drift)


def script(
    tenant: str = typer.Argument(..., help="Tenant id (GUID)."),
    rollback: bool = typer.Option(False, "--rollback", help="Write the rollback script from the stored snapshot instead; this also switches the relay back to the shared certificate."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the script to this file (UTF-8 with BOM, CRLF) instead of printing it."),
    exports: Optional[list[Path]] = EXPORT_OPTION,
    proof: Optional[str] = typer.Option(None, "--proof", metavar="TEXT", help="The MS= TXT value the provider published (MS=ms and 8 digits), checked by the script."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
) -> None:
    """Write the PowerShell script that upgrades TENANT by hand (or rolls the upgrade back).

    The script uses the ExchangeOnlineManagement and Microsoft Graph PowerShell modules,
    checks before every change, stops at the first error and writes a transcript.
    With --rollback, tenanttls also switches the relay back to the shared certificate
    and moves the tenant to state manual, once the script is written.
    """
    from tenanttls.manual.service import write_rollback_script, write_upgrade_script
    from tenanttls.store.db import open_store

    if rollback and (exports or proof):
        raise InvalidInput("--export and --proof apply to the upgrade script, not to --rollback")
    if output is not None:
        _check_output(output)
    save = _print_script if output is None else lambda text: _write_script(output, text)

    settings = _settings(config, data)
    store = open_store(settings.database)
    clock = SystemClock()
    try:
        if rollback:
            written = write_rollback_script(settings, store, clock, tenant, actor=actor(), save=save)
        else:
            written = write_upgrade_script(
                settings, store, clock, tenant, actor=actor(), exports=exports or (), proof_text=proof, save=save
            )
    finally:
        store.close()

    if output is not None:
        typer.echo(f"wrote {output}", err=True)
    for notice in written.notices:
        typer.echo(notice, err=True)


def _check_output(path: Path) -> None:
    """Raise `InvalidInput` when the script cannot be written to `path`, before anything changes."""
    if path.is_dir():
        raise InvalidInput(f"cannot write the script to {path}: it is a folder; give a file name such as {path / 'upgrade.ps1'}")
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInput(f"cannot write the script to {path}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput(f"cannot write the script to {path}: permission denied; choose another path")


def _write_script(path: Path, text: str) -> None:
    # Windows PowerShell 5.1 reads a script without a byte order mark in the ANSI code page.
    try:
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    except OSError as error:
        raise InvalidInput(f"cannot write the script to {path}: {error.strerror}; choose another path") from error


def _print_script(text: str) -> None:
    typer.echo(text, nl=False)


def manual_done(
    tenant: str = typer.Argument(..., help="Tenant id (GUID)."),
    exports: Optional[list[Path]] = EXPORT_OPTION,
    rolled_back: bool = typer.Option(False, "--rolled-back", help="Support ran the rollback script, not the upgrade script."),
    switch: bool = typer.Option(False, "--switch", help="After the grace period: switch the relay to the unique certificate and complete the upgrade."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record that support ran the script for TENANT, after checking the tenant.

    The tenant is checked from the --export files the script wrote (the connectors
    and the accepted domains), or over the API when no files are given and the
    tenant granted access. Exits with 1 when the tenant does not match what the
    script sets up. A tenant already completed (or, with --rolled-back, already
    rolled back) is left unchanged.
    """
    from tenanttls.manual.done import check_options, record_done
    from tenanttls.store.db import open_store

    check_options(switch=switch, rolled_back=rolled_back)
    settings = _settings(config, data)
    store = open_store(settings.database)
    try:
        result = record_done(
            settings, store, SystemClock(), tenant, actor=actor(), exports=exports or (),
            rolled_back=rolled_back, switch=switch, observe_api=None if exports else _api_observer(settings),
        )
    finally:
        store.close()

    if as_json:
        print_json(result.to_json())
    else:
        typer.echo(f"{result.tenant_id}: {result.message} (state {result.state})")
        for problem in result.problems:
            typer.echo(f"  problem: {problem}")
    if not result.ok:
        raise typer.Exit(1)


def _api_observer(settings: Settings):  # type: ignore[no-untyped-def]
    """Return a callable that reads a tenant over the API with the engine's clients."""

    def observe(tenant_id: str):  # type: ignore[no-untyped-def]
        from tenanttls.clients import build_clients
        from tenanttls.manual.done import Observed

        clients = build_clients(settings, verify=settings.microsoft_ca_bundle or True)
        return Observed(
            clients.exchange.get_inbound_connectors(tenant_id),
            clients.exchange.get_accepted_domains(tenant_id),
            "api",
        )

    return observe


def audit(
    files: list[Path] = typer.Argument(..., help="Export files of one tenant: Get-InboundConnector and Get-AcceptedDomain output."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="The tenant's initial domain (NAME.onmicrosoft.com) every file must belong to; a tenant id (GUID) is rejected because exports do not contain it."),
    date_order: Optional[str] = typer.Option(None, "--date-order", metavar="dmy|mdy", help="How to read a/b/yyyy dates in Format-List text, when the file leaves it open."),
    allow_unknown_fields: bool = typer.Option(False, "--allow-unknown-fields", help="List fields neither cmdlet returns instead of rejecting the file."),
    config: Optional[Path] = CONFIG_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Report on a tenant's inbound connectors and accepted domains from exports.

    Reads 'Get-InboundConnector | ConvertTo-Json -Depth 5', 'Get-AcceptedDomain |
    ConvertTo-Json' and Format-List text. A file must be UTF-8 (with or without a
    byte order mark), or UTF-16 or UTF-32 with a byte order mark; text in an ANSI
    code page is rejected. Each finding has a severity, an explanation and the fix. Exits with 1 when a finding
    is an error, with 2 when a file cannot be read (nothing is reported then).
    """
    from tenanttls.audit import (
        DateOrder,
        ProviderProfile,
        Severity,
        audit_exports,
        read_export_set,
        report_to_json,
        report_to_text,
    )

    order = None
    if date_order is not None:
        orders = {order.value: order for order in DateOrder}
        if date_order not in orders:
            raise InvalidInput(f"invalid --date-order {date_order!r}: use 'dmy' (day first) or 'mdy' (month first)")
        order = orders[date_order]

    settings = load_settings(config)
    tenant_domain = _tenant_domain(tenant) if tenant is not None else None
    exports = read_export_set(files, tenant=tenant_domain, date_order=order, allow_unknown_fields=allow_unknown_fields)
    report = audit_exports(exports, ProviderProfile.from_settings(settings))
    if as_json:
        typer.echo(report_to_json(report))
    else:
        typer.echo(report_to_text(report), nl=False)
    if report.worst is Severity.ERROR:
        raise typer.Exit(1)


def _tenant_domain(value: str) -> str:
    """Return the --tenant value lower-cased, or raise `InvalidInput` unless it is NAME.onmicrosoft.com."""
    from tenanttls.domain.names import is_guid

    text = value.strip().lower()
    if is_guid(text):
        raise InvalidInput(
            f"--tenant {value!r} is a tenant id, but the exports name their tenant only by its initial domain; "
            "use --tenant NAME.onmicrosoft.com"
        )
    if not text.endswith(".onmicrosoft.com") or text == ".onmicrosoft.com":
        raise InvalidInput(f"invalid --tenant {value!r}: expected the tenant's initial domain, NAME.onmicrosoft.com")
    return text


def drift(
    tenant: Optional[str] = typer.Argument(None, help="Tenant id (GUID); with --all, every completed tenant."),
    all_tenants: bool = typer.Option(False, "--all", help="Check every tenant whose upgrade is completed."),
    repair: bool = typer.Option(False, "--repair", help="Re-apply the upgrade's end state through the engine's plan and safety gate."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Compare completed tenants with what the upgrade set up, field by field, and record drift.

    Checks the connector's fields, the accepted domain (present and verified), the
    certificate name and the relay assignment. Each repair is printed as it is applied.
    A tenant that cannot be checked is reported and the others are still checked.
    Exits with 1 when drift is found (with --repair: when drift remains), or with the
    error's code (such as 4 for Microsoft 365) of the first tenant that could not be checked.
    """
    from tenanttls.audit.drift import completed_tenants
    from tenanttls.migration.wiring import build_context

    if tenant and all_tenants:
        raise InvalidInput("give a tenant id or --all, not both")
    if not tenant and not all_tenants:
        raise InvalidInput("give a tenant id, or --all to check every completed tenant")

    context = build_context(_settings(config, data))
    run = _DriftRun(repair=repair, as_json=as_json)
    try:
        targets = completed_tenants(context) if all_tenants else [tenant]
        for target in targets:
            run.check(context, target)
    finally:
        context.close()

    run.finish()
    if run.exit_code:
        raise typer.Exit(run.exit_code)


class _DriftRun:
    """Check tenants one by one, print as it goes, and keep the results for the summary and exit code."""

    def __init__(self, *, repair: bool, as_json: bool) -> None:
        self.repair = repair
        self.as_json = as_json
        self.entries: list[dict[str, Any]] = []
        self.failures: list[int] = []
        self.drifted = 0
        self.remaining = 0
        self.repaired: dict[str, list[str]] = {}

    def check(self, context, tenant_id: str) -> None:  # type: ignore[no-untyped-def]
        """Check one tenant; a `TenantTlsError` is reported for this tenant and the run goes on."""
        from tenanttls.audit.drift import check_tenant
        from tenanttls.errors import TenantTlsError

        try:
            report = check_tenant(
                context, tenant_id, repair=self.repair, actor=actor(), on_drift=self._on_drift, on_repair=self._on_repair
            )
        except TenantTlsError as error:
            self._failed(tenant_id, error)
            return
        self._checked(report)

    def _on_drift(self, tenant_id: str, items) -> None:  # type: ignore[no-untyped-def]
        if self.as_json:
            return
        typer.echo(f"{tenant_id}: drift in {len(items)} field(s)")
        for item in items:
            typer.echo(f"  {item.describe()}")
        sys.stdout.flush()

    def _on_repair(self, tenant_id: str, line: str) -> None:
        self.repaired.setdefault(tenant_id, []).append(line)
        # In JSON mode the document is printed at the end, so progress goes to stderr meanwhile.
        typer.echo(f"{tenant_id}: repaired: {line}" if self.as_json else f"  repaired: {line}", err=self.as_json)
        sys.stdout.flush()

    def _checked(self, report) -> None:  # type: ignore[no-untyped-def]
        self.entries.append(report.to_json())
        self.drifted += report.drifted
        left = report.remaining if self.repair else report.items
        self.remaining += bool(left)
        if self.as_json:
            return
        if not report.drifted:
            typer.echo(f"{report.tenant_id}: no drift")
        elif self.repair:
            for item in report.remaining:
                typer.echo(f"  remaining: {item.describe()}")
            if not report.remaining:
                typer.echo("  nothing remains")

    def _failed(self, tenant_id: str, error) -> None:  # type: ignore[no-untyped-def]
        self.failures.append(error.exit_code)
        repaired = self.repaired.get(tenant_id, [])
        self.entries.append({"tenant_id": tenant_id, "error": str(error), "exit_code": error.exit_code, "repaired": repaired})
        if not self.as_json:
            typer.echo(f"{tenant_id}: error: {error}", err=True)
            if repaired:
                typer.echo(f"  {len(repaired)} change(s) were applied before the error (listed above)", err=True)

    def finish(self) -> None:
        """Print the JSON document, or the summary line."""
        if self.as_json:
            print_json(self.entries)
            return
        if not self.entries:
            typer.echo("no completed tenant to check")
            return
        checked = len(self.entries)
        parts = [f"{checked - len(self.failures) - self.drifted} without drift", f"{self.drifted} with drift"]
        if self.repair:
            parts.append(f"{self.remaining} with drift remaining after the repair")
        parts.append(f"{len(self.failures)} could not be checked")
        typer.echo(f"checked {checked} tenant(s): " + ", ".join(parts))
        sys.stdout.flush()

    @property
    def exit_code(self) -> int:
        """The first failed tenant's error code, else 1 for drift (remaining after --repair), else 0."""
        if self.failures:
            return self.failures[0]
        return 1 if self.remaining else 0
