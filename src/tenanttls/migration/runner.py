"""Run one step of one tenant and record its outcome durably.

`run_step` calls the step for the tenant's state, then writes the outcome to the
upgrade row under the worker's lease: a state change (with its audit event), a
wait with its reason (`wait_reason`, which every other outcome clears), a retry
with backoff, or needs_attention with the reason and its `StopKind`.
Transient errors (throttling, 5xx, DNS, a check that may pass later) are retried
until `max_attempts`. Missing consent waits while a recent grant may not be applied
yet (`consent_propagation`). Every other error stops the tenant at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import OperationalError

from tenanttls.errors import (
    CertificateError,
    ConsentRequired,
    DnsError,
    InvalidRequest,
    MicrosoftServiceError,
    NotFound,
    PermissionDenied,
    PlanSafetyError,
    TenantTlsError,
    Throttled,
    UnexpectedResponse,
)
from tenanttls.migration import faults
from tenanttls.migration.context import CountingApi, EngineContext
from tenanttls.migration.outcomes import Advance, Outcome, StepNotDone, Stop, StopKind, Wait
from tenanttls.migration.recorder import Recorder
from tenanttls.migration.rollback import rolling_back
from tenanttls.migration.states import TERMINAL, UpgradeState
from tenanttls.migration.steps import STEPS, StepInput
from tenanttls.store.upgrades import LeaseLost, UpgradeRecord, add_api_calls, get_upgrade, renew_lease, update_upgrade
from tenanttls.transport.retry import backoff_delay

logger = logging.getLogger(__name__)

TRANSIENT = (
    MicrosoftServiceError,
    Throttled,
    UnexpectedResponse,
    NotFound,
    DnsError,
    CertificateError,
    StepNotDone,
    OperationalError,
)

# The kinds of stop of errors that no retry can fix. Any other such `TenantTlsError` stops the tenant as OTHER.
IMMEDIATE_STOP_KINDS = (
    (PermissionDenied, StopKind.PERMISSIONS),
    (InvalidRequest, StopKind.REJECTED),
)


@dataclass(frozen=True)
class Retry:
    """A transient failure: run the step again at `until`."""

    until: object
    reason: str


@dataclass(frozen=True)
class StepReport:
    """The result of one step, for logs and the worker's loop."""

    tenant_id: str
    state_before: UpgradeState
    state_after: UpgradeState
    kind: str  # "advance", "wait", "retry", "stop" or "skip"
    detail: str
    api_calls: int
    due_now: bool
    stop_kind: StopKind | None = None  # set when `kind` is "stop"


def step_for(state: UpgradeState):
    """Return the step function of `state`, or None for a terminal state."""
    if state is UpgradeState.ROLLING_BACK:
        return rolling_back
    return STEPS.get(state)


def run_step(context: EngineContext, tenant_id: str, owner: str) -> StepReport:
    """Run the step of the tenant's current state under `owner`'s lease and record the outcome.

    Raises `LeaseLost` when another worker took the tenant over meanwhile; nothing
    is recorded then, and the new owner repeats the step (steps are idempotent).
    """
    with context.store.write() as connection:
        renew_lease(connection, tenant_id, owner, context.clock.now(), context.options.lease)
        upgrade = get_upgrade(connection, tenant_id)

    state = UpgradeState(upgrade.state)
    step = step_for(state)
    if step is None:
        return StepReport(tenant_id, state, state, "skip", "terminal state", 0, False)

    logger.info("step: tenant=%s state=%s attempt=%d", tenant_id, state.value, upgrade.attempts + 1)
    api = CountingApi(context)
    recorder = Recorder(context, tenant_id, state.value, upgrade.run_id)
    outcome = _call(step, StepInput(context, api, upgrade, recorder), upgrade, state, context)

    report = _commit(context, upgrade, state, owner, outcome, api.counter.count)
    _log(report, upgrade)
    return report


