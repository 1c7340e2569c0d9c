"""Step outcomes: advance to the next state, wait, or stop for an operator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Callable

from sqlalchemy.engine import Connection

from tenanttls.errors import TenantTlsError
from tenanttls.migration.states import UpgradeState


@dataclass(frozen=True)
class Advance:
    """The step's work is done: move to `to`.

    `values` are further columns of the upgrade row to write with the state change,
    and `in_transaction` runs in the same transaction (the relay switch uses it).
    `next_attempt_at` None means "due at once" unless `to` is terminal.
    """

    to: UpgradeState
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    in_transaction: Callable[[Connection], Any] | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class Wait:
    """Nothing is wrong, but the step cannot finish yet: run it again at `until`."""

    until: datetime
    reason: str


class StopKind(str, Enum):
    """The kind of a step's stop, stored in `upgrades.stop_kind` while the tenant is in needs_attention.

    The portal chooses its explanation by the kind, so rewording a `Stop.reason` cannot change it.
    """

    # A token request failed for missing consent after `consent_propagation`. A new grant in the portal
    # resumes the upgrade.
    CONSENT = "consent"
    # Exchange created our connector disabled and rejects enabling it (``--allow-disabled-connector``).
    CONNECTOR_DISABLED = "connector_disabled"
    # The safety gate rejected the plan, and the reason names the override flag if one exists.
    SAFETY = "safety"
    # A transient error (throttling, 5xx, DNS, a check that may pass later) lasted `max_attempts` attempts.
    GAVE_UP = "gave_up"
    # Get-AcceptedDomain did not list the unique name within `accepted_deadline`.
    TIMED_OUT = "timed_out"
    # Microsoft denied a call because the app lacks a permission or an Exchange role (`PermissionDenied`).
    PERMISSIONS = "permissions"
    # Microsoft rejected the parameters of a request (`InvalidRequest`).
    REJECTED = "rejected"
    # Microsoft Entra ID does not know the tenant id (AADSTS90002).
    UNKNOWN_TENANT = "unknown_tenant"
    # Rollback cannot restore the original connector: it and its -BACKUP both exist, or neither does.
    ROLLBACK_BLOCKED = "rollback_blocked"
    # Any other error, such as a rejected app credential, the configuration or the store.
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Stop:
    """The step cannot go on without an operator: the tenant goes to needs_attention.

    `kind` is stored in `upgrades.stop_kind` and `reason` in `upgrades.last_error`.
    """

    kind: StopKind
    reason: str


Outcome = Advance | Wait | Stop


class StepNotDone(TenantTlsError):
    """A check after the step's changes failed, but may pass later (DNS not yet visible to Graph).

    The runner retries the step with backoff, as for a transient error.
    """
