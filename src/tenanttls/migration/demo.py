"""``tenanttls demo``: the whole fleet upgrade on the embedded defaults, on 127.0.0.1 only.

Steps, in order:

1. create a fresh data folder with app credentials, a key-encryption key and the store;
2. start the built-in DNS server (the simulator verifies domains against it);
3. start the simulator, seeded with the generated fleet (`tenanttls.migration.fleet`);
4. import the tenants, consent for all but the one that never consents, request every upgrade;
5. run the worker with a short grace period, printing progress to stderr;
6. when the safety gate stops the tenant with a leftover -BACKUP connector, request its
   upgrade again with ``--force-backup-overwrite``, as an operator would;
7. report each tenant (final state, API calls, time in each state) and the fleet.

The demo succeeds when every consenting tenant completed.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, TextIO

import httpx

from tenanttls.clock import OffsetClock
from tenanttls.config import Settings
from tenanttls.domain.durations import format_duration
from tenanttls.errors import ConfigurationError
from tenanttls.migration import fleet as fleet_module
from tenanttls.migration.context import EngineContext, EngineOptions
from tenanttls.migration.credentials import write_app_credentials, write_key_encryption_key
from tenanttls.migration.prober import AllProbers, ConsistencyProber
from tenanttls.migration.report import FleetReport, fleet_report
from tenanttls.migration.smtp_probe import SmtpProber
from tenanttls.migration.safety import Overrides
from tenanttls.migration.service import add_tenant, request_upgrades
from tenanttls.migration.states import TERMINAL, UpgradeState
from tenanttls.migration.worker import Worker
from tenanttls.store.db import open_store
from tenanttls.store.upgrades import list_upgrades

logger = logging.getLogger(__name__)

ACTOR = "demo"


@dataclass(frozen=True)
class DemoOptions:
    """The demo's parameters: fleet size, grace period, data folder and tenants run at once."""

    tenants: int = 25
    grace: timedelta = timedelta(seconds=5)
    data_dir: Path | None = None
    concurrency: int = 8
    seed: int = 1
    version: str = "0"
    # Longest simulated delay before Exchange lists a new accepted domain (a random share per tenant).
    accepted_domain_seconds: float = 2.0
    # The demo gives up after this long; the exit status then reports failure.
    timeout: timedelta = timedelta(minutes=10)
    progress: TextIO | None = field(default=None, repr=False)
    # Keep warnings on stderr (True), or send all logs to DATA/demo.log only (False).
    log_to_stderr: bool = False
    # The clients' rate budget. The simulator runs on this host, so the demo allows more
    # than the production defaults, which are sized for Microsoft's throttling.
    transport_options: dict[str, Any] = field(default_factory=lambda: {"requests_per_second": 200.0, "burst": 50})


