"""One step per upgrade state: read the live state, plan, apply only what is missing.

Every step can run any number of times, because it starts by reading what
Microsoft 365 and the store show now. A failed read raises (a timeout is never
taken as "absent"), and the runner retries the step later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from tenanttls.domain.exchange import InboundConnector
from tenanttls.domain.durations import format_duration
from tenanttls.errors import ConsentRequired, InvalidRequest, NotFound, NotFoundError
from tenanttls.migration.apply import Applier
from tenanttls.migration.changes import SetConnector
from tenanttls.migration.context import CountingApi, EngineContext
from tenanttls.migration.outcomes import Advance, Outcome, StepNotDone, Stop, StopKind, Wait
from tenanttls.migration.planner import (
    SNAPSHOT_BEFORE_RENAME,
    Desired,
    desired_connector,
    is_accepted,
    is_ours,
    plan_accepted,
    plan_connectors,
    plan_domain,
    stamp_comment,
)
from tenanttls.migration.recorder import Recorder
from tenanttls.migration.safety import Overrides, Violation, raise_for
from tenanttls.migration.states import UpgradeState
from tenanttls.store import relay_assignments
from tenanttls.store.snapshots import find_snapshot
from tenanttls.store.upgrades import UpgradeRecord

logger = logging.getLogger(__name__)

EXCHANGE_SCOPE = "https://outlook.office365.com/.default"


@dataclass
class StepInput:
    """The input of a step: the upgrade row as claimed, the clients and the recorder."""

    context: EngineContext
    api: CountingApi
    upgrade: UpgradeRecord
    recorder: Recorder

    @property
    def tenant_id(self) -> str:
        return self.upgrade.tenant_id

    @property
    def now(self) -> datetime:
        return self.context.clock.now()

    @property
    def overrides(self) -> Overrides:
        return Overrides.from_json(self.upgrade.overrides)

    def applier(self, live: dict[str, InboundConnector] | None = None) -> Applier:
        return Applier(self.context, self.api, self.recorder, self.tenant_id, self.upgrade.run_id, live)

    def unique_name(self) -> str:
        """Return the tenant's unique name; the identity step stored it."""
        return self.context.identities.get(self.tenant_id).name

    def desired(self, unique_name: str | None) -> Desired:
        settings = self.context.settings
        return Desired(
            connector_name=settings.connector_name,
            legacy_certificate_name=settings.legacy_certificate_name,
            zone=settings.provider_zone,
            unique_name=unique_name,
            comment=stamp_comment(self.context.version, self.upgrade.run_id or "-", self.now),
            overrides=self.overrides,
        )


def awaiting_consent(work: StepInput) -> Outcome:
    """Request a token for the tenant; advance once one is issued (the admin consented)."""
    try:
        work.api.tokens.get_token(work.tenant_id, EXCHANGE_SCOPE)
    except ConsentRequired as error:
        return Wait(work.now + work.context.options.consent_poll, f"waiting for admin consent: {error}")
    except NotFound as error:
        # Entra ID does not know the tenant id (AADSTS90002): no retry can fix a wrong id.
        return Stop(StopKind.UNKNOWN_TENANT, str(error))

    values = {"consented_at": work.upgrade.consented_at or work.now}
    if work.upgrade.consent_method is None:
        values["consent_method"] = "admin"
    return Advance(UpgradeState.IDENTITY, "a token was obtained", values=values)


def identity(work: StepInput) -> Outcome:
    """Allocate the unique name (stored once per tenant) and issue its certificate."""
    try:
        existing = work.context.identities.get(work.tenant_id)
    except NotFoundError:
        existing = None

    allocated = existing or work.context.identities.allocate(work.tenant_id)
    if existing is None:
        work.recorder.change("identity.allocate", None, {"name": allocated.name})

    certificate = work.context.certificates.ensure_certificate(work.tenant_id, allocated.name)
    certificate_id = getattr(certificate, "id", None)
    work.recorder.event("certificate.ensure", None, {"name": allocated.name, "certificate_id": certificate_id})
    return Advance(UpgradeState.DOMAIN, f"identity {allocated.name}, certificate {certificate_id}")


def domain(work: StepInput) -> Outcome:
    """Add the name in Graph, publish the MS= TXT record and verify, skipping what is done."""
    name = work.unique_name()
    try:
        current = work.api.graph.get_domain(work.tenant_id, name)
    except NotFound:
        current = None

    changes = plan_domain(name, current)
    work.applier().apply_all(changes)
    return Advance(UpgradeState.ACCEPTED, f"{name} verified in Graph")


