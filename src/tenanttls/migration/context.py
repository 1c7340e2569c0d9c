"""The engine's context: the store, the Microsoft clients, the identity, certificate and DNS services.

`EngineContext` is built once per process (`tenanttls.migration.wiring` builds it
from settings) and shared by the worker's threads; every member is thread-safe.
`CountingApi` wraps the Microsoft clients for one step and counts their calls.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from tenanttls.clock import Clock
from tenanttls.config import Settings
from tenanttls.store.db import Store


class CertificateSource(Protocol):
    """The part of `tenanttls.certificates.service.CertificateService` the engine uses."""

    def ensure_certificate(self, tenant_id: str, name: str) -> Any:
        """Return the tenant's active certificate for `name` (with an `id`), issuing one when missing."""
        ...


class Prober(Protocol):
    """Checks that mail presented with the tenant's unique certificate is accepted and attributed."""

    def probe(self, api: "CountingApi", tenant_id: str, name: str, certificate_id: int | None) -> "ProbeResult":
        """Probe the tenant's mail flow and return the outcome; raise `MicrosoftApiError` on a failed read."""
        ...


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of a probe: `accepted` only when every message was accepted and attributed."""

    accepted: bool
    detail: str
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class EngineOptions:
    """Timing of the state machine; the demo and tests shorten them."""

    grace: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    # Backoff after transient errors: full jitter up to min(cap, base * 2**(attempt-1)).
    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(minutes=30)
    consent_poll: timedelta = timedelta(minutes=15)
    # For this long after `consented_at`, a token request that fails for missing consent makes the
    # step wait instead of stopping. The step runs again every minute, the last time at the window's end.
    consent_propagation: timedelta = timedelta(minutes=15)
    accepted_poll: timedelta = timedelta(minutes=2)
    # After this long without Get-AcceptedDomain listing the name, the tenant needs attention.
    accepted_deadline: timedelta = timedelta(hours=48)
    disabled_poll: timedelta = timedelta(hours=1)
    dns_visible_timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "EngineOptions":
        """Return options with grace, lease, max_attempts and consent_propagation from `settings`, then `overrides`."""
        values: dict[str, Any] = {
            "grace": settings.grace,
            "lease": settings.lease,
            "max_attempts": settings.max_attempts,
            "consent_propagation": settings.consent_propagation,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def default_owner() -> str:
    """Return a lease owner id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass
class EngineContext:
    """Everything the steps use. `exchange`, `graph` and `tokens` are the Microsoft clients."""

    store: Store
    settings: Settings
    clock: Clock
    tokens: Any
    exchange: Any
    graph: Any
    identities: Any
    certificates: CertificateSource
    dns: Any
    prober: Prober
    options: EngineOptions
    version: str = "0"
    actor: str = field(default_factory=lambda: f"worker:{default_owner()}")
    # Extra objects to close with the context (transports, servers started for it).
    closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Close what the context opened, newest first."""
        for closer in reversed(self.closers):
            closer()
        self.closers.clear()


class CallCounter:
    """A thread-safe count of Microsoft API calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, number: int = 1) -> None:
        with self._lock:
            self.count += number


class _Counted:
    """A proxy that counts each call of a public method on the wrapped client."""

    def __init__(self, target: Any, counter: CallCounter) -> None:
        self._target = target
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._counter.add()
            return attribute(*args, **kwargs)

        return counted


class CountingApi:
    """The Microsoft clients of one step, with Exchange and Graph calls counted in `counter`.

    A call counts once even when the transport retried it or followed
    ``@odata.nextLink`` pages; the simulator's own counters show raw requests.
    Token requests are not counted, because MSAL serves most of them from its cache.
    """

    def __init__(self, context: EngineContext, counter: CallCounter | None = None) -> None:
        self.counter = counter or CallCounter()
        self.exchange = _Counted(context.exchange, self.counter)
        self.graph = _Counted(context.graph, self.counter)
        self.tokens = context.tokens
