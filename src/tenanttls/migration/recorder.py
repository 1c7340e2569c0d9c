"""Audit events written by the steps, one per change, as soon as the change is made."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Connection

from tenanttls.migration import faults
from tenanttls.migration.context import EngineContext
from tenanttls.store.audit import AuditEvent, record_event

logger = logging.getLogger(__name__)


class Recorder:
    """Records what one step of one tenant changed, under the upgrade's run id."""

    def __init__(self, context: EngineContext, tenant_id: str, step: str, correlation_id: str | None) -> None:
        self.context = context
        self.tenant_id = tenant_id
        self.step = step
        self.correlation_id = correlation_id
        self.changes = 0

    def change(self, action: str, before: Any, after: Any, detail: str | None = None) -> None:
        """Record a change already applied, then pass the ``change`` crash point."""
        self.event(action, before, after, detail)
        self.changes += 1
        logger.info("change: tenant=%s step=%s action=%s", self.tenant_id, self.step, action)
        faults.boundary("change", self.tenant_id)

    def event(self, action: str, before: Any = None, after: Any = None, detail: str | None = None) -> None:
        """Record an event that is not a change in Microsoft 365 (a warning, a decision)."""
        with self.context.store.write() as connection:
            self.event_in(connection, action, before, after, detail)

    def event_in(self, connection: Connection, action: str, before: Any = None, after: Any = None, detail: str | None = None) -> None:
        """Record an event inside the caller's transaction, so it commits with the caller's change."""
        record_event(
            connection,
            AuditEvent(
                tenant_id=self.tenant_id,
                at=self.context.clock.now(),
                actor=self.context.actor,
                action=action,
                step=self.step,
                before=before,
                after=after,
                correlation_id=self.correlation_id,
                detail=detail,
            ),
        )
