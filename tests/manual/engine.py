"""An engine wired to the simulator, the built-in DNS server and a SQLite store, for the
manual-path and drift tests. Everything runs on loopback with OS-chosen ports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from tenanttls.clock import ManualClock
from tenanttls.config import Settings
from tenanttls.migration.context import EngineContext, EngineOptions, default_owner
from tenanttls.migration.planner import settings_of
from tenanttls.migration.service import add_tenant, request_upgrades, run_now
from tenanttls.migration.states import UpgradeState
from tenanttls.store.db import Store
from tenanttls.store.tenants import TenantRecord
from tenanttls.store.upgrades import get_upgrade


@dataclass
class EngineEnvironment:
    """A running simulator, DNS server, store and engine context sharing one ManualClock."""

    simulator: Any
    store: Store
    context: EngineContext
    settings: Settings
    clock: ManualClock

    def add(self, tenant_id: str, initial_domain: str) -> None:
        """Store one tenant with its upgrade row and legacy relay assignment."""
        with self.store.write() as connection:
            add_tenant(connection, TenantRecord(tenant_id=tenant_id, initial_domain=initial_domain, display_name="Contoso"),
                       legacy_certificate_name=self.settings.legacy_certificate_name, now=self.clock.now(), actor="test")

    def state(self, tenant_id: str) -> str:
        """Return the tenant's upgrade state."""
        with self.store.engine.connect() as connection:
            return get_upgrade(connection, tenant_id).state

    def run_until(self, tenant_id: str, states: tuple[UpgradeState, ...], *, rounds: int = 40, step: float = 600) -> str:
        """Run the tenant's steps, moving the clock by `step` seconds between rounds, until it reaches `states`."""
        for _ in range(rounds):
            run_now(self.context, tenant_id, default_owner())
            state = self.state(tenant_id)
            if state in {s.value for s in states} or state == UpgradeState.NEEDS_ATTENTION.value:
                return state
            self.clock.advance(step)
        return self.state(tenant_id)

    def upgrade(self, tenant_id: str) -> str:
        """Request and run the whole upgrade, passing the grace period; return the final state."""
        # NOTE: the simulator derives a connector's Guid from tenant, name and creation second, so
        # a connector created in the second the tenant was seeded would share the legacy one's Guid.
        self.clock.advance(60)
        request_upgrades(self.store, [tenant_id], now=self.clock.now(), actor="test")
        state = self.run_until(tenant_id, (UpgradeState.GRACE, UpgradeState.COMPLETED))
        if state == UpgradeState.GRACE.value:
            self.clock.advance(self.settings.grace + timedelta(seconds=1))
            state = self.run_until(tenant_id, (UpgradeState.COMPLETED,))
        return state

    def write_config(self) -> Path:
        """Write DATA/tenanttls.toml with these settings, so CLI commands given --data DATA use this environment."""
        keys = ("login_url", "graph_url", "exchange_url", "client_id", "client_certificate", "client_key",
                "microsoft_ca_bundle", "key_encryption_key", "dns_backend", "dns_server", "database_url")
        lines = ["[tenanttls]", f'data_dir = "{self.settings.data_dir}"']
        lines += [f'{key} = "{getattr(self.settings, key)}"' for key in keys]
        path = Path(self.settings.data_dir) / "tenanttls.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def end_state(self, tenant_id: str) -> dict[str, Any]:
        """Return connectors (settings, ownership), accepted domains and the unique name's Graph state."""
        connectors = self.context.exchange.get_inbound_connectors(tenant_id)
        unique_name = self.context.identities.get(tenant_id).name
        connector_states = {}
        for connector in connectors:
            values = {**settings_of(connector), "ours": connector.comment.startswith("Managed by tenanttls")}
            if values["TlsSenderCertificateName"] == unique_name:
                values["TlsSenderCertificateName"] = "<unique name>"  # each tenant has its own
            connector_states[connector.name] = values
        return {
            "connectors": connector_states,
            "accepted": sorted(d.domain_name == unique_name for d in self.context.exchange.get_accepted_domains(tenant_id)),
            "verified": self.context.graph.get_domain(tenant_id, unique_name).is_verified,
        }


def start_environment(
    tmp_path: Path, simulator_factory: Callable[..., Any], tenants: list[dict[str, Any]], store_url: str
) -> tuple[EngineEnvironment, list[Callable[[], None]]]:
    """Start the DNS server, simulator and engine on the store at `store_url`; return the environment and its stop functions."""
    from tenanttls.dns.server import BuiltinDnsServer
    from tenanttls.migration.credentials import write_app_credentials, write_key_encryption_key
    from tenanttls.migration.wiring import build_context
    from tenanttls.store.db import open_store

    clock = ManualClock(datetime.now(timezone.utc))
    credentials = write_app_credentials(tmp_path / "app")
    key_reference = write_key_encryption_key(tmp_path / "secrets" / "kek.key")
    store = open_store(store_url, create=True)
    stops: list[Callable[[], None]] = [store.close]

    dns_server = BuiltinDnsServer(store.engine, "crosswaretls.com", host="127.0.0.1", port=0, clock=clock).start()
    stops.append(dns_server.stop)
    seed = {
        "app": {"client_id": credentials.client_id, "certificates": [credentials.certificate_pem], "display_name": "tenanttls test"},
        "tenants": tenants,
    }
    simulator = simulator_factory(seed, clock=clock, dns_nameserver=f"127.0.0.1:{dns_server.port}", app=False)

    settings = Settings(
        data_dir=tmp_path,
        database_url=store_url,
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
        grace=timedelta(hours=24),
    )
    options = EngineOptions(
        grace=settings.grace, lease=timedelta(seconds=30), retry_base=timedelta(seconds=1), retry_cap=timedelta(seconds=5),
        consent_poll=timedelta(seconds=5), accepted_poll=timedelta(seconds=30), dns_visible_timeout=10.0,
    )
    context = build_context(settings, store=store, clock=clock, options=options)
    stops.insert(1, context.close)
    return EngineEnvironment(simulator, store, context, settings, clock), stops
