"""Carry out the changes of a plan, each followed by its audit event.

Each function re-uses what the step just read (`live`, the connectors by lower-case
name) and writes exactly one object in Microsoft 365, the DNS zone or the store.
"""

from __future__ import annotations

import logging
from typing import Any

from tenanttls.domain.exchange import InboundConnector
from tenanttls.errors import InvalidRequest
from tenanttls.migration.changes import (
    AddDomain,
    Change,
    CreateConnector,
    PublishVerificationRecord,
    RemoveConnector,
    RenameConnector,
    SaveSnapshot,
    SetConnector,
    VerifyDomain,
)
from tenanttls.migration.context import CountingApi, EngineContext
from tenanttls.migration.outcomes import StepNotDone
from tenanttls.migration.recorder import Recorder
from tenanttls.store.snapshots import save_snapshot

logger = logging.getLogger(__name__)


class Applier:
    """Applies the changes of one step for one tenant."""

    def __init__(
        self,
        context: EngineContext,
        api: CountingApi,
        recorder: Recorder,
        tenant_id: str,
        run_id: str | None,
        live: dict[str, InboundConnector] | None = None,
    ) -> None:
        self.context = context
        self.api = api
        self.recorder = recorder
        self.tenant_id = tenant_id
        self.run_id = run_id
        self.live = live or {}

    def apply_all(self, changes: list[Change] | tuple[Change, ...]) -> list[Any]:
        """Apply `changes` in order and return what each returned."""
        return [self.apply(change) for change in changes]

    def apply(self, change: Change) -> Any:
        """Apply one change; raise `TypeError` for a change this applier does not handle."""
        handler = getattr(self, f"_{type(change).__name__}", None)
        if handler is None:
            raise TypeError(f"no applier for {type(change).__name__}")
        return handler(change)

    def _AddDomain(self, change: AddDomain) -> Any:
        domain = self.api.graph.add_domain(self.tenant_id, change.name)
        self.recorder.change("domain.add", None, {"id": domain.id, "isVerified": domain.is_verified})
        return domain

    def _PublishVerificationRecord(self, change: PublishVerificationRecord) -> Any:
        records = self.api.graph.list_verification_records(self.tenant_id, change.name)
        proofs = [record for record in records if record.record_type.lower() == "txt" and record.text]
        if not proofs:
            raise StepNotDone(
                f"Graph returned no TXT verification record for {change.name} in tenant {self.tenant_id}; "
                "the domain may have just been added, so the step is retried"
            )

        proof = proofs[0]
        fqdn = proof.label or change.name
        if self._published(fqdn, proof.text):
            return proof
        self.context.dns.add_txt(fqdn, proof.text, min(proof.ttl, 3600))
        self.context.dns.wait_until_visible(fqdn, proof.text, self.context.options.dns_visible_timeout)
        self.recorder.change("dns.txt.add", None, {"name": fqdn, "text": proof.text})
        return proof

    def _published(self, fqdn: str, text: str) -> bool:
        """True when the DNS server already serves the record (read before write), for publishers that can tell."""
        lookup = getattr(self.context.dns, "lookup_txt", None)
        return lookup is not None and text in lookup(fqdn)

    def _VerifyDomain(self, change: VerifyDomain) -> Any:
        try:
            domain = self.api.graph.verify_domain(self.tenant_id, change.name)
        except InvalidRequest as error:
            # Graph rejects verify while its resolvers do not see the TXT record yet.
            raise StepNotDone(f"Graph could not verify {change.name} in tenant {self.tenant_id} yet: {error}") from error
        if not domain.is_verified:
            raise StepNotDone(f"Graph reports {change.name} unverified after verify in tenant {self.tenant_id}")
        self.recorder.change("domain.verify", {"isVerified": False}, {"isVerified": True})
        return domain

    def _SaveSnapshot(self, change: SaveSnapshot) -> Any:
        connector = self.live[change.connector_name.lower()]
        with self.context.store.write() as connection:
            snapshot = save_snapshot(
                connection,
                tenant_id=self.tenant_id,
                connector_name=connector.name,
                run_id=self.run_id,
                connector=dict(connector.raw),
                reason=change.reason,
                now=self.context.clock.now(),
            )
        self.recorder.event("connector.snapshot", None, {"name": connector.name, "snapshot_id": snapshot.id}, change.reason)
        return snapshot

    def _RemoveConnector(self, change: RemoveConnector) -> Any:
        before = self.live.get(change.connector_name.lower())
        self.api.exchange.remove_inbound_connector(self.tenant_id, change.connector_name)
        self.recorder.change("connector.remove", dict(before.raw) if before else {"Name": change.connector_name}, None, change.reason)

    def _RenameConnector(self, change: RenameConnector) -> Any:
        self.api.exchange.set_inbound_connector(self.tenant_id, change.from_name, {"Name": change.to_name})
        self.recorder.change("connector.rename", {"Name": change.from_name}, {"Name": change.to_name})

    def _CreateConnector(self, change: CreateConnector) -> Any:
        result = self.api.exchange.new_inbound_connector(self.tenant_id, change.settings)
        warnings = list(getattr(result, "warnings", []) or [])
        self.recorder.change(
            "connector.create", None, change.settings.parameters(), "; ".join(warnings) if warnings else None
        )
        for warning in warnings:
            logger.warning("exchange warning: tenant=%s cmdlet=New-InboundConnector warning=%s", self.tenant_id, warning)
        return result

    def _SetConnector(self, change: SetConnector) -> Any:
        self.api.exchange.set_inbound_connector(self.tenant_id, change.connector_name, change.parameters)
        before = {key: _json(value[0]) for key, value in change.differences.items()}
        after = {key: _json(value[1]) for key, value in change.differences.items()}
        self.recorder.change("connector.set", before, after)


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
