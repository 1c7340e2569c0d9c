"""The connector page's content as plain data, shared by the HTML page and the JSON API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tenanttls.errors import MicrosoftApiError
from tenanttls.migration.states import TERMINAL, UpgradeState
from tenanttls.portal.diagnosis import StopReason, consent_lost, explain_stop
from tenanttls.portal.explanations import Explanation, explanations
from tenanttls.portal.oidc import Principal
from tenanttls.portal.services import TenantOverview
from tenanttls.portal.rendering import format_time
from tenanttls.portal.timeline import STATE_SUMMARIES, TimelineEntry, build_timeline, format_left, forward_times, run_events

logger = logging.getLogger(__name__)

# States from which a customer may start (or start again) the upgrade.
STARTABLE = frozenset({UpgradeState.AWAITING_CONSENT, UpgradeState.ROLLED_BACK})
# States in which the Grant permissions button is offered while no consent is known.
CONSENT_STATES = frozenset({UpgradeState.AWAITING_CONSENT, UpgradeState.ROLLED_BACK, UpgradeState.NEEDS_ATTENTION})
# States in which there is nothing to roll back, or a rollback already runs or ran.
NOT_ROLLBACKABLE = frozenset({UpgradeState.ROLLING_BACK, UpgradeState.ROLLED_BACK, UpgradeState.MANUAL})


@dataclass(frozen=True)
class ConnectorRow:
    """One inbound connector of the tenant, as the page lists it."""

    name: str
    certificate_name: str | None
    enabled: bool
    ours: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "certificate_name": self.certificate_name, "enabled": self.enabled, "managed_by_provider": self.ours}


@dataclass(frozen=True)
class ConnectorPage:
    """Everything the Admin Settings > Setup > Connector page shows."""

    overview: TenantOverview
    state: UpgradeState
    summary: str
    timeline: list[TimelineEntry]
    grace_left: str | None
    connectors: list[ConnectorRow] | None
    connectors_note: str
    explanations: dict[str, Explanation]
    can_grant_consent: bool
    can_start: bool
    can_request_manual: bool
    can_roll_back: bool
    in_progress: bool
    notices: list[str] = field(default_factory=list)
    needs_consent: bool = False
    next_step: str = ""
    grace: timedelta = timedelta(hours=24)
    stop: StopReason | None = None
    show_engine_detail: bool = False

    def to_json(self) -> dict[str, Any]:
        tenant, upgrade = self.overview.tenant, self.overview.upgrade
        manual = self.overview.manual_request
        return {
            "tenant": {"tenant_id": tenant.tenant_id, "initial_domain": tenant.initial_domain, "display_name": tenant.display_name},
            "state": self.state.value,
            "summary": self.summary,
            "unique_name": self.overview.unique_name,
            "consented_at": _iso(upgrade.consented_at),
            "grace_until": _iso(upgrade.grace_until),
            "grace_left": self.grace_left,
            "problem": self.stop.customer if self.stop else None,
            "last_error": upgrade.last_error if self.show_engine_detail else None,
            "stop_kind": upgrade.stop_kind if self.show_engine_detail else None,
            "relay_mode": self.overview.relay_mode,
            "timeline": [entry.to_json() for entry in self.timeline],
            "connectors": [row.to_json() for row in self.connectors] if self.connectors is not None else None,
            "connectors_note": self.connectors_note,
            "manual_request": {"at": _iso(manual.at), "actor": manual.actor} if manual else None,
            "actions": {
                "grant_consent": self.can_grant_consent,
                "start": self.can_start,
                "request_manual": self.can_request_manual,
                "roll_back": self.can_roll_back,
            },
            "next_step": self.next_step,
            "explanations": {key: item.to_json() for key, item in self.explanations.items()},
        }


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def build_connector_page(context, overview: TenantOverview, principal: Principal, *, read_connectors: bool = True) -> ConnectorPage:
    """Return the page's content for `principal`; reads the live connectors when consent exists."""
    config = context.config
    upgrade = overview.upgrade
    state = UpgradeState(upgrade.state)
    now = context.clock.now()

    grace_left = None
    if state is UpgradeState.GRACE and upgrade.grace_until is not None:
        grace_left = format_left(upgrade.grace_until - now)

    connectors, note = _connectors(context, overview, read_connectors)
    running = upgrade.requested and state not in TERMINAL
    has_run = upgrade.requested or upgrade.run_id is not None
    consent_needed = not has_consent(overview) or consent_lost(upgrade)
    grace = tenant_grace(overview, config.grace)
    return ConnectorPage(
        overview=overview,
        state=state,
        summary=summarize(overview),
        timeline=build_timeline(
            state=state.value, consented_at=upgrade.consented_at, grace_until=upgrade.grace_until, events=overview.events, now=now,
            resume_state=upgrade.resume_state, connector_disabled=_new_connector_disabled(connectors, config.connector_name),
        ),
        grace_left=grace_left,
        connectors=connectors,
        connectors_note=note,
        explanations=explanations(
            connector_name=config.connector_name,
            legacy_certificate_name=config.legacy_certificate_name,
            unique_name=overview.unique_name,
            grace=grace,
        ),
        can_grant_consent=principal.can_consent and consent_needed and state in CONSENT_STATES,
        can_start=principal.can_act and state in STARTABLE and not running,
        can_request_manual=principal.can_act and state in STARTABLE | {UpgradeState.NEEDS_ATTENTION} and not running,
        can_roll_back=principal.can_act and has_run and state not in NOT_ROLLBACKABLE,
        in_progress=running,
        needs_consent=consent_needed,
        next_step=next_step(overview),
        stop=_stop_reason(upgrade, config.connector_name),
        grace=grace,
        show_engine_detail=principal.is_operator,
    )