def _call(step, work: StepInput, upgrade: UpgradeRecord, state: UpgradeState, context: EngineContext) -> Outcome | Retry:
    try:
        return step(work)
    except LeaseLost:
        raise
    except ConsentRequired as error:
        return _consent_missing(context, upgrade, state, error)
    except TRANSIENT as error:
        return _retry_or_stop(context, upgrade, error)
    except PlanSafetyError as error:
        return Stop(_safety_kind(error), str(error))
    except TenantTlsError as error:
        logger.warning("step failed: tenant=%s state=%s error=%s: %s", upgrade.tenant_id, state.value, type(error).__name__, error)
        return Stop(_error_kind(error), str(error))


def _safety_kind(error: PlanSafetyError) -> StopKind:
    """Return CONNECTOR_DISABLED when the gate rejected a connector that Exchange keeps disabled, else SAFETY."""
    codes = {violation.code for violation in getattr(error, "violations", ())}
    return StopKind.CONNECTOR_DISABLED if "connector_disabled" in codes else StopKind.SAFETY


def _error_kind(error: TenantTlsError) -> StopKind:
    for error_type, kind in IMMEDIATE_STOP_KINDS:
        if isinstance(error, error_type):
            return kind
    return StopKind.OTHER


# A re-check costs one token request. Checked each minute, a grant that applies after two minutes
# lets the step go on then, not at the end of the window.
CONSENT_RECHECK = timedelta(minutes=1)


def _consent_missing(context: EngineContext, upgrade: UpgradeRecord, state: UpgradeState, error: ConsentRequired) -> Wait | Stop:
    """Return a Wait while a recent admin consent may not be applied yet, and a Stop after `consent_propagation`.

    A fresh grant can take minutes to take effect, and token requests fail with a consent
    error (AADSTS65001, AADSTS700016) meanwhile. The window starts at `consented_at`, which
    is the latest grant recorded by the portal or else the time the engine first obtained a
    token. The step runs again every `CONSENT_RECHECK` (or `consent_poll`, if shorter), and
    the last time at the window's end.
    """
    now = context.clock.now()
    consented_at = upgrade.consented_at
    window_end = consented_at + context.options.consent_propagation if consented_at is not None else None
    if window_end is not None and now < window_end:
        until = min(now + min(CONSENT_RECHECK, context.options.consent_poll), window_end)
        logger.info(
            "consent wait: tenant=%s step=%s consented_at=%s until=%s window_end=%s error=%s",
            upgrade.tenant_id, state.value, _moment(consented_at), _moment(until), _moment(window_end), error,
        )
        return Wait(
            until,
            f"the admin consent recorded at {_moment(consented_at)} may not be applied yet. The step runs again "
            f"at {_moment(until)} and stops for consent after {_moment(window_end)} ({error})",
        )

    # Microsoft's text alone: the error's own advice ("retry after a few minutes") would contradict the next step.
    cause = f"Microsoft Entra ID: {error.detail}" if error.detail else str(error)
    hint = ". If every tenant stops this way, check that client_id is the app's application (client) id" if error.app_unknown else ""
    return Stop(
        StopKind.CONSENT,
        f"consent is missing or was withdrawn ({cause}); ask the tenant's admin to grant it again in the portal, "
        f"which resumes the upgrade, or after a grant made another way run 'tenanttls upgrade {upgrade.tenant_id}'{hint}"
    )


