"""Probers for the verify step.

`ConsistencyProber` checks that everything a probe message depends on is in place:
our connector Enabled with the unique name, the name listed as an accepted domain,
and the relay assignment presenting the tenant's active certificate for that name.
`SmtpProber` (in `tenanttls.migration.smtp_probe`) sends real messages.
"""

from __future__ import annotations

from sqlalchemy import select

from tenanttls.errors import NotFound
from tenanttls.migration.context import CountingApi, ProbeResult
from tenanttls.migration.planner import is_accepted, is_ours
from tenanttls.store import relay_assignments
from tenanttls.store.db import Store
from tenanttls.store.schema import certificates


class ConsistencyProber:
    """Checks connector, accepted domain and relay assignment agree; sends no mail.

    NOTE: this proves the configuration, not delivery; Exchange's attribution of a
    real message is only shown by `SmtpProber` (and, at Microsoft, message trace).
    """

    def __init__(self, store: Store, connector_name: str) -> None:
        self.store = store
        self.connector_name = connector_name

    def probe(self, api: CountingApi, tenant_id: str, name: str, certificate_id: int | None) -> ProbeResult:
        """Return accepted only when connector, accepted domain and relay assignment all name `name`."""
        problems = []
        try:
            connector = api.exchange.get_inbound_connector(tenant_id, self.connector_name)
        except NotFound:
            connector = None
        if connector is None or not is_ours(connector):
            problems.append(f"connector {self.connector_name!r} created by tenanttls is missing")
        elif not connector.enabled or connector.tls_sender_certificate_name != name.lower():
            problems.append(
                f"connector {self.connector_name!r} is Enabled {connector.enabled} with "
                f"TlsSenderCertificateName {connector.tls_sender_certificate_name}"
            )

        if not is_accepted(name, api.exchange.get_accepted_domains(tenant_id)):
            problems.append(f"{name} is not an accepted domain")

        problems += self._relay_problems(tenant_id, name, certificate_id)
        if problems:
            return ProbeResult(False, "; ".join(problems))
        return ProbeResult(True, f"connector, accepted domain and relay assignment agree on {name}")

    def _relay_problems(self, tenant_id: str, name: str, certificate_id: int | None) -> list[str]:
        with self.store.engine.connect() as connection:
            assignment = relay_assignments.find_assignment(connection, tenant_id)
            row = None
            if certificate_id is not None:
                row = connection.execute(
                    select(certificates.c.name, certificates.c.status).where(certificates.c.id == certificate_id)
                ).first()

        if assignment is None or assignment.mode != relay_assignments.UNIQUE:
            return [f"the relay assignment is {assignment.mode if assignment else 'missing'}, not unique"]
        if row is None or row.name != name or row.status != "active":
            return [f"the relay assignment's certificate {certificate_id} is not the active certificate for {name}"]
        return []


class AllProbers:
    """Runs probers in order and passes only when every one passes (stops at the first failure)."""

    def __init__(self, *probers) -> None:
        self.probers = probers

    def probe(self, api: CountingApi, tenant_id: str, name: str, certificate_id: int | None) -> ProbeResult:
        """Return the first failing result, or a pass with every prober's detail and messages."""
        details, messages = [], []
        for prober in self.probers:
            result = prober.probe(api, tenant_id, name, certificate_id)
            if not result.accepted:
                return result
            details.append(result.detail)
            messages += result.messages
        return ProbeResult(True, "; ".join(details), messages)