def tenant_grace(overview: TenantOverview, configured: timedelta) -> timedelta:
    """Return the grace period of the tenant's current run, else `configured`.

    Once the connector step set `grace_until`, the grace the engine used is the time from
    that step's end to `grace_until`. NOTE: before that the portal has only its own
    `grace` setting, and a worker started with another ``--grace`` uses its own value.
    """
    upgrade = overview.upgrade
    if upgrade.grace_until is None:
        return configured
    run = run_events(overview.events, upgrade.state)
    started = [event.at for event in run if _event_states(event) == (UpgradeState.CONNECTOR.value, UpgradeState.GRACE.value)]
    if not started:
        return configured
    return timedelta(seconds=round((upgrade.grace_until - started[-1]).total_seconds()))


def _new_connector_disabled(connectors: list[ConnectorRow] | None, connector_name: str) -> bool:
    """True when the connector the upgrade created exists but is disabled."""
    return any(row.ours and not row.enabled and row.name.lower() == connector_name.lower() for row in connectors or ())


def has_consent(overview: TenantOverview) -> bool:
    """True when the tenant's admin consented in the portal, or a run got past the consent step."""
    if overview.upgrade.consented_at is not None:
        return True
    return UpgradeState.AWAITING_CONSENT.value in forward_times(overview.events)


def _stop_reason(upgrade, connector_name: str) -> StopReason | None:
    if upgrade.state != UpgradeState.NEEDS_ATTENTION.value:
        return None
    return explain_stop(upgrade, connector_name=connector_name)


def summarize(overview: TenantOverview) -> str:
    """Return the one-sentence status of the upgrade shown at the top of the page."""
    upgrade = overview.upgrade
    state = UpgradeState(upgrade.state)
    if state is UpgradeState.ROLLED_BACK:
        ended = [event.at for event in overview.events if _event_states(event) == ("rolling_back", "rolled_back")]
        when = f" {format_time(ended[-1])}" if ended else ""
        return f"Rolled back{when}: your previous connector is active again."
    if state is not UpgradeState.AWAITING_CONSENT:
        return STATE_SUMMARIES.get(state.value, state.value)

    if not has_consent(overview):
        if upgrade.requested:
            return "The upgrade is requested and waits for an administrator to grant the permissions."
        return STATE_SUMMARIES[state.value]

    granted = f"Permissions granted {format_time(upgrade.consented_at)}." if upgrade.consented_at else "Permissions granted."
    if upgrade.requested:
        return f"{granted} The upgrade starts once Microsoft 365 applies them; this can take a few minutes."
    return f"{granted} Review the plan, then start the upgrade."


def _event_states(event) -> tuple[str | None, str | None]:
    before = event.before.get("state") if isinstance(event.before, dict) else None
    after = event.after.get("state") if isinstance(event.after, dict) else None
    return before, after


def next_step(overview: TenantOverview) -> str:
    """Return what happens next, for the Actions card, or ``""`` when its buttons show it."""
    upgrade = overview.upgrade
    state = UpgradeState(upgrade.state)
    if state is UpgradeState.MANUAL:
        request = overview.manual_request
        contact = request.after.get("contact") if request is not None and isinstance(request.after, dict) else None
        who = f"at {contact}" if contact else "at the address you gave"
        return (
            f"Support will contact you {who} to agree a time for the manual upgrade. The automatic upgrade is off "
            "for your tenant; contact support if you want it back."
        )
    if state is UpgradeState.ROLLING_BACK:
        return "The rollback runs on its own. Refresh this page to follow it."
    if state is UpgradeState.COMPLETED:
        return "Nothing else to do: the upgrade is complete."
    if state is UpgradeState.ROLLED_BACK and has_consent(overview):
        return "The permissions you granted are still in place, so the upgrade can start again from the plan."
    if upgrade.requested and state not in TERMINAL:
        return "Nothing to do now: the upgrade runs on its own, and this page shows each step as it completes."
    return ""


def _connectors(context, overview: TenantOverview, read: bool) -> tuple[list[ConnectorRow] | None, str]:
    from tenanttls.migration.planner import is_ours

    consented = overview.upgrade.consented_at is not None or overview.upgrade.state != UpgradeState.AWAITING_CONSENT.value
    if context.clients is None or not read:
        return None, "The connector list is not available from this portal."
    if not consented:
        return None, "Shown once the permissions are granted: until then the provider cannot read your connectors."

    try:
        found = context.clients.exchange.get_inbound_connectors(overview.tenant.tenant_id)
    except MicrosoftApiError as error:
        logger.warning("connector read failed: tenant=%s error=%s", overview.tenant.tenant_id, error)
        return None, "The connectors could not be read from Exchange Online just now. Refresh the page in a few minutes."

    rows = [ConnectorRow(c.name, c.tls_sender_certificate_name, c.enabled, is_ours(c)) for c in found]
    return rows, ""
