"""The relay and a steady mail stream for ``tenanttls demo``.

`DemoMailFlow.start` creates the relay's certificates (`RelayPki`), makes the
simulator's SMTP front door trust them and the local CA that issues the unique
certificates, starts the relay in front of the front door and starts a
`MailFlowDriver` for the tenants. `DemoMailFlow.stop` stops the stream, waits for
the relay's queue to empty and returns the mail report per upgrade state.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any, Iterable

import httpx

from tenanttls.certificates.local_ca import LocalCaIssuer
from tenanttls.errors import ConfigurationError
from tenanttls.relay.demo_pki import RelayPki
from tenanttls.relay.mailflow import FlowTenant, MailFlowDriver, MailFlowReport, queued_message_ids, upgrade_phase_reader
from tenanttls.relay.server import Relay, RelayThread
from tenanttls.relay.settings import RelaySettings
from tenanttls.relay.wiring import key_pairs_from

logger = logging.getLogger(__name__)

# Seconds the demo waits for the relay's queue to empty once the stream stops.
DRAIN_TIMEOUT = 60.0


class DemoMailFlow:
    """Mail through the relay to the simulator while the demo upgrades the fleet.

    `simulator` must run its SMTP front door (``Simulator(..., smtp_port=0)``); `settings`
    are the demo's settings (data folder, key-encryption key, legacy certificate name).
    """

    def __init__(self, *, settings: Any, store: Any, simulator: Any, tenants: Iterable[FlowTenant], rate: float = 20.0) -> None:
        if not getattr(simulator, "smtp_port", None):
            raise ConfigurationError("the demo's mail flow needs the simulator's SMTP front door; start it with smtp_port=0")
        self.settings = settings
        self.store = store
        self.simulator = simulator
        self.tenants = list(tenants)
        self.rate = rate
        self.data_dir = Path(settings.data_dir)
        self.relay: RelayThread | None = None
        self.driver: MailFlowDriver | None = None

    def _api(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.simulator.ca_path))
        return httpx.Client(base_url=self.simulator.base_url, verify=context, timeout=30)

    def start(self) -> DemoMailFlow:
        """Trust the certificates at the front door, start the relay, then start the stream."""
        pki = RelayPki(self.data_dir / "relay-pki", legacy_name=self.settings.legacy_certificate_name)
        # Loading the local CA creates it if the engine has not issued yet, so the front door
        # can trust it before the first tenant's certificate exists.
        local_ca = LocalCaIssuer(self.data_dir / "ca", lifetime=self.settings.certificate_lifetime).ca_path
        with self._api() as api:
            for ca_path in (pki.ca_path, local_ca):
                if ca_path.exists():
                    api.post("/_simulator/smtp/trusted-cas", content=ca_path.read_bytes()).raise_for_status()

        relay_settings = RelaySettings(
            queue_dir=self.data_dir / "relay-queue",
            legacy=pki.legacy,
            tls_certificate=pki.server_certificate,
            tls_key=pki.server_key,
            listen_port=0,
            smart_host=f"127.0.0.1:{self.simulator.smtp_port}",
            smart_host_ca=Path(self.simulator.ca_path),
            retry_schedule=(1.0, 5.0),
            assignment_max_age=0.2,
        )
        relay = Relay(relay_settings, engine=self.store.engine, key_pairs=key_pairs_from(self.settings, self.store.engine))
        self.relay = RelayThread(relay).start()
        self.driver = MailFlowDriver(
            relay_host="127.0.0.1",
            relay_port=self.relay.port,
            relay_ca=pki.ca_path,
            tenants=self.tenants,
            phase_of=upgrade_phase_reader(self.store.engine),
            rate=self.rate,
        ).start()
        logger.info("demo mail flow: started relay_port=%s tenants=%d rate=%s", self.relay.port, len(self.tenants), self.rate)
        return self

    def stop(self) -> MailFlowReport:
        """Stop the stream, let the relay deliver what it queued, and return the report."""
        assert self.driver is not None and self.relay is not None, "start() was not called"
        self.driver.stop()
        drained = self.relay.wait_until_empty(DRAIN_TIMEOUT)
        if not drained:
            logger.warning("demo mail flow: relay queue not empty after %s s; those messages count as pending", DRAIN_TIMEOUT)
        with self._api() as api:
            response = api.get("/_simulator/messages")
            response.raise_for_status()
            received = response.json()["messages"]
        queue = self.relay.relay.queue
        report = self.driver.report(received, queue.outcomes(), queued_message_ids(queue))
        self.relay.stop()
        return report

    def close(self) -> None:
        """Stop the stream and the relay without a report (after an error)."""
        if self.driver is not None:
            self.driver.stop()
        if self.relay is not None:
            self.relay.stop()
