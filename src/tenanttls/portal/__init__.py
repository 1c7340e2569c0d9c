"""The provider portal: Admin Settings > Setup > Connector, the operator view and the JSON API.

`build_portal` wires a `PortalContext` from settings; `tenanttls.portal.app.create_app`
turns it into the FastAPI application that ``tenanttls portal`` serves.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx

from tenanttls.clock import Clock, SystemClock
from tenanttls.config import Settings, resolve_secret
from tenanttls.errors import ConfigurationError
from tenanttls.portal.checks import CheckRunner
from tenanttls.portal.config import PortalConfig, load_session_secret
from tenanttls.portal.context import PortalContext
from tenanttls.portal.oidc import CertificateCredential, OidcClient
from tenanttls.portal.services import PortalServices
from tenanttls.portal.simclock import SimulatorClock, validate_portal_clock

logger = logging.getLogger(__name__)

# Seconds the portal waits for the identity platform during sign-in.
OIDC_TIMEOUT = 15.0


def build_portal(
    settings: Settings,
    *,
    public_url: str | None = None,
    clock: Clock | None = None,
    verify: bool | str | Path | None = None,
    engine_context: Any | None = None,
) -> PortalContext:
    """Return the portal's context for `settings`; close it when done.

    `engine_context` is an engine `EngineContext` to share (tests and the demo pass the
    worker's); without one, the portal builds its own from `settings`. `verify` is the CA
    bundle for the identity platform and Microsoft APIs (default: `microsoft_ca_bundle`).
    `clock` defaults to the one the `portal_clock` setting selects.
    """
    from tenanttls.migration.wiring import build_context

    if verify is None:
        verify = settings.microsoft_ca_bundle or True
    http = httpx.Client(verify=str(verify) if isinstance(verify, Path) else verify, timeout=OIDC_TIMEOUT)
    try:
        clock = clock or _portal_clock(settings, http)
    except ConfigurationError:
        http.close()
        raise

    owned_engine = engine_context is None
    if engine_context is None:
        engine_context = build_context(settings, clock=clock, verify=verify)

    config = PortalConfig(
        public_url=(public_url or settings.portal_url or "http://127.0.0.1:8080").rstrip("/"),
        login_url=settings.login_url,
        client_id=settings.client_id,
        session_secret=load_session_secret(settings.portal_session_secret, settings.data_dir),
        provider_tenant_id=settings.provider_tenant_id,
        operator_role=settings.portal_operator_role,
        connector_name=settings.connector_name,
        legacy_certificate_name=settings.legacy_certificate_name,
        grace=settings.grace,
    )
    oidc = OidcClient(login_url=settings.login_url, client_id=settings.client_id, credential=_credential(settings), http=http, clock=clock)

    context = PortalContext(
        config=config,
        services=PortalServices(engine_context.store, clock, engine_context),
        clock=clock,
        oidc=oidc,
        clients=engine_context,
        checks=CheckRunner(engine_context, clock),
    )
    context.closers.append(http.close)
    if owned_engine:
        context.closers.append(engine_context.close)
    return context


def _portal_clock(settings: Settings, http: httpx.Client) -> Clock:
    """Return the clock that the `portal_clock` setting selects: wall time, or the simulator's clock."""
    if validate_portal_clock(settings.portal_clock) == "system":
        return SystemClock()

    clock = SimulatorClock(settings.login_url, http)
    clock.check()
    logger.info("portal clock follows the simulator: url=%s offset_seconds=%.0f", clock.url, (clock.now() - SystemClock().now()).total_seconds())
    return clock


def _credential(settings: Settings) -> CertificateCredential:
    """Return the app's certificate credential for the sign-in's code redemption."""
    if not settings.client_certificate or not settings.client_key:
        raise ConfigurationError(
            "the portal signs users in as the app registration: set client_certificate (PEM path) and client_key"
        )
    path = Path(settings.client_certificate).expanduser()
    try:
        certificate = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"client_certificate: cannot read {path}: {error.strerror}") from error
    key = resolve_secret(settings.client_key, what="client_key")
    return CertificateCredential(settings.client_id, certificate, key)
