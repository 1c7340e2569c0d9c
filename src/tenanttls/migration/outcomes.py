"""Step outcomes: advance to the next state, wait, or stop for an operator."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True)
class Stop:
    """The step cannot go on without an operator: the tenant goes to needs_attention."""

    reason: str


Outcome = Advance | Wait | Stop


class StepNotDone(TenantTlsError):
    """A check after the step's changes failed, but may pass later (DNS not yet visible to Graph).

    The runner retries the step with backoff, as for a transient error.
    """
