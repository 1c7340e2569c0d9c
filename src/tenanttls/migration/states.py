"""The states of a tenant's upgrade and the transitions between them.

A state names the work still to do: a tenant in `DOMAIN` has its identity and
certificate, and the domain step adds and verifies the unique name. The forward
path is `FORWARD`; rollback can start from any state but `ROLLED_BACK`.
"""

from __future__ import annotations

from enum import Enum


class UpgradeState(str, Enum):
    """One tenant's position in the upgrade, stored in `upgrades.state`."""

    # No consent yet; the step checks whether a token can be obtained for the tenant.
    AWAITING_CONSENT = "awaiting_consent"
    # Allocate the unique name and issue its certificate.
    IDENTITY = "identity"
    # Add the name in Graph, publish the MS= TXT record, verify.
    DOMAIN = "domain"
    # Wait until Get-AcceptedDomain lists the name (propagation takes minutes to hours).
    ACCEPTED = "accepted"
    # Save the original connector, then rename it to <Name>-BACKUP.
    BACKUP = "backup"
    # Create the new connector with the desired settings and check that it is Enabled.
    CONNECTOR = "connector"
    # Wait out the grace period (a durable timer in upgrades.grace_until).
    GRACE = "grace"
    # Switch the relay to the unique certificate (one transaction with the state change).
    SWITCHED = "switched"
    # Probe: mail presented with the unique certificate is accepted and attributed to the tenant.
    VERIFIED = "verified"
    # Done. The -BACKUP connector stays for rollback.
    COMPLETED = "completed"
    # Rollback under way: relay back to legacy, delete ours, rename -BACKUP back, compare with the snapshot.
    ROLLING_BACK = "rolling_back"
    # Rollback finished; the tenant is as before the upgrade (the accepted domain may stay).
    ROLLED_BACK = "rolled_back"
    # Stopped: a safety check or a permanent error needs an operator. `last_error` has the reason and
    # `stop_kind` its `StopKind`.
    NEEDS_ATTENTION = "needs_attention"
    # Support moved the tenant to a manual upgrade; the engine leaves it alone.
    MANUAL = "manual"

    def __str__(self) -> str:
        return self.value


FORWARD = (
    UpgradeState.AWAITING_CONSENT,
    UpgradeState.IDENTITY,
    UpgradeState.DOMAIN,
    UpgradeState.ACCEPTED,
    UpgradeState.BACKUP,
    UpgradeState.CONNECTOR,
    UpgradeState.GRACE,
    UpgradeState.SWITCHED,
    UpgradeState.VERIFIED,
    UpgradeState.COMPLETED,
)

# States the worker never schedules on its own: an operator action moves the tenant on.
TERMINAL = frozenset(
    {UpgradeState.COMPLETED, UpgradeState.ROLLED_BACK, UpgradeState.NEEDS_ATTENTION, UpgradeState.MANUAL}
)

# States in which nothing has been changed in the tenant yet, so rollback has nothing to undo there.
BEFORE_CHANGES = frozenset({UpgradeState.AWAITING_CONSENT, UpgradeState.IDENTITY})


def next_state(state: UpgradeState) -> UpgradeState:
    """Return the state after `state` on the forward path."""
    index = FORWARD.index(state)
    if index + 1 >= len(FORWARD):
        raise ValueError(f"{state} is the last state of the upgrade")
    return FORWARD[index + 1]


def progress(state: UpgradeState) -> int:
    """Return how many forward steps are done in `state` (0 to 9), for progress displays."""
    if state in FORWARD:
        return FORWARD.index(state)
    return 0


def parse_state(value: str) -> UpgradeState:
    """Return the state named `value`, or raise ValueError listing the valid names."""
    try:
        return UpgradeState(value)
    except ValueError:
        names = ", ".join(state.value for state in UpgradeState)
        raise ValueError(f"unknown upgrade state {value!r}; valid states: {names}") from None
