"""`build_clients`: the token provider and the Exchange and Graph clients, wired to one transport.

Only base URLs and credentials come from the settings, so the same code runs against
Microsoft 365 and against the simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tenanttls.clock import Clock
from tenanttls.config import Settings, resolve_secret
from tenanttls.errors import ConfigurationError
from tenanttls.exchange.client import DEFAULT_PAGE_SIZE, ExchangeClient
from tenanttls.graph.client import GraphDomainsClient
from tenanttls.identity.tokens import TokenProvider
from tenanttls.transport.http import Transport
from tenanttls.transport.network import require_https
from tenanttls.transport.policy import TransportPolicy

_THUMBPRINT = re.compile(r"^[0-9A-Fa-f:]{40,59}$")


@dataclass
class MicrosoftClients:
    """The three Microsoft clients and the transport they share. Close it when done."""

    tokens: TokenProvider
    exchange: ExchangeClient
    graph: GraphDomainsClient
    transport: Transport

    def close(self) -> None:
        """Close the shared connection pool and the token provider's session."""
        self.transport.close()
        self.tokens.close()

    def __enter__(self) -> "MicrosoftClients":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_certificate(setting: str) -> str:
    """Return the app's certificate PEM from the `client_certificate` path, or a thumbprint given instead."""
    if not setting:
        raise ConfigurationError("client_certificate is not set; give the path of the app's certificate (PEM)")
    if _THUMBPRINT.match(setting.strip()) and not Path(setting).exists():
        return setting.strip()

    path = Path(setting).expanduser()
    try:
        return path.read_text(encoding="ascii")
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise ConfigurationError(
            f"client_certificate: cannot read {path}: {reason}; give the path of the app's certificate (PEM)"
        ) from error
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"client_certificate: {path} is not PEM text (byte {error.start} is not ASCII); "
            "give the app's certificate in PEM form"
        ) from error


def build_clients(
    settings: Settings,
    *,
    verify: bool | str | Path = True,
    transport_options: TransportPolicy | Mapping[str, Any] | None = None,
    clock: Clock | None = None,
    exchange_page_size: int = DEFAULT_PAGE_SIZE,
) -> MicrosoftClients:
    """Return the token provider and the Exchange and Graph clients for `settings`.

    The private key is read through `resolve_secret(settings.client_key)`, the
    certificate from the path in `settings.client_certificate`. `verify` is True, False
    or the path of a CA bundle (the simulator's ``ca.pem``); True means the
    `microsoft_ca_bundle` setting when it is set. `transport_options` is a
    `TransportPolicy` or a mapping of its field names. `clock` drives token expiry and
    the sleeps between retries. `exchange_page_size` is the page size the Exchange client
    requests (``Prefer: odata.maxpagesize``).

    Raises `ConfigurationError` before any request when a setting is missing or invalid,
    such as a base URL that is not https.
    """
    for setting in ("login_url", "graph_url", "exchange_url"):
        require_https(setting, getattr(settings, setting))
    if not settings.client_id:
        raise ConfigurationError("client_id is not set; give the app registration's application (client) id")
    if not settings.client_key:
        raise ConfigurationError("client_key is not set; give a secret reference such as 'file:/path/app.key'")

    if verify is True and getattr(settings, "microsoft_ca_bundle", ""):
        verify = settings.microsoft_ca_bundle

    key = resolve_secret(settings.client_key, what="client_key")
    certificate = _read_certificate(settings.client_certificate)
    tokens = TokenProvider(
        settings.client_id, key, certificate, login_url=settings.login_url, verify=verify, clock=clock
    )

    transport = Transport(TransportPolicy.from_options(transport_options), verify=verify, clock=clock)
    return MicrosoftClients(
        tokens=tokens,
        exchange=ExchangeClient(
            tokens, base_url=settings.exchange_url, transport=transport, page_size=exchange_page_size
        ),
        graph=GraphDomainsClient(tokens, base_url=settings.graph_url, transport=transport),
        transport=transport,
    )
