"""Crash points for the crash-recovery tests: the process kills itself at a step boundary.

With ``TENANTTLS_CRASH_AT=KIND:COUNT`` set, the worker sends itself SIGKILL when it
reaches boundary number COUNT of that kind. Kind ``change`` is a change applied to
Microsoft 365 whose step is not yet committed, and kind ``step`` is a committed state
change. Without the variable this module does nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

logger = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "TENANTTLS_CRASH_AT"

_lock = threading.Lock()
_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    value = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if not value:
        return None
    kind, _, count = value.partition(":")
    try:
        return kind, int(count)
    except ValueError:
        logger.warning("invalid %s=%r ignored: use KIND:COUNT, for example step:3", ENVIRONMENT_VARIABLE, value)
        return None


def boundary(kind: str, tenant_id: str) -> None:
    """Count one boundary of `kind`; kill the process when the configured count is reached."""
    target = _target()
    if target is None or target[0] != kind:
        return

    with _lock:
        _counts[kind] = _counts.get(kind, 0) + 1
        reached = _counts[kind] == target[1]
    if reached:
        logger.warning("crash point reached, killing the process: kind=%s count=%d tenant=%s", kind, target[1], tenant_id)
        os.kill(os.getpid(), signal.SIGKILL)
