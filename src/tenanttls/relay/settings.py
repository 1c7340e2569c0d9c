"""Settings of the relay: where it listens, which certificates it presents, its limits.

Sizes are in bytes and times in seconds.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path

from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import ConfigurationError, InvalidInput

# Exchange Online's default maximum receive size for a mailbox (36 MB).
DEFAULT_MAX_MESSAGE_SIZE = 36 * 1024 * 1024
# Retry delays after the 1st, 2nd, ... deferral; the last one repeats until `max_queue_age`.
DEFAULT_RETRY_SCHEDULE = (60.0, 300.0, 900.0, 1800.0, 3600.0)
# Exchange Online keeps retrying a deferred message for 24 hours before it returns a DSN
# (Message Center MC173908, 2019).
DEFAULT_MAX_QUEUE_AGE = 24 * 3600.0
SMTP_PORT = 25


@dataclass(frozen=True)
class LegacyCertificate:
    """The certificate every customer shares before the upgrade (a relay setting, not a store row)."""

    name: str
    chain: Path  # PEM: the leaf, then the intermediates
    key: Path  # PEM, unencrypted; the file must not be readable by others


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay needs except the store and the key store.

    `smart_host` ("host:port") overrides every tenant's smart host, so that tests and
    the demo deliver to the simulator. `smart_host_ca` is the CA bundle used to verify
    smart hosts; None uses the system's trusted CAs.
    """

    queue_dir: Path
    legacy: LegacyCertificate
    tls_certificate: Path | None = None  # server certificate offered to tenants' outbound connectors
    tls_key: Path | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 2525  # 0 lets the operating system choose
    hostname: str = "relay.crossware.co.nz"  # the EHLO name, and the name in the loop-guard header
    require_starttls: bool = True
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_recipients: int = 100
    max_messages_per_connection: int = 100
    max_connections: int = 200
    command_timeout: float = 300.0

    smart_host: str | None = None
    smart_host_ca: Path | None = None
    delivery_concurrency: int = 32
    connections_per_tenant: int = 2
    reuse_connections: bool = True
    idle_timeout: float = 30.0
    messages_per_delivery_connection: int = 100
    smtp_timeout: float = 60.0
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    max_queue_age: float = DEFAULT_MAX_QUEUE_AGE
    assignment_max_age: float = 1.0  # a cached relay assignment is read again after this long
    max_cached_contexts: int = 20_000

    def __post_init__(self) -> None:
        validate_relay_settings(self)


def validate_relay_settings(settings: RelaySettings) -> None:
    """Raise `ConfigurationError` naming the first setting that is out of range."""
    try:
        validate_domain_name(settings.legacy.name, allow_wildcard=True, what="legacy certificate name")
        validate_domain_name(settings.hostname, what="relay hostname")
    except InvalidInput as error:
        raise ConfigurationError(str(error)) from error

    if (settings.tls_certificate is None) != (settings.tls_key is None):
        raise ConfigurationError(
            "set both relay_tls_certificate (--tls-certificate) and relay_tls_key (--tls-key) for the relay's STARTTLS, or neither"
        )
    if settings.require_starttls and settings.tls_certificate is None:
        raise ConfigurationError(
            "require_starttls is on but no server certificate is set; "
            "set relay_tls_certificate (--tls-certificate) and relay_tls_key (--tls-key)"
        )

    for network in settings.allowed_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as error:
            raise ConfigurationError(
                f"invalid network {network!r} in relay_allowed_networks: {error}; use CIDR blocks such as 10.0.0.0/8"
            ) from error

    for name in ("max_message_size", "max_recipients", "max_messages_per_connection", "max_connections",
                 "delivery_concurrency", "connections_per_tenant", "messages_per_delivery_connection",
                 "max_cached_contexts"):
        if getattr(settings, name) < 1:
            raise ConfigurationError(f"invalid relay setting {name}={getattr(settings, name)}: use 1 or more")

    if not settings.retry_schedule or not all(math.isfinite(delay) and delay > 0 for delay in settings.retry_schedule):
        delays = ",".join(f"{delay:g}" for delay in settings.retry_schedule) or "(none)"
        raise ConfigurationError(
            f"invalid retry schedule {delays} (--retry): give one or more delays in seconds, "
            "each more than 0, such as 60,300,900"
        )
    if settings.smart_host is not None:
        parse_host_port(settings.smart_host, label=SMART_HOST_SETTING)


LISTEN_SETTING = "relay_listen (--listen)"
SMART_HOST_SETTING = "relay_smart_host (--smart-host)"


def parse_host_port(value: str, default_port: int = SMTP_PORT, *, label: str = "smart host", listen: bool = False) -> tuple[str, int]:
    """Split ``host``, ``host:port`` or ``[v6]:port`` into host and port.

    `label` names the value in errors (a setting, or a tenant's smart host). Port 0 is
    valid only when `listen` is true, where it lets the system choose a free port.
    Raises `ConfigurationError` naming the value, `label` and the valid range.
    """
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""

    if not host:
        raise ConfigurationError(f"invalid {label} {value!r}: expected host or host:port, such as 127.0.0.1:{default_port}")
    if not port_text:
        return host, default_port

    lowest = 0 if listen else 1
    if not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        valid = "0-65535 (0: the system chooses a free port)" if listen else "1-65535"
        raise ConfigurationError(f"invalid port {port_text!r} in {label} {value!r}: use {valid}")
    return host, int(port_text)


def queue_dir_from(settings) -> Path:
    """Return the queue folder of `settings` (a `tenanttls.config.Settings`): relay_queue_dir or DATA/relay-queue."""
    return Path(settings.relay_queue_dir) if settings.relay_queue_dir else Path(settings.data_dir) / "relay-queue"


def _required_path(value: str, name: str) -> Path:
    if not value:
        raise ConfigurationError(f"{name} is not set; give the relay a PEM file with --{name.replace('_', '-')} or the {name} setting")
    return Path(value).expanduser()


def relay_settings_from(settings, **overrides) -> RelaySettings:
    """Build `RelaySettings` from the shared configuration (`tenanttls.config.Settings`), then `overrides`.

    Raises `ConfigurationError` naming the missing setting when the legacy certificate
    or the server certificate is not configured.
    """
    host, port = parse_host_port(settings.relay_listen, default_port=2525, label=LISTEN_SETTING, listen=True)
    values: dict = dict(
        queue_dir=queue_dir_from(settings),
        legacy=LegacyCertificate(
            settings.legacy_certificate_name,
            _required_path(settings.legacy_certificate, "legacy_certificate"),
            _required_path(settings.legacy_key, "legacy_key"),
        ),
        tls_certificate=_required_path(settings.relay_tls_certificate, "relay_tls_certificate"),
        tls_key=_required_path(settings.relay_tls_key, "relay_tls_key"),
        listen_host=host,
        listen_port=port,
        hostname=settings.relay_hostname,
        allowed_networks=tuple(part.strip() for part in settings.relay_allowed_networks.split(",") if part.strip()),
        smart_host=settings.relay_smart_host or None,
        smart_host_ca=Path(settings.relay_smart_host_ca) if settings.relay_smart_host_ca else None,
    )
    values.update(overrides)
    return RelaySettings(**values)
