"""The simulated Microsoft 365 that tenanttls's clients, the demo and the tests run against.

It serves, over HTTPS on one port, the Microsoft identity platform (client-credentials
tokens with a certificate assertion, admin consent), Microsoft Graph ``/v1.0/domains`` and
the Exchange Online admin API (``InvokeCommand``), with propagation delays, injected faults
and an inspection API under ``/_simulator/``. See docs/simulator.md.

It imports nothing from tenanttls's client packages, so it cannot share their mistakes.
"""

from __future__ import annotations

from tenanttls.simulator.server import Simulator, SimulatorService
from tenanttls.simulator.state import SimulatorState, TenantMailView

__all__ = ["Simulator", "SimulatorService", "SimulatorState", "TenantMailView"]
