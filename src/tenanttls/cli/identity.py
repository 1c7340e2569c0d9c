"""Commands of the identity component: ``identity show``, ``identity renew``, ``identity rekey`` and ``dns serve``."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from sqlalchemy import select

from tenanttls.certificates import repository
from tenanttls.certificates.identities import IdentityService
from tenanttls.clock import SystemClock
from tenanttls.config import Settings, find_config_file, load_settings
from tenanttls.domain.names import is_guid, validate_domain_name, validate_tenant
from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.store.db import open_store, set_process_role
from tenanttls.store.schema import tenants

# The help names the TOML table in words: brackets are markup when typer renders help with rich,
# and a backslash escape shows up literally when it does not.
CONFIG_OPTION = typer.Option(
    None,
    "--config",
    "-c",
    help="TOML configuration file with the settings in a table named tenanttls; default: DATA/tenanttls.toml if it exists.",
)
DATA_OPTION = typer.Option(
    None, "--data", "-d", help="Data folder (default: TENANTTLS_DATA_DIR, or ./tenanttls-data); the store is DATA/tenanttls.db unless database_url names another."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of text.")

_LOCAL_CA_NOTE = "local-ca certificates are for the demo and tests only; Exchange Online does not trust them"


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    identity = typer.Typer(help="Show, renew and re-encrypt tenants' unique certificate identities.", no_args_is_help=True)
    identity.command("show")(show)
    identity.command("renew")(renew)
    identity.command("rekey")(rekey)
    app.add_typer(identity, name="identity")

    dns = typer.Typer(help="The built-in DNS server for the provider's zone.", no_args_is_help=True)
    dns.command("serve")(serve)
    app.add_typer(dns, name="dns")


def show(
    tenant: str = typer.Argument(
        ...,
        help="Tenant id (GUID), initial domain (contoso.onmicrosoft.com) or unique name (<label>.crosswaretls.com).",
    ),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the tenant's unique label and name, and its active certificate's serial and expiry."""
    settings = _settings(config, data)
    store = open_store(settings.database)
    try:
        identities = IdentityService(store.engine, settings.provider_zone, SystemClock())
        tenant_id = _tenant_id(store.engine, identities, tenant)
        identity = identities.get(tenant_id)
        with store.engine.connect() as connection:
            certificate = repository.find_active(connection, tenant_id)
    finally:
        store.close()

    details = _details(identity, certificate, SystemClock().now())
    warnings = _warnings(identity, certificate)
    if as_json:
        typer.echo(json.dumps({**details, "warnings": warnings}, indent=2))
        return

    for key, value in details.items():
        typer.echo(f"{key.replace('_', ' ')}: {'-' if value is None else value}")
    for warning in warnings:
        typer.echo(f"note: {warning}", err=True)


