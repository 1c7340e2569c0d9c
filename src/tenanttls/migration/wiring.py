"""Build an `EngineContext` from settings: store, Microsoft clients, identities, certificates, DNS, prober."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from tenanttls import __version__
from tenanttls.clock import Clock, SystemClock
from tenanttls.config import Settings
from tenanttls.migration.context import EngineContext, EngineOptions, Prober
from tenanttls.migration.prober import ConsistencyProber
from tenanttls.store.db import Store, open_store


def build_issuer(settings: Settings, publisher: Any, store: Store, clock: Clock) -> Any:
    """Return the certificate issuer the settings name: the local CA in DATA/ca, or ACME.

    The certificates package builds it, so an ACME chain is also checked up to `acme_roots`.
    """
    from tenanttls.certificates.factory import build_issuer as build_certificate_issuer

    if settings.issuer_backend == "local-ca":
        # The local CA writes DATA/ca and logs its warning when built, so build it only
        # when a certificate is issued: plan and rollback never issue one.
        return LazyIssuer(settings.issuer_backend, lambda: build_certificate_issuer(settings, store.engine, publisher, clock))
    return build_certificate_issuer(settings, store.engine, publisher, clock)


class LazyIssuer:
    """An issuer built on first use; `backend` is known without building it."""

    def __init__(self, backend: str, build: Callable[[], Any]) -> None:
        self.backend = backend
        self._build = build
        self._issuer: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set in __init__, so `backend` never builds.
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._issuer is None:
                self._issuer = self._build()
        return getattr(self._issuer, name)


def _transport_options(settings: Settings, transport_options: Any) -> Any:
    """Return the transport options with the request budget from `settings` unless the caller set it."""
    from tenanttls.transport.policy import TransportPolicy

    if isinstance(transport_options, TransportPolicy):
        return transport_options
    options = {"requests_per_second": settings.requests_per_second, "burst": settings.request_burst}
    options.update(transport_options or {})
    return options


def build_request_budget(settings: Settings, store: Store, policy: Any) -> Any:
    """Return the store's shared request budget when the settings choose it, else None.

    ``request_budget = "auto"`` shares the budget on PostgreSQL, where several workers
    run, and keeps one per process on SQLite.
    """
    from tenanttls.store.budget import StoreTokenBucket

    choice = settings.request_budget
    if choice == "process" or (choice == "auto" and store.is_sqlite):
        return None
    return StoreTokenBucket(store.engine, policy.requests_per_second, policy.burst)


def build_context(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    options: EngineOptions | None = None,
    prober: Prober | None = None,
    verify: bool | str | Path | None = None,
    transport_options: Any = None,
) -> EngineContext:
    """Return the engine's context for `settings`; close it when done.

    Raises `ConfigurationError` when the app credentials or the key-encryption key are
    not configured, and `StoreError` when the store is not initialised.
    """
    from tenanttls.certificates.identities import IdentityService
    from tenanttls.certificates.keystore import KeyStore
    from tenanttls.certificates.service import CertificateService
    from tenanttls.clients import build_clients
    from tenanttls.dns.publisher import build_publisher

    clock = clock or SystemClock()
    owned_store = store is None
    store = store or open_store(settings.database)
    if verify is None:
        verify = settings.microsoft_ca_bundle or True

    clients = build_clients(
        settings, verify=verify, clock=clock, transport_options=_transport_options(settings, transport_options)
    )
    shared_budget = build_request_budget(settings, store, clients.transport.policy)
    if shared_budget is not None:
        # Same interface as the transport's own TokenBucket; every request now draws from the store.
        clients.transport.bucket = shared_budget
    publisher = build_publisher(settings)
    issuer = build_issuer(settings, publisher, store, clock)
    certificates = CertificateService(
        store.engine,
        issuer,
        KeyStore.from_reference(settings.key_encryption_key),
        clock,
        renewal_fraction=settings.renewal_fraction,
        orders_per_hour=settings.orders_per_hour,
    )
    context = EngineContext(
        store=store,
        settings=settings,
        clock=clock,
        tokens=clients.tokens,
        exchange=clients.exchange,
        graph=clients.graph,
        identities=IdentityService(store.engine, settings.provider_zone, clock),
        certificates=certificates,
        dns=publisher,
        prober=prober or ConsistencyProber(store, settings.connector_name),
        options=options or EngineOptions.from_settings(settings),
        version=__version__,
    )
    context.closers.append(clients.close)
    if owned_store:
        context.closers.append(store.close)
    return context
