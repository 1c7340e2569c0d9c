"""`PortalContext`: what the routes share, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tenanttls.clock import Clock
from tenanttls.portal.checks import CheckRunner
from tenanttls.portal.config import PortalConfig
from tenanttls.portal.oidc import OidcClient
from tenanttls.portal.services import PortalServices


@dataclass
class PortalContext:
    """The portal's configuration, services and clients.

    `clients` is an object with the Microsoft clients as `tokens`, `exchange` and
    `graph` (the engine's `EngineContext`), or None when the portal runs without them.
    The live parts (current connectors, plan, checks) then show that they are unavailable.
    """

    config: PortalConfig
    services: PortalServices
    clock: Clock
    oidc: OidcClient
    clients: Any | None = None
    checks: CheckRunner | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def store(self):
        return self.services.store

    def close(self) -> None:
        """Close what the context opened, newest first."""
        for closer in reversed(self.closers):
            closer()
        self.closers.clear()
