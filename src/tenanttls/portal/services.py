"""The portal's calls into the engine, plus the few thin operations the engine does not offer.

Reads and requests go through `tenanttls.migration.service` and
`tenanttls.migration.observe.plan_for`, the functions the CLI calls. Three operations
exist only for the portal and are kept thin, on top of the store's repositories:
recording the outcome of an admin consent (a grant carries a stopped or waiting upgrade
on), handing a tenant to support for the manual upgrade, and "retry now" for a tenant
that waits.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from tenanttls.certificates.repository import find_active
from tenanttls.clock import Clock
from tenanttls.errors import NotFoundError, UpgradeStateError
from tenanttls.migration import service as engine
from tenanttls.migration.planner import TenantPlan
from tenanttls.migration.safety import Overrides
from tenanttls.migration.states import TERMINAL, UpgradeState
from tenanttls.portal.checks import CertificateInfo
from tenanttls.portal.diagnosis import consent_lost
from tenanttls.store import relay_assignments
from tenanttls.store.audit import AuditEvent, list_events, record_event
from tenanttls.store.db import Store
from tenanttls.store.schema import identities
from tenanttls.store.tenants import TenantRecord, get_tenant
from tenanttls.store.upgrades import UpgradeRecord, get_upgrade, update_upgrade

logger = logging.getLogger(__name__)

MANUAL_REQUESTED = "manual.requested"
# States from which a customer may hand the upgrade to support: nothing is running then.
MANUAL_ALLOWED_FROM = frozenset({UpgradeState.AWAITING_CONSENT, UpgradeState.ROLLED_BACK, UpgradeState.NEEDS_ATTENTION})


@dataclass(frozen=True)
class TenantOverview:
    """Everything the connector page shows that comes from the store."""

    tenant: TenantRecord
    upgrade: UpgradeRecord
    unique_name: str | None
    relay_mode: str | None
    events: list[AuditEvent]
    certificate: CertificateInfo | None

    @property
    def manual_request(self) -> AuditEvent | None:
        """The latest request for the manual upgrade, or None."""
        requests = [event for event in self.events if event.action == MANUAL_REQUESTED]
        return requests[-1] if requests else None


def plan_fingerprint(plan: TenantPlan) -> str:
    """Return a SHA-256 over the plan's changes and violations, without volatile fields.

    The new connector's ``Comment`` carries the time the plan was made and the
    descriptions repeat it, so both are left out: the fingerprint changes only
    when what would be done changes.
    """
    document = plan.to_json()
    stable = _without(document["changes"] + document["violations"], {"Comment", "comment", "description"})
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


def _without(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {key: _without(item, keys) for key, item in value.items() if key not in keys}
    if isinstance(value, list):
        return [_without(item, keys) for item in value]
    return value


class PortalServices:
    """The operations behind the portal's pages and JSON API.

    `engine_context` is the engine's `EngineContext`; it is needed only for the plan,
    which reads Exchange and Graph.
    """

    def __init__(self, store: Store, clock: Clock, engine_context: Any | None = None) -> None:
        self.store = store
        self.clock = clock
        self.engine_context = engine_context

    # -- reads ------------------------------------------------------------------------------

    def tenant(self, tenant_id: str) -> TenantRecord:
        """Return the tenant, or raise `NotFoundError`."""
        with self.store.engine.connect() as connection:
            return get_tenant(connection, tenant_id)

    def overview(self, tenant_id: str) -> TenantOverview:
        """Return the tenant's record, upgrade, unique name, relay mode, audit trail and certificate."""
        with self.store.engine.connect() as connection:
            tenant = get_tenant(connection, tenant_id)
            upgrade = get_upgrade(connection, tenant_id)
            unique_name = connection.execute(
                select(identities.c.name).where(identities.c.tenant_id == tenant_id)
            ).scalar_one_or_none()
            assignment = relay_assignments.find_assignment(connection, tenant_id)
            events = list_events(connection, tenant_id)
            certificate = _active_certificate(connection, tenant_id)
        return TenantOverview(tenant, upgrade, unique_name, assignment.mode if assignment else None, events, certificate)

    def plan(self, tenant_id: str) -> TenantPlan:
        """Return the plan from the tenant's live state to completed (reads Exchange and Graph)."""
        from tenanttls.migration.observe import plan_for

        if self.engine_context is None:
            raise NotFoundError("the plan needs the Microsoft clients, which this portal was started without")
        return plan_for(self.engine_context, tenant_id)

    # -- requests (engine) ------------------------------------------------------------------

    def start(self, tenant_id: str, actor: str) -> engine.RequestResult:
        """Request the tenant's upgrade; the worker carries it out."""
        upgrade = self._upgrade(tenant_id)
        if UpgradeState(upgrade.state) is UpgradeState.MANUAL:
            raise UpgradeStateError(
                f"tenant {tenant_id} is handed to support for a manual upgrade; contact support to change that"
            )
        [result] = engine.request_upgrades(self.store, [tenant_id], now=self.clock.now(), actor=actor)
        return result

    def rollback(self, tenant_id: str, actor: str, *, reason: str | None = None) -> engine.RequestResult:
        """Request the rollback of the tenant's upgrade; `reason` is added to the audit trail."""
        result = engine.request_rollback(self.store, tenant_id, now=self.clock.now(), actor=actor)
        if reason:
            with self.store.write() as connection:
                record_event(
                    connection,
                    AuditEvent(tenant_id=tenant_id, at=self.clock.now(), actor=actor, action="rollback.reason", detail=reason),
                )
        return result

    # -- thin operations (portal only) -------------------------------------------------------

    def record_consent(
        self, tenant_id: str, actor: str, *, granted: bool, error: str | None = None
    ) -> engine.RequestResult | None:
        """Record the outcome of an admin consent, and after a grant carry a stopped or waiting upgrade on.

        A grant stamps `consented_at`. A tenant that the engine stopped because its consent
        was missing then resumes, and a requested tenant that waits in awaiting_consent
        becomes due now, both through the engine's request under `actor`. Returns that
        request's result, or None when the consent changed nothing else. A stop for any
        other reason stays, so that consenting again cannot pass a safety stop.

        The worker still checks that a token can be obtained before it leaves
        awaiting_consent, because a grant can take minutes to take effect.
        """
        now = self.clock.now()
        with self.store.write() as connection:
            get_tenant(connection, tenant_id)
            if granted:
                update_upgrade(connection, tenant_id, owner=None, consented_at=now, consent_method="admin_consent")
            record_event(
                connection,
                AuditEvent(
                    tenant_id=tenant_id, at=now, actor=actor,
                    action="consent.granted" if granted else "consent.denied", detail=error,
                ),
            )
        logger.info("consent recorded: tenant=%s granted=%s actor=%s", tenant_id, granted, actor)
        return self._continue_after_consent(tenant_id, actor) if granted else None

    def _continue_after_consent(self, tenant_id: str, actor: str) -> engine.RequestResult | None:
        upgrade = self._upgrade(tenant_id)
        now = self.clock.now()
        waits_for_consent = (
            upgrade.requested
            and upgrade.state == UpgradeState.AWAITING_CONSENT.value
            and upgrade.next_attempt_at is not None
            and upgrade.next_attempt_at > now
        )
        if not (consent_lost(upgrade) or waits_for_consent):
            return None

        # NOTE: request_upgrades opens its own transaction, so the state is read before it.
        # A tenant resumed by someone else and stopped again for another reason in between
        # would be resumed here too.
        # A grant can take minutes to take effect, so a resumed step whose token request still
        # fails for missing consent waits and runs again. It stops the tenant again only once the
        # engine's consent_propagation has passed since the consented_at that record_consent stamped.
        [result] = engine.request_upgrades(self.store, [tenant_id], now=now, actor=actor)
        logger.info(
            "upgrade continued after consent: tenant=%s outcome=%s state=%s", tenant_id, result.outcome, result.state
        )
        return result

    def request_manual(self, tenant_id: str, actor: str, *, contact_email: str, note: str) -> None:
        """Hand the tenant to support: state manual, automatic steps off, request recorded.

        Allowed only while no upgrade runs (awaiting consent, rolled back, needs
        attention); otherwise raises `UpgradeStateError` naming the state.
        """
        now = self.clock.now()
        with self.store.write() as connection:
            upgrade = get_upgrade(connection, tenant_id)
            state = UpgradeState(upgrade.state)
            if state is UpgradeState.MANUAL:
                raise UpgradeStateError(f"tenant {tenant_id} is already handed to support for a manual upgrade")
            running = upgrade.requested and state not in TERMINAL
            if state not in MANUAL_ALLOWED_FROM or running:
                raise UpgradeStateError(
                    f"the upgrade of tenant {tenant_id} is under way (state {state.value}); roll it back first, "
                    "or contact support"
                )

            update_upgrade(
                connection, tenant_id, owner=None, expected_state=state.value, state=UpgradeState.MANUAL.value,
                state_entered_at=now, requested=False, next_attempt_at=None,
            )
            record_event(
                connection,
                AuditEvent(
                    tenant_id=tenant_id, at=now, actor=actor, action=MANUAL_REQUESTED,
                    before={"state": state.value}, after={"state": UpgradeState.MANUAL.value, "contact": contact_email},
                    detail=note or None,
                ),
            )
        logger.info("manual upgrade requested: tenant=%s actor=%s", tenant_id, actor)

    def retry(self, tenant_id: str, actor: str, overrides: Overrides = Overrides()) -> engine.RequestResult:
        """Resume a stopped tenant, or make a waiting one due now, with `overrides` added to its stored ones.

        A tenant in needs_attention resumes through the engine's request, as
        ``tenanttls upgrade TENANT --flag`` does. A tenant whose upgrade runs but waits (for
        consent, propagation, a retry delay) gets the overrides through the same request
        and `next_attempt_at` set to now. A worker's lease on it, if any, is left alone.
        """
        upgrade = self._upgrade(tenant_id)
        state = UpgradeState(upgrade.state)
        if state is UpgradeState.NEEDS_ATTENTION:
            [result] = engine.request_upgrades(self.store, [tenant_id], overrides=overrides, now=self.clock.now(), actor=actor)
            return result
        if not upgrade.requested or state in TERMINAL:
            raise UpgradeStateError(f"tenant {tenant_id} has no running upgrade to retry (state {state.value})")

        if overrides.to_json():
            engine.request_upgrades(self.store, [tenant_id], overrides=overrides, now=self.clock.now(), actor=actor)
        now = self.clock.now()
        with self.store.write() as connection:
            update_upgrade(connection, tenant_id, owner=None, expected_state=state.value, next_attempt_at=now, attempts=0)
            record_event(
                connection,
                AuditEvent(tenant_id=tenant_id, at=now, actor=actor, action="upgrade.retry", before={"state": state.value}, after={"state": state.value}),
            )
        return engine.RequestResult(tenant_id, "retried", state.value, "the next step runs now")

    def _upgrade(self, tenant_id: str) -> UpgradeRecord:
        with self.store.engine.connect() as connection:
            get_tenant(connection, tenant_id)
            return get_upgrade(connection, tenant_id)


def _active_certificate(connection, tenant_id: str) -> CertificateInfo | None:
    stored = find_active(connection, tenant_id)
    if stored is None:
        return None
    return CertificateInfo(name=stored.name, not_before=stored.not_before, not_after=stored.not_after)