def renew(
    dry_run: bool = typer.Option(False, "--dry-run", help="List the certificates due for renewal; order nothing."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Order at most this many certificates."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Renew every certificate inside its renewal window, keeping each tenant's name.

    The renewal window is the last renewal_fraction of a certificate's lifetime (a third by default).

    Orders are spread by orders_per_hour, and the rest wait for the next run.

    Certificates of released identities (tenants that left) are listed but never renewed.

    A dry run needs no key_encryption_key.

    The relay switches to a renewed certificate at once.

    With issuer_backend 'local-ca' the certificates are for the demo and tests only: Exchange Online does not trust them.
    """
    from tenanttls.certificates.factory import build_certificate_service, build_renewal_schedule
    from tenanttls.dns.publisher import build_publisher

    settings = _settings(config, data)
    store = open_store(settings.database)
    try:
        if dry_run:
            report = build_renewal_schedule(settings, store.engine, SystemClock()).plan(limit)
        else:
            service = build_certificate_service(settings, store.engine, build_publisher(settings), SystemClock())
            report = service.renew_due(limit)
    finally:
        store.close()

    if as_json:
        typer.echo(json.dumps(_report_json(report, dry_run), indent=2, default=str))
    else:
        _print_report(report, dry_run)
    if report.failed:
        raise typer.Exit(8)


def rekey(
    old_key: str = typer.Option(
        ..., "--old-key", metavar="REFERENCE",
        help="Secret reference (env:NAME or file:/path) to the key-encryption key the stored keys use now.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decrypt every key with the old key to check it fits; change nothing."),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-encrypt every stored private key (certificates and ACME accounts) with the configured key_encryption_key.

    Stop the workers, relays and portal first, because they read the keys with the key they were started with.

    Start them again with the new key_encryption_key.
    """
    from tenanttls.certificates.keystore import KeyStore
    from tenanttls.certificates.rekey import reencrypt_keys

    settings = _settings(config, data)
    new = KeyStore.from_reference(settings.key_encryption_key)
    old = KeyStore.from_reference(old_key, what="--old-key")
    store = open_store(settings.database)
    try:
        report = reencrypt_keys(store.engine, old, new, dry_run=dry_run)
    finally:
        store.close()

    if as_json:
        typer.echo(json.dumps(vars(report), indent=2))
        return
    verb = "would re-encrypt" if dry_run else "re-encrypted"
    typer.echo(
        f"{verb} {report.certificate_keys} certificate keys and {report.account_keys} ACME account keys "
        f"from key id {report.old_key_id} to key id {report.new_key_id}; "
        f"{report.already_new} keys used key id {report.new_key_id} already"
    )


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on; default: the host of dns_server."),
    port: Optional[int] = typer.Option(
        None, "--port", help="UDP and TCP port, 1-65535 (0: a free port the system chooses); default: the port of dns_server."
    ),
    config: Optional[Path] = CONFIG_OPTION,
    data: Optional[Path] = DATA_OPTION,
) -> None:
    """Serve the provider's zone from the store and accept RFC 2136 updates until stopped (Ctrl-C).

    Updates must be signed with the TSIG key in dns_tsig_key when it is set.
    """
    from tenanttls.dns.publisher import parse_server
    from tenanttls.dns.server import BuiltinDnsServer
    from tenanttls.dns.tsig import TsigKey

    settings = _settings(config, data)
    default_host, default_port = parse_server(settings.dns_server)
    tsig = TsigKey.from_reference(settings.dns_tsig_key) if settings.dns_tsig_key else None
    set_process_role("dns")
    store = open_store(settings.database)

    stopped = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stopped.set())

    server = None
    try:
        server = BuiltinDnsServer(
            store.engine,
            settings.provider_zone,
            host=host or default_host,
            port=default_port if port is None else port,
            tsig=tsig,
        )
        server.start()
        signing = f"TSIG key {tsig.name}" if tsig else "no TSIG key (unsigned updates accepted)"
        typer.echo(f"serving zone {server.zone} on {server.address} (UDP and TCP), updates with {signing}", err=True)
        stopped.wait()
    finally:
        if server is not None:
            server.stop()
        store.close()


def _settings(config: Optional[Path], data: Optional[Path]) -> Settings:
    # Every command loads its settings here before it opens a store, so its connections
    # report tenanttls-cli. dns serve then sets its own role.
    set_process_role("cli")
    return load_settings(find_config_file(config, data), data_dir=data)


def _tenant_id(engine, identities: IdentityService, tenant: str) -> str:
    """Return the tenant id for a GUID, a tenant's initial domain or its unique name.

    Raises `NotFoundError` naming the next command when the store does not know the tenant.
    """
    text = tenant.strip()
    if is_guid(text.lower()):
        return _known_tenant_id(engine, identities, text.lower())
    if text.lower().endswith(".onmicrosoft.com"):
        return _tenant_id_by_initial_domain(engine, validate_tenant(text))

    try:
        name = validate_domain_name(text, what="tenant")
    except InvalidInput as error:
        raise InvalidInput(
            f"{error}; give a tenant id (GUID), an initial domain (contoso.onmicrosoft.com) "
            f"or a unique name (<label>.{identities.zone})"
        ) from error
    identity = identities.find_by_name(name)
    if identity is None:
        raise NotFoundError(
            f"no tenant has the unique name {name}; check the name, or give the tenant id or initial domain "
            "('tenanttls tenants list' lists them)"
        )
    return identity.tenant_id