@dataclass
class DemoReport:
    """The demo's outcome: the fleet report plus what the demo did on the way."""

    fleet: FleetReport
    data_dir: Path
    consenting: set[str]
    cases: dict[str, str]
    actions: list[str]
    timed_out: bool = False
    mail: Any = None  # the relay's MailFlowReport: mail counts per upgrade state

    @property
    def success(self) -> bool:
        """True when every consenting tenant completed, no message broke the mail-flow expectation, and no time-out."""
        states = {tenant.tenant_id: tenant.state for tenant in self.fleet.tenants}
        mail_ok = self.mail is None or not self.mail.violations()
        return not self.timed_out and mail_ok and all(states[tenant_id] == UpgradeState.COMPLETED.value for tenant_id in self.consenting)

    def to_json(self) -> dict[str, Any]:
        document = self.fleet.to_json()
        for tenant in document["tenants"]:
            tenant["case"] = self.cases.get(tenant["tenant_id"])
            tenant["consented"] = tenant["tenant_id"] in self.consenting
        document["demo"] = {
            "success": self.success,
            "data_dir": str(self.data_dir),
            "actions": self.actions,
            "timed_out": self.timed_out,
        }
        if self.mail is not None:
            document["mail"] = self.mail.to_json()
        return document

    def lines(self) -> list[str]:
        """Return the report as text: a table of tenants, then the fleet summary."""
        states = [state.value for state in UpgradeState if state not in TERMINAL and state is not UpgradeState.ROLLING_BACK]
        states.append(UpgradeState.NEEDS_ATTENTION.value)
        short = {"awaiting_consent": "consent", "identity": "ident", "accepted": "accept", "connector": "connect",
                 "switched": "switch", "verified": "verify", "needs_attention": "attn"}
        header = f"{'tenant':<26} {'case':<18} {'final state':<16} {'calls':>5} {'reqs':>5} " + " ".join(f"{short.get(s, s):>7}" for s in states)
        lines = [
            "",
            "Per tenant: Microsoft API calls by the engine, HTTP requests the simulator received (tokens included),",
            "and seconds in each state:",
            header,
            "-" * len(header),
        ]
        for tenant in self.fleet.tenants:
            seconds = " ".join(f"{tenant.seconds_in_state.get(state, 0.0):>7.1f}" for state in states)
            case = self.cases.get(tenant.tenant_id) or ""
            requests = "-" if tenant.simulator_calls is None else str(tenant.simulator_calls)
            lines.append(f"{tenant.display_name[:26]:<26} {case:<18} {tenant.state:<16} {tenant.api_calls:>5} {requests:>5} {seconds}")

        summary = self.fleet.to_json()["fleet"]
        lines += [
            "",
            "Fleet:",
            f"  tenants: {summary['tenants']}; " + ", ".join(f"{state} {count}" for state, count in sorted(summary["states"].items())),
            f"  consenting tenants completed: {sum(1 for t in self.fleet.tenants if t.tenant_id in self.consenting and t.state == 'completed')}/{len(self.consenting)}",
            f"  wall time: {summary['wall_seconds']} s; completed per minute: {summary['completed_per_minute']}",
            f"  Microsoft API calls: {summary['api_calls_total']} in total, {summary['api_calls_per_completed_tenant']} per completed tenant",
        ]
        lines += [f"  {action}" for action in self.actions]
        lines += [f"  data folder: {self.data_dir}; log: {self.data_dir / 'demo.log'}",
                  f"  audit trail of a tenant: tenanttls history TENANT --data {self.data_dir}"]
        if self.mail is not None:
            lines += ["", *self.mail.lines(),
                      "rejected: null-sender messages to outside recipients sent before their tenant's switch; "
                      "Exchange rejects these by design (5.7.64), so they are expected"]
        lines.append("RESULT: " + ("success: every consenting tenant completed" if self.success else "FAILED: not every consenting tenant completed, or mail broke the expectation"))
        return lines