def accepted(work: StepInput) -> Outcome:
    """Read Get-AcceptedDomain; advance once it lists the name, poll until the deadline otherwise."""
    name = work.unique_name()
    domains = work.api.exchange.get_accepted_domains(work.tenant_id)
    if not plan_accepted(name, domains):
        return Advance(UpgradeState.BACKUP, f"{name} is an accepted domain")

    waited = work.now - work.upgrade.state_entered_at
    deadline = work.context.options.accepted_deadline
    if waited >= deadline:
        return Stop(
            StopKind.TIMED_OUT,
            f"Get-AcceptedDomain still does not list {name} after {format_duration(waited)} "
            f"(limit {format_duration(deadline)}); check the domain in the Microsoft 365 admin center, "
            f"then run 'tenanttls upgrade {work.tenant_id}' again"
        )
    return Wait(work.now + work.context.options.accepted_poll, f"{name} not yet listed by Get-AcceptedDomain")


def _read_connectors(work: StepInput) -> tuple[list[InboundConnector], InboundConnector | None]:
    connectors = work.api.exchange.get_inbound_connectors(work.tenant_id)
    with work.context.store.engine.connect() as connection:
        saved = find_snapshot(connection, work.tenant_id, run_id=work.upgrade.run_id, reason=SNAPSHOT_BEFORE_RENAME)
    snapshot = InboundConnector.from_exchange(saved.connector) if saved is not None else None
    return connectors, snapshot


def backup(work: StepInput) -> Outcome:
    """Check the safety gate, save the original connector, then rename it to <Name>-BACKUP."""
    connectors, snapshot = _read_connectors(work)
    plan = plan_connectors(work.tenant_id, connectors, work.desired(work.unique_name()), snapshot)
    raise_for(work.tenant_id, list(plan.violations))
    for note in plan.notes:
        work.recorder.event("plan.note", detail=note)

    live = {connector.name.lower(): connector for connector in connectors}
    work.applier(live).apply_all([change for change in plan.changes if change.step is UpgradeState.BACKUP])
    return Advance(UpgradeState.CONNECTOR, f"original connector kept as {plan.backup_name or '(none)'}")


def connector(work: StepInput) -> Outcome:
    """Create (or correct) our connector, then check by a new read that it has the desired settings and is Enabled."""
    name = work.unique_name()
    desired = work.desired(name)
    connectors, snapshot = _read_connectors(work)
    plan = plan_connectors(work.tenant_id, connectors, desired, snapshot)
    raise_for(work.tenant_id, list(plan.violations))

    live = {item.name.lower(): item for item in connectors}
    work.applier(live).apply_all(_without_enable(plan.changes, live))

    ours = _read_ours(work, desired.connector_name)
    if not ours.enabled:
        return _disabled(work, ours)

    original = snapshot or live.get((plan.backup_name or "").lower())
    cloud_services = original.cloud_services_mail_enabled if original is not None else True
    remaining = desired_connector(desired, cloud_services).differences(ours)
    remaining.pop("Name", None)
    if remaining:
        raise StepNotDone(
            f"connector {ours.name!r} in tenant {work.tenant_id} still differs from the desired settings "
            f"after the change: {remaining}"
        )

    grace_until = work.now + work.context.options.grace
    return Advance(
        UpgradeState.GRACE,
        f"connector {ours.name!r} enabled; grace period until {grace_until.isoformat(timespec='seconds')}",
        values={"grace_until": grace_until},
        next_attempt_at=grace_until,
    )


def _without_enable(changes, live: dict[str, InboundConnector]) -> list:
    """Leave `Enabled` out of updates to a disabled connector; `_disabled` handles enabling it.

    Exchange rejects enabling a connector on tenants whose connectors are created
    disabled, so the other fields are corrected first and the enable is tried alone.
    """
    result = []
    for change in changes:
        current = live.get(getattr(change, "connector_name", "").lower()) if isinstance(change, SetConnector) else None
        if current is None or current.enabled or "Enabled" not in change.parameters:
            result.append(change)
            continue
        parameters = {key: value for key, value in change.parameters.items() if key != "Enabled"}
        differences = {key: value for key, value in change.differences.items() if key != "Enabled"}
        if parameters:
            result.append(SetConnector(connector_name=change.connector_name, differences=differences, parameters=parameters))
    return result


def _read_ours(work: StepInput, connector_name: str) -> InboundConnector:
    try:
        ours = work.api.exchange.get_inbound_connector(work.tenant_id, connector_name)
    except NotFound as error:
        raise StepNotDone(f"connector {connector_name!r} is missing in tenant {work.tenant_id} right after it was created") from error
    if not is_ours(ours):
        raise StepNotDone(f"connector {connector_name!r} in tenant {work.tenant_id} lacks the tenanttls marker after the change")
    return ours


