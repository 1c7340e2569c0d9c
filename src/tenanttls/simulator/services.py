"""The objects every request handler of the simulator uses, shared through the Starlette app."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tenanttls.clock import Clock
from tenanttls.simulator.faults import RequestGuard
from tenanttls.simulator.state import SimulatorState
from tenanttls.simulator.tokens import TokenIssuer


@dataclass
class Services:
    """State, token issuer, clock, request guard, the nameserver that domain verification queries,
    and the SMTP front door's address while it runs."""

    state: SimulatorState
    issuer: TokenIssuer
    clock: Clock
    guard: RequestGuard
    dns_nameserver: str | None = None
    smtp_address: str | None = None  # "host:port" of the SMTP front door; None when it does not run


def services_of(request: Request) -> Services:
    """Return the `Services` of the app that received `request`."""
    return request.app.state.services


def base_url(request: Request) -> str:
    """Return ``https://host:port`` as the client addressed the simulator (one listener stands for every Microsoft host)."""
    return f"{request.url.scheme}://{request.url.netloc}"