def prepare_data_dir(path: Path | None) -> Path:
    """Return an empty data folder: `path` (created; it must be empty) or a new temporary folder."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="tenanttls-demo-"))
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise ConfigurationError(f"demo data folder {path} is not empty; give a new folder with --data, or remove it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_demo(options: DemoOptions) -> DemoReport:
    """Run the demo and return its report; servers started here are stopped before it returns."""
    from tenanttls.dns.server import BuiltinDnsServer
    from tenanttls.migration.wiring import build_context
    from tenanttls.relay.demo import DemoMailFlow
    from tenanttls.relay.mailflow import FlowTenant
    from tenanttls.simulator import Simulator

    out = options.progress or sys.stderr
    started = time.monotonic()
    data_dir = prepare_data_dir(options.data_dir)
    clock = OffsetClock()
    fleet = fleet_module.generate_fleet(options.tenants, seed=options.seed, accepted_domain_seconds=options.accepted_domain_seconds)
    _say(out, f"demo: {len(fleet)} tenants, grace {format_duration(options.grace)}, data folder {data_dir}")

    log_handler = _log_to_file(data_dir / "demo.log", quiet_stderr=not options.log_to_stderr)
    credentials = write_app_credentials(data_dir / "app")
    key_reference = write_key_encryption_key(data_dir / "secrets" / "key-encryption.key")
    store = open_store(f"sqlite:///{(data_dir / 'tenanttls.db').resolve()}", create=True)
    stack: list[Callable[[], None]] = [store.close]
    try:
        dns_server = BuiltinDnsServer(store.engine, "crosswaretls.com", host="127.0.0.1", port=0, clock=clock).start()
        stack.append(dns_server.stop)

        seed = {
            "app": {"client_id": credentials.client_id, "certificates": [credentials.certificate_pem], "display_name": "Crossware tenanttls"},
            "tenants": [tenant.seed for tenant in fleet],
        }
        simulator = Simulator(
            data_dir / "simulator", host="127.0.0.1", http_port=0, smtp_port=0, seed=seed,
            dns_nameserver=f"127.0.0.1:{dns_server.port}", clock=clock,
        )
        simulator.start()
        stack.append(simulator.stop)
        _say(out, f"demo: simulator at {simulator.base_url}, DNS server at 127.0.0.1:{dns_server.port}")

        settings = Settings(
            data_dir=data_dir,
            login_url=simulator.base_url,
            graph_url=simulator.base_url,
            exchange_url=simulator.base_url,
            client_id=credentials.client_id,
            client_certificate=str(credentials.certificate_path),
            client_key=f"file:{credentials.key_path}",
            microsoft_ca_bundle=str(simulator.ca_path),
            key_encryption_key=key_reference,
            dns_backend="builtin",
            dns_server=f"127.0.0.1:{dns_server.port}",
            grace=options.grace,
        )
        _write_config(data_dir / "tenanttls.toml", settings)

        engine_options = EngineOptions(
            grace=options.grace,
            lease=timedelta(seconds=30),
            max_attempts=6,
            retry_base=timedelta(milliseconds=200),
            retry_cap=timedelta(seconds=2),
            consent_poll=timedelta(seconds=1),
            accepted_poll=timedelta(milliseconds=500),
            accepted_deadline=timedelta(minutes=5),
            dns_visible_timeout=10.0,
        )
        context = build_context(settings, store=store, clock=clock, options=engine_options,
                                transport_options=options.transport_options)
        context.version = options.version
        context.actor = "worker:demo"
        context.prober = AllProbers(
            ConsistencyProber(store, settings.connector_name),
            SmtpProber(context.certificates, "127.0.0.1", simulator.smtp_port, server_ca=simulator.ca_path,
                       attribution=simulator_attribution(simulator)),
        )
        stack.append(context.close)

        consenting = _enrol(context, simulator, fleet, out)
        mail_flow = DemoMailFlow(settings=settings, store=store, simulator=simulator,
                                 tenants=[FlowTenant(tenant.tenant_id, tenant.initial_domain) for tenant in fleet]).start()
        stack.append(mail_flow.close)
        _say(out, f"demo: relay at 127.0.0.1:{mail_flow.relay.port} sends mail to the simulator's SMTP front door at 127.0.0.1:{simulator.smtp_port}")
        report_actions: list[str] = []
        timed_out = _run_worker(context, fleet, consenting, options, out, report_actions)
        mail = mail_flow.stop()

        report = fleet_report(store, clock.now(), time.monotonic() - started)
        _add_simulator_counts(report, simulator)
        return DemoReport(
            fleet=report,
            data_dir=data_dir,
            consenting=consenting,
            cases={tenant.tenant_id: tenant.case for tenant in fleet if tenant.case},
            actions=report_actions,
            timed_out=timed_out,
            mail=mail,
        )
    finally:
        for stop in reversed(stack):
            try:
                stop()
            except Exception:  # keep stopping the rest; the error is logged
                logger.exception("demo shutdown step failed")
        log_handler.close()


class _DemoLog:
    """The demo's log file, and the stderr log levels to restore when the demo ends."""

    def __init__(self, handler: logging.Handler, restored: list[tuple[logging.Handler, int]], root_level: int) -> None:
        self.handler = handler
        self.restored = restored
        self.root_level = root_level

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.root_level)
        self.handler.close()
        for handler, level in self.restored:
            handler.setLevel(level)


