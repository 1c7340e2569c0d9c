"""Settings: a TOML file, overridden by ``TENANTTLS_*`` environment variables.

Secrets are never written inline. A secret setting holds a reference,
``env:NAME`` or ``file:/path``, that `resolve_secret` reads when needed.
The defaults are Crossware's names and Microsoft's public endpoints.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tenanttls.domain.durations import format_duration, parse_duration
from tenanttls.domain.names import validate_domain_name
from tenanttls.errors import ConfigurationError, InvalidInput

ENV_PREFIX = "TENANTTLS_"
# A longer window would keep a tenant whose consent was withdrawn from stopping for days.
MAX_CONSENT_PROPAGATION = timedelta(hours=24)


@dataclass(frozen=True)
class Settings:
    """Every setting of tenanttls, with the embedded defaults.

    Field names are the TOML keys (all in one table, ``[tenanttls]``) and, upper-cased
    with the ``TENANTTLS_`` prefix, the environment variables.
    """

    data_dir: Path = Path("tenanttls-data")
    database_url: str = ""  # empty: a SQLite file tenanttls.db in data_dir

    provider_zone: str = "crosswaretls.com"
    connector_name: str = "CrosswareInboundConnector"
    legacy_certificate_name: str = "*.crossware.co.nz"

    login_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    exchange_url: str = "https://outlook.office365.com"
    client_id: str = ""
    client_certificate: str = ""  # path of the app's certificate (PEM)
    client_key: str = ""  # secret reference to the app's private key (PEM)
    microsoft_ca_bundle: str = ""  # CA bundle for the Microsoft endpoints (the simulator's ca.pem); empty: the system store

    key_encryption_key: str = ""  # secret reference to the key-encryption key
    grace: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    # How long after a recorded admin consent (`consented_at`) the engine waits for Microsoft to
    # apply it. Until then a step whose token request fails for missing consent waits and runs
    # again, and afterwards the tenant stops. 0 stops at the first failure. The default is an estimate.
    consent_propagation: timedelta = timedelta(minutes=15)
    # How often each completed tenant is checked for drift, by one of the workers; 0 turns the check off in that worker.
    drift_interval: timedelta = timedelta(hours=6)

    dns_backend: str = "builtin"  # "builtin" or "rfc2136"
    dns_server: str = "127.0.0.1:5353"
    dns_tsig_key: str = ""  # secret reference to "name:algorithm:base64secret"
    issuer_backend: str = "local-ca"  # "local-ca" or "acme"
    acme_directory: str = ""
    acme_ca_bundle: str = ""
    acme_roots: str = ""  # PEM file of the roots issued chains lead to; empty: the system store
    acme_profile: str = ""  # ACME profile to order; it must include clientAuth
    acme_contact: str = ""  # e-mail address for the CA's notices; optional
    certificate_lifetime: timedelta = timedelta(days=90)  # local-ca only
    renewal_fraction: float = 1 / 3
    orders_per_hour: int = 300

    # Microsoft requests per second across the workers that draw from one budget, and the burst.
    requests_per_second: float = 20.0
    request_burst: int = 20
    # Where that budget is kept: "store" (one bucket in the database, shared by every worker),
    # "process" (one bucket per worker process) or "auto" (store on PostgreSQL, process on SQLite).
    request_budget: str = "auto"

    portal_url: str = ""  # the portal's address as browsers see it (redirect URIs derive from it); empty: http://HOST:PORT
    portal_session_secret: str = ""  # secret reference to the cookie-signing key; empty: DATA/portal-session.key
    provider_tenant_id: str = ""  # the provider's own tenant, where operators sign in; empty: no operator sign-in
    portal_operator_role: str = "Portal.Operator"  # the app role operators hold in the provider's tenant
    portal_clock: str = "system"  # "simulator": follow the simulator's clock at login_url (against the simulator only)

    relay_listen: str = "127.0.0.1:2525"  # host:port where tenants' outbound connectors deliver to the relay
    relay_hostname: str = "relay.crossware.co.nz"  # the relay's EHLO name and the name in its loop-guard header
    relay_tls_certificate: str = ""  # PEM server certificate the relay offers with STARTTLS
    relay_tls_key: str = ""  # path of its private key (PEM)
    legacy_certificate: str = ""  # PEM chain of the shared client certificate (legacy_certificate_name)
    legacy_key: str = ""  # path of its private key (PEM)
    relay_queue_dir: str = ""  # empty: DATA/relay-queue
    relay_smart_host: str = ""  # host:port that receives every tenant's mail (the simulator); empty: each tenant's own
    relay_smart_host_ca: str = ""  # CA bundle that verifies smart hosts; empty: the system store
    relay_allowed_networks: str = "127.0.0.0/8,::1/128"  # comma-separated CIDR blocks the relay accepts mail from

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the store."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'tenanttls.db').resolve()}"


def _convert(name: str, value: Any, default: Any) -> Any:
    """Convert a TOML or environment value to the type of the setting's default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, timedelta):
            return parse_duration(str(value))
        if isinstance(default, Path):
            return Path(str(value)).expanduser()
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except InvalidInput as error:
        raise ConfigurationError(f"invalid setting {name}={value!r}: {error}") from error
    except (ValueError, TypeError) as error:
        # int() and float() describe the failure in Python's words; name the expected form instead.
        expected = "a whole number" if isinstance(default, int) else "a number"
        example = default if isinstance(default, int) else f"{default:.4g}"
        raise ConfigurationError(
            f"invalid setting {name}={value!r}: expected {expected}, such as {example} (the default)"
        ) from error
    return str(value)


CONFIG_FILE_NAME = "tenanttls.toml"


