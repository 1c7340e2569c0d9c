"""Fixtures for the portal tests: the portal served by uvicorn on 127.0.0.1, in front of the
engine, the store and the simulator that `engine_factory` starts, all on one ManualClock.

Tenants in the simulator:

- `TENANT_A` (customer, no consent yet): Global Administrator `ADMIN_A`, Exchange
  Administrator `EXCHANGE_ADMIN_A`, and `READER_A` without an admin role.
- `TENANT_B` (customer, consented): Global Administrator `ADMIN_B`.
- `PROVIDER_TENANT` (the provider's own): `OPERATOR` with the Portal.Operator app role,
  and `STAFF` without it.

`signed_in(user)` returns an httpx client whose session belongs to `user`: it walks the
real sign-in (portal → simulator authorize → portal callback), picking the user through
the simulator's ``/_simulator/signin/select`` hook.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx
import pytest
import uvicorn

from tenanttls.migration.service import add_tenant
from tenanttls.portal import build_portal
from tenanttls.portal.app import create_app
from tenanttls.store.tenants import TenantRecord
from tests.fixtures.simulator import make_tenant

TENANT_A = "a0000000-0000-4000-8000-00000000000a"
TENANT_B = "b0000000-0000-4000-8000-00000000000b"
PROVIDER_TENANT = "c0000000-0000-4000-8000-00000000000c"

ADMIN_A = "adele@tenanta.onmicrosoft.com"
EXCHANGE_ADMIN_A = "xavier@tenanta.onmicrosoft.com"
READER_A = "reed@tenanta.onmicrosoft.com"
ADMIN_B = "bianca@tenantb.onmicrosoft.com"
OPERATOR = "olga@provider.onmicrosoft.com"
STAFF = "nate@provider.onmicrosoft.com"


def _tenants() -> list[dict[str, Any]]:
    tenant_a = make_tenant(TENANT_A, "tenanta.onmicrosoft.com", display_name="Tenant A", consent=False)
    tenant_a["users"] = [
        {"upn": ADMIN_A, "display_name": "Adele Vance", "directory_roles": ["Global Administrator"]},
        {"upn": EXCHANGE_ADMIN_A, "display_name": "Xavier", "directory_roles": ["Exchange Administrator"]},
        {"upn": READER_A, "display_name": "Reed"},
    ]
    tenant_b = make_tenant(TENANT_B, "tenantb.onmicrosoft.com", display_name="Tenant B")
    tenant_b["users"] = [{"upn": ADMIN_B, "display_name": "Bianca", "directory_roles": ["Global Administrator"]}]
    provider = make_tenant(PROVIDER_TENANT, "provider.onmicrosoft.com", display_name="Provider", inbound_connectors=[])
    provider["users"] = [
        {"upn": OPERATOR, "display_name": "Olga Operator", "app_roles": ["Portal.Operator"]},
        {"upn": STAFF, "display_name": "Nate"},
    ]
    return [tenant_a, tenant_b, provider]


class PortalServer:
    """The portal app under uvicorn in a thread, on a socket bound before the simulator starts."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self._socket = sock
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True, name="portal")

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the portal did not start within 10 s")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self._socket.close()


@dataclass
class PortalEnvironment:
    """The running portal, the engine harness behind it and helpers to sign in."""

    base_url: str
    harness: Any
    context: Any

    @property
    def simulator(self):
        return self.harness.simulator

    @property
    def clock(self):
        return self.harness.clock

    def client(self) -> httpx.Client:
        """Return a client for the portal that follows no redirects and trusts the simulator's CA."""
        return httpx.Client(base_url=self.base_url, verify=str(self.simulator.ca_path), follow_redirects=False, timeout=30)

    def sign_in(self, client: httpx.Client, upn: str, *, operator: bool = False) -> httpx.Response:
        """Walk the sign-in as `upn` and return the portal's last response (after the callback)."""
        segment = PROVIDER_TENANT if operator else "organizations"
        selected = httpx.post(
            f"{self.simulator.base_url}/_simulator/signin/select",
            json={"user": upn, "tenant": segment},
            verify=str(self.simulator.ca_path),
        )
        assert selected.status_code == 200, selected.text

        start = client.get("/operator/sign-in" if operator else "/sign-in")
        assert start.status_code == 303, start.text
        authorize = client.get(start.headers["location"])
        assert authorize.status_code == 302, authorize.text
        return client.get(authorize.headers["location"])

    def signed_in(self, upn: str, *, operator: bool = False) -> httpx.Client:
        client = self.client()
        answer = self.sign_in(client, upn, operator=operator)
        assert answer.status_code == 303, answer.text
        return client

    def csrf(self, client: httpx.Client) -> str:
        """Return the session's CSRF token, as a page's form carries it."""
        return client.get("/api/me").json()["csrf_token"]

    def upgrade(self, tenant_id: str):
        return self.harness.upgrade(tenant_id)


def csrf_from(page: str) -> str:
    """Return the CSRF token of the first form on `page`."""
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def portal_factory(engine_factory) -> Iterator[Callable[..., PortalEnvironment]]:
    """Start the engine, the simulator and the portal: ``portal_factory(**engine_options)``."""
    started: list[Callable[[], None]] = []

    def build(*, portal_settings: dict[str, Any] | None = None, share_clock: bool = True, **options: Any) -> PortalEnvironment:
        """Start a portal; `portal_settings` replace settings, and `share_clock=False` lets the portal pick its clock."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted connections inherit TCP_NODELAY, which uvicorn does not set on a socket it is given.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

        harness = engine_factory(_tenants(), **options)
        _register_redirect_uris(harness.simulator, base_url)
        _import_customers(harness)

        settings = dataclasses.replace(harness.settings, provider_tenant_id=PROVIDER_TENANT, **(portal_settings or {}))
        context = build_portal(
            settings, public_url=base_url, clock=harness.clock if share_clock else None, verify=harness.simulator.ca_path,
            engine_context=harness.context,
        )
        started.append(context.close)
        server = PortalServer(create_app(context), sock)
        server.start()
        started.append(server.stop)
        return PortalEnvironment(base_url, harness, context)

    yield build
    for stop in reversed(started):
        stop()


@pytest.fixture
def portal(portal_factory) -> PortalEnvironment:
    """A running portal with the default engine options (24-hour grace)."""
    return portal_factory()


def _register_redirect_uris(simulator, base_url: str) -> None:
    app = simulator.state.app
    app["redirect_uris"] = [*app["redirect_uris"], f"{base_url}/auth/callback", f"{base_url}/consent/callback"]
    simulator.state.set_app(app)


def _import_customers(harness) -> None:
    """Add the two customer tenants to the store, as ``tenanttls tenants import`` does."""
    now = harness.clock.now()
    with harness.store.write() as connection:
        for tenant_id, domain, name in ((TENANT_A, "tenanta.onmicrosoft.com", "Tenant A"), (TENANT_B, "tenantb.onmicrosoft.com", "Tenant B")):
            add_tenant(
                connection, TenantRecord(tenant_id, domain, name),
                legacy_certificate_name=harness.settings.legacy_certificate_name, now=now, actor="test",
            )