def _log_to_file(path: Path, *, quiet_stderr: bool) -> _DemoLog:
    """Log INFO and above to `path`; with `quiet_stderr`, show only errors on the console meanwhile."""
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    restored = []
    if quiet_stderr:
        for existing in root.handlers:
            if isinstance(existing, logging.StreamHandler) and not isinstance(existing, logging.FileHandler):
                restored.append((existing, existing.level))
                existing.setLevel(logging.ERROR)
    root_level = root.level
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    return _DemoLog(handler, restored, root_level)


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _write_config(path: Path, settings: Settings) -> None:
    """Write the settings the demo used, so 'tenanttls status --config' works on the data folder afterwards."""
    keys = ("login_url", "graph_url", "exchange_url", "client_id", "client_certificate", "client_key",
            "microsoft_ca_bundle", "key_encryption_key", "dns_backend", "dns_server")
    lines = ["# Written by 'tenanttls demo'. The simulator and DNS server ports are only valid while the demo runs.", "[tenanttls]"]
    lines.append(f'data_dir = "{settings.data_dir}"')
    lines += [f'{key} = "{getattr(settings, key)}"' for key in keys]
    lines.append(f'grace = "{format_duration(settings.grace)}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _enrol(context: EngineContext, simulator: Any, fleet: list[fleet_module.FleetTenant], out: TextIO) -> set[str]:
    """Import the fleet, consent for the consenting tenants, and request every upgrade."""
    from tenanttls.store.tenants import TenantRecord

    now = context.clock.now()
    with context.store.write() as connection:
        for tenant in fleet:
            record = TenantRecord(tenant.tenant_id, tenant.initial_domain, tenant.display_name)
            add_tenant(connection, record, legacy_certificate_name=context.settings.legacy_certificate_name, now=now, actor=ACTOR)

    consenting = {tenant.tenant_id for tenant in fleet if tenant.consents}
    with httpx.Client(base_url=simulator.base_url, verify=str(simulator.ca_path), timeout=30) as client:
        for tenant_id in sorted(consenting):
            response = client.post(f"/_simulator/tenants/{tenant_id}/consent", json={"granted": True})
            response.raise_for_status()
    _say(out, f"demo: consented for {len(consenting)} of {len(fleet)} tenants; requesting every upgrade")

    request_upgrades(context.store, [tenant.tenant_id for tenant in fleet], now=now, actor=ACTOR)
    return consenting


def _run_worker(
    context: EngineContext,
    fleet: list[fleet_module.FleetTenant],
    consenting: set[str],
    options: DemoOptions,
    out: TextIO,
    actions: list[str],
) -> bool:
    """Run the worker until every consenting tenant is in a terminal state; return True on timeout."""
    worker = Worker(context, concurrency=options.concurrency, poll_interval=0.2, owner="demo-worker")
    backup_tenants = {tenant.tenant_id for tenant in fleet if tenant.case == fleet_module.EXISTING_BACKUP}
    deadline = time.monotonic() + options.timeout.total_seconds()
    overridden: set[str] = set()

    def settled() -> bool:
        with context.store.engine.connect() as connection:
            upgrades = {upgrade.tenant_id: upgrade for upgrade in list_upgrades(connection, sorted(consenting))}
        for tenant_id in backup_tenants - overridden:
            upgrade = upgrades.get(tenant_id)
            stopped = upgrade is not None and upgrade.state == UpgradeState.NEEDS_ATTENTION.value
            if stopped and "--force-backup-overwrite" in (upgrade.last_error or ""):
                overridden.add(tenant_id)
                _say(out, f"demo: {upgrade.last_error}")
                _say(out, f"demo: as an operator would, running 'tenanttls upgrade {tenant_id} --force-backup-overwrite'")
                request_upgrades(context.store, [tenant_id], overrides=Overrides(force_backup_overwrite=True), now=context.clock.now(), actor=ACTOR)
                actions.append(f"tenant {tenant_id}: the safety gate rejected its leftover -BACKUP connector; "
                               "the demo requested the upgrade again with --force-backup-overwrite")
                worker.wake()
                return False
        return all(UpgradeState(upgrade.state) in TERMINAL for upgrade in upgrades.values()) or time.monotonic() > deadline

    progress = _Progress(context, out)
    progress.start()
    try:
        worker.run(until=settled)
    finally:
        progress.stop()
    return time.monotonic() > deadline


class _Progress:
    """Prints the count of tenants per state to stderr once a second while the worker runs."""

    def __init__(self, context: EngineContext, out: TextIO) -> None:
        self.context = context
        self.out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._print()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._print()

    def _print(self) -> None:
        from tenanttls.store.upgrades import count_by_state

        with self.context.store.engine.connect() as connection:
            counts = count_by_state(connection)
        order = [state.value for state in UpgradeState]
        text = "  ".join(f"{state} {counts[state]}" for state in order if counts.get(state))
        _say(self.out, f"progress: {text}")


def simulator_attribution(simulator: Any) -> Callable[[str, str], str | None]:
    """Return a function that looks up, in the simulator's front door, the tenant a queued message was attributed to."""

    def attributed_tenant(tenant_id: str, queued_id: str) -> str | None:
        with httpx.Client(base_url=simulator.base_url, verify=str(simulator.ca_path), timeout=30) as client:
            response = client.get("/_simulator/messages")
            response.raise_for_status()
        for message in response.json().get("messages", []):
            if message.get("id") == queued_id:
                return message.get("tenant_id")
        return None

    return attributed_tenant


def _add_simulator_counts(report: FleetReport, simulator: Any) -> None:
    """Add the simulator's own per-tenant request counts to the report, when it offers them."""
    try:
        with httpx.Client(base_url=simulator.base_url, verify=str(simulator.ca_path), timeout=30) as client:
            response = client.get("/_simulator/calls")
            response.raise_for_status()
            document = response.json()
    except (httpx.HTTPError, ValueError) as error:
        logger.warning("simulator call counts unavailable: error=%s", error)
        return

    per_tenant = document.get("by_tenant", {}) if isinstance(document, dict) else {}
    for tenant in report.tenants:
        counts = per_tenant.get(tenant.tenant_id)
        if isinstance(counts, dict):
            tenant.simulator_calls = sum(value for value in counts.values() if isinstance(value, int))