def find_config_file(
    config: Path | None, data_dir: Path | None = None, environ: dict[str, str] | None = None
) -> Path | None:
    """Return the configuration file a command reads: `config` when given, else ``DATA/tenanttls.toml`` if it exists.

    DATA is `data_dir`, else the ``TENANTTLS_DATA_DIR`` variable, else the default
    data folder. `tenanttls demo` writes its settings there, so ``--data DIR`` alone
    finds them. Returns None when no file applies, and the defaults and environment
    variables are used.
    """
    if config is not None:
        return config

    environ = dict(os.environ if environ is None else environ)
    folder = data_dir or environ.get(ENV_PREFIX + "DATA_DIR") or Settings().data_dir
    candidate = Path(folder).expanduser() / CONFIG_FILE_NAME
    return candidate if candidate.is_file() else None


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Return settings from the TOML file at `path` (if given), the environment and `overrides`.

    Later sources win. Unknown keys in the file raise `ConfigurationError` so typos are found.
    When `path` is None, ``DATA/tenanttls.toml`` is read if it exists (see `find_config_file`),
    so ``--data DIR`` alone finds the settings that `tenanttls demo` wrote.
    """
    environ = dict(os.environ if environ is None else environ)
    if path is None:
        data_dir = overrides.get("data_dir")
        path = find_config_file(None, Path(str(data_dir)) if data_dir is not None else None, environ)

    defaults = Settings()
    known = {f.name: getattr(defaults, f.name) for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}

    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigurationError(f"configuration file not found: {path}") from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"invalid TOML in {path}: {error}") from error
        table = document.get("tenanttls", document)
        for key, value in table.items():
            if key not in known:
                raise ConfigurationError(f"unknown setting {key!r} in {path}; known settings: {', '.join(sorted(known))}")
            values[key] = _convert(key, value, known[key])

    for key, default in known.items():
        env_name = ENV_PREFIX + key.upper()
        if env_name in environ:
            values[key] = _convert(env_name, environ[env_name], default)

    for key, value in overrides.items():
        if key not in known:
            raise ConfigurationError(f"unknown setting {key!r}")
        if value is not None:
            values[key] = _convert(key, value, known[key])

    settings = replace(defaults, **values)
    validate_settings(settings)
    return settings


def validate_settings(settings: Settings) -> None:
    """Raise `ConfigurationError` when a setting is out of its valid range."""
    try:
        validate_domain_name(settings.provider_zone, what="provider zone")
        validate_domain_name(settings.legacy_certificate_name, allow_wildcard=True, what="legacy certificate name")
    except InvalidInput as error:
        raise ConfigurationError(str(error)) from error

    if settings.dns_backend not in ("builtin", "rfc2136"):
        raise ConfigurationError(f"invalid dns_backend {settings.dns_backend!r}: use 'builtin' or 'rfc2136'")
    if settings.issuer_backend not in ("local-ca", "acme"):
        raise ConfigurationError(f"invalid issuer_backend {settings.issuer_backend!r}: use 'local-ca' or 'acme'")
    if not 0 < settings.renewal_fraction < 1:
        raise ConfigurationError(
            f"invalid renewal_fraction {settings.renewal_fraction}: use a fraction of the lifetime between 0 and 1"
        )
    if settings.request_budget not in ("auto", "store", "process"):
        raise ConfigurationError(
            f"invalid request_budget {settings.request_budget!r}: use 'auto', 'store' or 'process'"
        )
    if settings.requests_per_second <= 0 or settings.request_burst < 1:
        raise ConfigurationError(
            f"invalid request budget requests_per_second={settings.requests_per_second:g} "
            f"request_burst={settings.request_burst}: use a positive rate and a burst of 1 or more"
        )
    if settings.max_attempts < 1:
        raise ConfigurationError(f"invalid max_attempts {settings.max_attempts}: use 1 or more")
    if not timedelta(0) <= settings.consent_propagation <= MAX_CONSENT_PROPAGATION:
        raise ConfigurationError(
            f"invalid consent_propagation {format_duration(settings.consent_propagation)}: "
            f"use a duration from 0 to {format_duration(MAX_CONSENT_PROPAGATION)}, such as 15m (the default)"
        )
    if settings.lease <= timedelta(0):
        raise ConfigurationError(
            f"invalid lease {format_duration(settings.lease)}: use a duration longer than the slowest step, "
            "such as 5m (the default)"
        )


def resolve_secret(reference: str, *, what: str = "secret") -> bytes:
    """Return the bytes a secret reference points to: ``env:NAME`` or ``file:/path``.

    Warns (through logging) when a secret file is readable by group or others.
    The value is never logged.
    """
    import logging

    if reference.startswith("env:"):
        name = reference[4:]
        if name not in os.environ:
            raise ConfigurationError(f"{what}: environment variable {name} is not set")
        return os.environ[name].encode()

    if reference.startswith("file:"):
        path = Path(reference[5:]).expanduser()
        try:
            mode = path.stat().st_mode
            data = path.read_bytes()
        except OSError as error:
            raise ConfigurationError(f"{what}: cannot read {path}: {error.strerror}") from error
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logging.getLogger(__name__).warning(
                "secret file is readable by group or others: path=%s mode=%o; run chmod 600 %s",
                path,
                stat.S_IMODE(mode),
                path,
            )
        return data

    # The value is not echoed: a secret written inline by mistake must not reach a terminal or log.
    raise ConfigurationError(
        f"{what}: invalid secret reference ({len(reference)} characters, not shown); "
        "write the secret to a file and use 'file:/path', or use 'env:NAME'"
    )