def _disabled(work: StepInput, ours: InboundConnector) -> Outcome:
    """Handle a connector that Exchange keeps disabled: try to enable it once, then stop or wait."""
    try:
        work.applier().apply(
            SetConnector(connector_name=ours.name, differences={"Enabled": (False, True)}, parameters={"Enabled": True})
        )
        if _read_ours(work, ours.name).enabled:
            return Wait(work.now, "connector enabled; checking its settings again")
    except InvalidRequest as error:
        logger.warning("enable failed: tenant=%s connector=%s error=%s", work.tenant_id, ours.name, error)

    if work.overrides.allow_disabled_connector:
        return Wait(
            work.now + work.context.options.disabled_poll,
            f"connector {ours.name!r} is disabled; waiting for Microsoft support to enable it",
        )
    violation = Violation(
        "connector_disabled",
        ours.name,
        f"Exchange created connector {ours.name!r} disabled and does not allow enabling it (the tenant's "
        "connectors are created disabled); ask Microsoft support to enable it, then run "
        f"'tenanttls upgrade {work.tenant_id}', or run 'tenanttls upgrade {work.tenant_id} "
        "--allow-disabled-connector' to wait for it",
    )
    raise_for(work.tenant_id, [violation])
    raise AssertionError("unreachable")


def grace(work: StepInput) -> Outcome:
    """Advance once the durable grace timer has passed; wait for it otherwise."""
    until = work.upgrade.grace_until
    if until is not None and work.now < until:
        return Wait(until, f"grace period until {until.isoformat(timespec='seconds')}")
    return Advance(UpgradeState.SWITCHED, "grace period over")


def switched(work: StepInput) -> Outcome:
    """Check connector and accepted domain once more, then switch the relay with the state change."""
    name = work.unique_name()
    connector_name = work.context.settings.connector_name
    ours = _read_ours(work, connector_name)
    if not ours.enabled or (ours.tls_sender_certificate_name or "") != name.lower():
        raise StepNotDone(
            f"connector {connector_name!r} in tenant {work.tenant_id} is not ready for the switch "
            f"(Enabled {ours.enabled}, TlsSenderCertificateName {ours.tls_sender_certificate_name}); "
            "the switch waits so that mail keeps flowing on the legacy certificate"
        )
    if not is_accepted(name, work.api.exchange.get_accepted_domains(work.tenant_id)):
        raise StepNotDone(f"{name} is no longer an accepted domain of tenant {work.tenant_id}; the switch waits")

    certificate = work.context.certificates.ensure_certificate(work.tenant_id, name)
    certificate_id = getattr(certificate, "id", None)
    now = work.now

    def assign(connection) -> None:
        before = relay_assignments.find_assignment(connection, work.tenant_id)
        after = relay_assignments.assign_unique(connection, work.tenant_id, name, certificate_id, now)
        work.recorder.event_in(
            connection,
            "relay.switch",
            {"mode": before.mode if before else None, "certificate_name": before.certificate_name if before else None},
            {"mode": after.mode, "certificate_name": name, "certificate_id": certificate_id},
        )

    return Advance(UpgradeState.VERIFIED, f"relay presents {name}", in_transaction=assign)


def verified(work: StepInput) -> Outcome:
    """Probe the mail flow with the unique certificate; advance once it is accepted and attributed."""
    name = work.unique_name()
    with work.context.store.engine.connect() as connection:
        assignment = relay_assignments.find_assignment(connection, work.tenant_id)
    certificate_id = assignment.certificate_id if assignment is not None else None

    result = work.context.prober.probe(work.api, work.tenant_id, name, certificate_id)
    work.recorder.event("probe", None, {"accepted": result.accepted, "messages": result.messages}, result.detail)
    if not result.accepted:
        raise StepNotDone(f"probe for tenant {work.tenant_id} failed: {result.detail}")
    return Advance(UpgradeState.COMPLETED, result.detail)


STEPS: dict[UpgradeState, Callable[[StepInput], Outcome]] = {
    UpgradeState.AWAITING_CONSENT: awaiting_consent,
    UpgradeState.IDENTITY: identity,
    UpgradeState.DOMAIN: domain,
    UpgradeState.ACCEPTED: accepted,
    UpgradeState.BACKUP: backup,
    UpgradeState.CONNECTOR: connector,
    UpgradeState.GRACE: grace,
    UpgradeState.SWITCHED: switched,
    UpgradeState.VERIFIED: verified,
}