def _moment(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _retry_or_stop(context: EngineContext, upgrade: UpgradeRecord, error: Exception) -> Retry | Stop:
    attempts = upgrade.attempts + 1
    # Our own errors carry a full sentence; only foreign ones (such as SQLAlchemy's) need their type named.
    reason = str(error) if isinstance(error, TenantTlsError) else f"{type(error).__name__}: {error}"
    if attempts >= context.options.max_attempts:
        return Stop(
            StopKind.GAVE_UP,
            f"{reason} (gave up after {attempts} attempts; fix the cause, then run 'tenanttls upgrade {upgrade.tenant_id}')",
        )

    options = context.options
    delay = backoff_delay(attempts, base=options.retry_base.total_seconds(), cap=options.retry_cap.total_seconds())
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        delay = max(delay, float(retry_after))
    logger.warning(
        "step will retry: tenant=%s state=%s attempt=%d delay=%.1fs error=%s",
        upgrade.tenant_id,
        upgrade.state,
        attempts,
        delay,
        reason,
    )
    return Retry(context.clock.now() + timedelta(seconds=delay), reason)


def _commit(
    context: EngineContext, upgrade: UpgradeRecord, state: UpgradeState, owner: str, outcome: Outcome | Retry, calls: int
) -> StepReport:
    now = context.clock.now()
    tenant_id = upgrade.tenant_id
    recorder = Recorder(context, tenant_id, state.value, upgrade.run_id)

    with context.store.write() as connection:
        add_api_calls(connection, tenant_id, calls)
        if isinstance(outcome, Advance):
            terminal = outcome.to in TERMINAL
            next_at = None if terminal else (outcome.next_attempt_at or now)
            update_upgrade(
                connection, tenant_id, owner=owner, expected_state=state.value,
                state=outcome.to.value, state_entered_at=now, attempts=0, last_error=None,
                next_attempt_at=next_at, resume_state=None, **outcome.values,
            )
            if outcome.in_transaction is not None:
                outcome.in_transaction(connection)
            recorder.event_in(connection, "state", {"state": state.value}, {"state": outcome.to.value}, outcome.detail)
            report = StepReport(tenant_id, state, outcome.to, "advance", outcome.detail, calls, next_at is not None and next_at <= now)

        elif isinstance(outcome, Wait):
            update_upgrade(
                connection, tenant_id, owner=owner, expected_state=state.value, next_attempt_at=outcome.until, last_error=None,
                wait_reason=outcome.reason,
            )
            report = StepReport(tenant_id, state, state, "wait", outcome.reason, calls, outcome.until <= now)

        elif isinstance(outcome, Retry):
            update_upgrade(
                connection, tenant_id, owner=owner, expected_state=state.value,
                attempts=upgrade.attempts + 1, last_error=outcome.reason, next_attempt_at=outcome.until, wait_reason=None,
            )
            recorder.event_in(connection, "retry", None, {"attempt": upgrade.attempts + 1}, outcome.reason)
            report = StepReport(tenant_id, state, state, "retry", outcome.reason, calls, False)

        else:
            update_upgrade(
                connection, tenant_id, owner=owner, expected_state=state.value,
                state=UpgradeState.NEEDS_ATTENTION.value, state_entered_at=now, resume_state=state.value,
                last_error=outcome.reason, stop_kind=outcome.kind.value, next_attempt_at=None, attempts=0,
            )
            after = {"state": UpgradeState.NEEDS_ATTENTION.value, "stop_kind": outcome.kind.value}
            recorder.event_in(connection, "state", {"state": state.value}, after, outcome.reason)
            report = StepReport(
                tenant_id, state, UpgradeState.NEEDS_ATTENTION, "stop", outcome.reason, calls, False, stop_kind=outcome.kind
            )

    if report.kind in ("advance", "stop"):
        faults.boundary("step", tenant_id)
    return report


def _log(report: StepReport, upgrade: UpgradeRecord) -> None:
    if report.kind == "stop":
        logger.warning(
            "step stopped, tenant needs attention: tenant=%s state=%s stop_kind=%s reason=%s",
            report.tenant_id, report.state_before.value, report.stop_kind, report.detail,
        )
    else:
        logger.info(
            "step done: tenant=%s state=%s outcome=%s next=%s calls=%d detail=%s",
            report.tenant_id,
            report.state_before.value,
            report.kind,
            report.state_after.value,
            report.api_calls,
            report.detail,
        )