def _known_tenant_id(engine, identities: IdentityService, tenant_id: str) -> str:
    """Return `tenant_id` when the tenants table or the identities table contains it."""
    with engine.connect() as connection:
        known = connection.execute(select(tenants.c.tenant_id).where(tenants.c.tenant_id == tenant_id)).first()
    if known is not None:
        return tenant_id

    try:
        return identities.get(tenant_id).tenant_id
    except NotFoundError:
        raise NotFoundError(
            f"tenant {tenant_id} is not in the store (tenants table); add it with 'tenanttls tenants import FILE', "
            f"then run 'tenanttls upgrade {tenant_id}' and a 'tenanttls worker' to allocate its unique identity"
        ) from None


def _tenant_id_by_initial_domain(engine, initial_domain: str) -> str:
    with engine.connect() as connection:
        tenant_id = connection.execute(
            select(tenants.c.tenant_id).where(tenants.c.initial_domain == initial_domain)
        ).scalar_one_or_none()
    if tenant_id is None:
        raise NotFoundError(
            f"tenant {initial_domain} is not in the store (tenants table); list the tenants with "
            "'tenanttls tenants list', or add it with 'tenanttls tenants import FILE'"
        )
    return tenant_id


def _details(identity, certificate, now: datetime) -> dict[str, Any]:
    details: dict[str, Any] = {
        "tenant_id": identity.tenant_id,
        "label": identity.label,
        "name": identity.name,
        "released_at": identity.released_at.isoformat() if identity.released_at else None,
        "certificate_serial": None,
        "not_after": None,
        "days_left": None,
        "backend": None,
    }
    if certificate is not None:
        details["certificate_serial"] = certificate.serial
        details["not_after"] = certificate.not_after.isoformat()
        details["days_left"] = (certificate.not_after - now).days
        details["backend"] = certificate.backend
    return details


def _warnings(identity, certificate) -> list[str]:
    """Return the notes on the identity that its fields do not show: a local-ca certificate, a release."""
    warnings = []
    if certificate is not None and certificate.backend == "local-ca":
        warnings.append(_LOCAL_CA_NOTE)
    if identity.released_at is not None:
        warnings.append("the identity is released (the tenant left), so its certificate is not renewed")
    return warnings


def _report_json(report, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "due": [_due_json(certificate) for certificate in report.due],
        "renewed": [vars(renewal) for renewal in report.renewed],
        "failed": [vars(failure) for failure in report.failed],
        "deferred": [_due_json(certificate) for certificate in report.deferred],
        "released": [_due_json(certificate) for certificate in report.released],
    }


def _due_json(certificate) -> dict[str, Any]:
    return {
        "tenant_id": certificate.tenant_id,
        "name": certificate.name,
        "certificate_id": certificate.id,
        "not_after": certificate.not_after.isoformat(),
    }


def _print_report(report, dry_run: bool) -> None:
    typer.echo(f"due for renewal: {len(report.due)}")
    if dry_run:
        deferred_ids = {certificate.id for certificate in report.deferred}
        for certificate in report.due:
            when = "later (order limit)" if certificate.id in deferred_ids else "this run"
            typer.echo(f"  {certificate.name} tenant={certificate.tenant_id} not_after={certificate.not_after:%Y-%m-%d} renew={when}")
        _print_released(report)
        return

    for renewal in report.renewed:
        typer.echo(f"  renewed {renewal.name} tenant={renewal.tenant_id} not_after={renewal.not_after:%Y-%m-%d}")
    for failure in report.failed:
        typer.echo(f"  failed {failure.name} tenant={failure.tenant_id}: {failure.error}", err=True)
    if report.deferred:
        typer.echo(f"  deferred to a later run (orders_per_hour): {len(report.deferred)}")
    _print_released(report)


def _print_released(report) -> None:
    if not report.released:
        return
    typer.echo(f"not renewed, identity released: {len(report.released)}")
    for certificate in report.released:
        typer.echo(f"  {certificate.name} tenant={certificate.tenant_id} not_after={certificate.not_after:%Y-%m-%d}")
