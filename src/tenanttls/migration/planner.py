"""The planner: compare what Microsoft 365 reports (existing) with what the provider wants (desired).

Every function here is pure. The steps read live state, call the planner for
their part, and apply the changes it returns. ``tenanttls plan`` calls
`plan_tenant` with everything read at once and prints the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tenanttls.domain.exchange import AcceptedDomain, ConnectorSettings, InboundConnector
from tenanttls.domain.graph import Domain
from tenanttls.migration.changes import (
    AddDomain,
    AllocateIdentity,
    AwaitAcceptedDomain,
    AwaitGrace,
    Change,
    CreateConnector,
    IssueCertificate,
    ProbeMailFlow,
    PublishVerificationRecord,
    RemoveConnector,
    RenameConnector,
    SaveSnapshot,
    SetConnector,
    SwitchRelay,
    VerifyDomain,
)
from tenanttls.migration.safety import Overrides, Violation

# The Comment of every connector tenanttls creates starts with this; it is the ownership marker.
OWNERSHIP_MARKER = "Managed by tenanttls"
BACKUP_SUFFIX = "-BACKUP"
SNAPSHOT_BEFORE_RENAME = "before-rename"


@dataclass(frozen=True)
class Desired:
    """The desired state of one tenant: names, the new connector's Comment and the operator's overrides."""

    connector_name: str
    legacy_certificate_name: str
    zone: str
    unique_name: str | None
    comment: str
    overrides: Overrides = field(default_factory=Overrides)


@dataclass(frozen=True)
class TenantPlan:
    """The changes that bring one tenant to the desired state, in dependency order."""

    tenant_id: str
    changes: tuple[Change, ...]
    violations: tuple[Violation, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def is_safe(self) -> bool:
        """True when the safety gate found nothing."""
        return not self.violations

    def describe(self) -> list[str]:
        """Return the plan as text lines: changes with before → after, then violations and notes."""
        lines: list[str] = []
        for change in self.changes:
            lines += [f"[{change.step.value}] {line}" for line in change.describe()]
        if not self.changes:
            lines.append("no changes: the tenant is in the desired state")
        for violation in self.violations:
            lines.append(f"REJECTED: {violation.message}")
        lines += [f"note: {note}" for note in self.notes]
        return lines

    def to_json(self) -> dict[str, Any]:
        """Return the plan as a JSON object."""
        return {
            "tenant_id": self.tenant_id,
            "safe": self.is_safe,
            "changes": [change.to_json() for change in self.changes],
            "violations": [violation.to_json() for violation in self.violations],
            "notes": list(self.notes),
        }


def stamp_comment(version: str, run_id: str, now: datetime) -> str:
    """Return the Comment for a new connector: the ownership marker, tool version, run id and time."""
    return f"{OWNERSHIP_MARKER} {version}; run {run_id}; created {now.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def is_ours(connector: InboundConnector) -> bool:
    """True when tenanttls created the connector (its Comment carries the ownership marker)."""
    return connector.comment.startswith(OWNERSHIP_MARKER)


def backup_name(name: str) -> str:
    """Return the name the original connector gets when it is kept as a backup."""
    return f"{name}{BACKUP_SUFFIX}"


def settings_of(connector: InboundConnector) -> dict[str, Any]:
    """Return the connector's mail-flow settings, normalised, without name, comment, ids and times."""
    return {
        "Enabled": connector.enabled,
        "ConnectorType": connector.connector_type,
        "SenderDomains": tuple(sorted(connector.sender_domains)),
        "SenderIPAddresses": tuple(sorted(connector.sender_ip_addresses)),
        "TlsSenderCertificateName": connector.tls_sender_certificate_name,
        "RequireTls": connector.require_tls,
        "RestrictDomainsToCertificate": connector.restrict_domains_to_certificate,
        "RestrictDomainsToIPAddresses": connector.restrict_domains_to_ip_addresses,
        "CloudServicesMailEnabled": connector.cloud_services_mail_enabled,
        "TreatMessagesAsInternal": connector.treat_messages_as_internal,
        "TrustedOrganizations": tuple(sorted(connector.trusted_organizations)),
        "AssociatedAcceptedDomains": tuple(sorted(connector.associated_accepted_domains)),
    }


def setting_differences(current: InboundConnector, expected: InboundConnector) -> dict[str, tuple[Any, Any]]:
    """Return ``{field: (current, expected)}`` for every mail-flow setting that differs."""
    now, then = settings_of(current), settings_of(expected)
    return {key: (now[key], then[key]) for key in now if now[key] != then[key]}


def _find(connectors: list[InboundConnector], name: str) -> InboundConnector | None:
    for connector in connectors:
        if connector.name.lower() == name.lower():
            return connector
    return None


def legacy_candidates(connectors: list[InboundConnector], desired: Desired) -> list[InboundConnector]:
    """Return the connectors that look like the legacy connector.

    That is any connector we did not create, not named ``…-BACKUP``, that names the
    shared (legacy) certificate. A connector with the connector name but another
    vendor's certificate is not one: `unconfirmed_legacy` returns it.
    """
    legacy_certificate = desired.legacy_certificate_name.lower()
    candidates = []
    for connector in connectors:
        if is_ours(connector) or connector.name.upper().endswith(BACKUP_SUFFIX):
            continue
        if connector.tls_sender_certificate_name == legacy_certificate:
            candidates.append(connector)
    return candidates


def unconfirmed_legacy(connectors: list[InboundConnector], desired: Desired) -> InboundConnector | None:
    """Return the connector that has the connector name but not the shared certificate, if any.

    It may belong to another vendor, so only ``--legacy-connector NAME`` makes it the legacy one.
    """
    named = _find(connectors, desired.connector_name)
    if named is None or is_ours(named) or named in legacy_candidates(connectors, desired):
        return None
    return named


def covers(certificate_name: str, host: str) -> bool:
    """True when a TlsSenderCertificateName (exact or ``*.`` wildcard) matches `host`."""
    pattern, host = certificate_name.lower(), host.lower()
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def desired_connector(desired: Desired, cloud_services_mail_enabled: bool) -> ConnectorSettings:
    """Return the settings of the new connector (Microsoft's guide for add-on services)."""
    assert desired.unique_name is not None, "the unique name is allocated before the connector is planned"
    return ConnectorSettings(
        name=desired.connector_name,
        sender_domains=("*",),
        connector_type="OnPremises",
        require_tls=True,
        restrict_domains_to_certificate=True,
        tls_sender_certificate_name=desired.unique_name,
        cloud_services_mail_enabled=cloud_services_mail_enabled,
        enabled=True,
        comment=desired.comment,
    )


# Identity and domain -------------------------------------------------------------------------


def plan_identity(desired: Desired, *, has_certificate: bool) -> list[Change]:
    """Return the identity step's changes: allocate the name, issue its certificate."""
    changes: list[Change] = []
    if desired.unique_name is None:
        changes.append(AllocateIdentity(zone=desired.zone))
    if not has_certificate:
        changes.append(IssueCertificate(name=desired.unique_name or f"<unique name>.{desired.zone}"))
    return changes


def plan_domain(name: str, graph_domain: Domain | None) -> list[Change]:
    """Return the domain step's changes for the Graph state of `name` (None: clearly absent)."""
    if graph_domain is not None and graph_domain.is_verified:
        return []
    changes: list[Change] = []
    if graph_domain is None:
        changes.append(AddDomain(name=name))
    changes += [PublishVerificationRecord(name=name), VerifyDomain(name=name)]
    return changes


def is_accepted(name: str, accepted_domains: list[AcceptedDomain]) -> bool:
    """True when Get-AcceptedDomain lists `name` (exact, case-insensitive)."""
    return any(domain.domain_name.lower() == name.lower() for domain in accepted_domains)


def plan_accepted(name: str, accepted_domains: list[AcceptedDomain]) -> list[Change]:
    """Return the accepted step's changes: a wait while Exchange does not list the name."""
    return [] if is_accepted(name, accepted_domains) else [AwaitAcceptedDomain(name=name)]


# Connectors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorPlan:
    """The backup and connector steps' part of a plan."""

    changes: tuple[Change, ...]
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    # The original connector's name, and the name it has (or will have) as the backup.
    legacy_name: str | None
    backup_name: str | None


def plan_connectors(
    tenant_id: str,
    connectors: list[InboundConnector],
    desired: Desired,
    snapshot: InboundConnector | None = None,
) -> ConnectorPlan:
    """Plan the rename of the legacy connector and the creation of ours, behind the safety gate.

    `snapshot` is the original connector as saved by this run's backup step, or None
    when it has not been saved yet. Its name identifies the legacy connector once the
    rename has happened.
    """
    violations: list[Violation] = []
    notes: list[str] = []

    legacy_name = _legacy_name(tenant_id, connectors, desired, snapshot, violations, notes)
    legacy = _find(connectors, legacy_name) if legacy_name else None
    if legacy is not None and is_ours(legacy):
        legacy = None
    backup = _find(connectors, backup_name(legacy_name)) if legacy_name else None
    if snapshot is not None and backup is not None:
        # This run saved and renamed the original, so a connector under the old name is someone else's.
        legacy = None

    changes = _plan_backup(tenant_id, legacy, backup, legacy_name, snapshot, desired, violations)
    if desired.unique_name is not None:
        original = snapshot or legacy or backup
        cloud_services = original.cloud_services_mail_enabled if original is not None else True
        unresolved = legacy_name is None and any(violation.code in ("several_legacy", "legacy_unconfirmed") for violation in violations)
        changes += _plan_new_connector(tenant_id, connectors, desired, legacy, unresolved, cloud_services, violations)

    return ConnectorPlan(
        changes=tuple(changes),
        violations=tuple(violations),
        notes=tuple(notes),
        legacy_name=legacy_name,
        backup_name=backup_name(legacy_name) if legacy_name else None,
    )


def _legacy_name(
    tenant_id: str,
    connectors: list[InboundConnector],
    desired: Desired,
    snapshot: InboundConnector | None,
    violations: list[Violation],
    notes: list[str],
) -> str | None:
    """Return the name of the connector to keep as the backup, recording violations and notes."""
    if snapshot is not None:
        return snapshot.name

    chosen = desired.overrides.legacy_connector
    if chosen:
        if _find(connectors, chosen) is None and _find(connectors, backup_name(chosen)) is None:
            violations.append(
                Violation(
                    "several_legacy",
                    chosen,
                    f"connector {chosen!r} named with --legacy-connector does not exist; "
                    "check the names with Get-InboundConnector and give an existing one",
                )
            )
            return None
        return chosen

    unconfirmed = unconfirmed_legacy(connectors, desired)
    if unconfirmed is not None:
        violations.append(
            Violation(
                "legacy_unconfirmed",
                unconfirmed.name,
                f"connector {unconfirmed.name!r} has the connector name but certificate "
                f"{unconfirmed.tls_sender_certificate_name or '(none)'}, not {desired.legacy_certificate_name}, "
                f"so it may be another vendor's (Comment {unconfirmed.comment!r}); if it is the legacy connector, "
                f"run 'tenanttls upgrade {tenant_id} --legacy-connector {unconfirmed.name!r}'",
            )
        )
        return None

    candidates = legacy_candidates(connectors, desired)
    if len(candidates) > 1:
        names = ", ".join(repr(connector.name) for connector in candidates)
        violations.append(
            Violation(
                "several_legacy",
                names,
                f"{len(candidates)} connectors look like the legacy connector ({names}: named "
                f"{desired.connector_name!r} or on certificate {desired.legacy_certificate_name}); "
                f"choose one with 'tenanttls upgrade {tenant_id} --legacy-connector NAME'",
            )
        )
        return None
    if not candidates:
        notes.append(f"no legacy connector found (named {desired.connector_name!r} or on {desired.legacy_certificate_name}); nothing to back up")
        return None
    return candidates[0].name


def _plan_backup(
    tenant_id: str,
    legacy: InboundConnector | None,
    backup: InboundConnector | None,
    legacy_name: str | None,
    snapshot: InboundConnector | None,
    desired: Desired,
    violations: list[Violation],
) -> list[Change]:
    if legacy is None:
        if snapshot is not None and backup is None:
            violations.append(
                Violation(
                    "backup_missing",
                    backup_name(snapshot.name),
                    f"the original connector {snapshot.name!r} was renamed to {backup_name(snapshot.name)!r}, "
                    "and neither connector exists now; the store keeps its snapshot, so run "
                    f"'tenanttls rollback {tenant_id}' to recreate it",
                )
            )
        return []

    assert legacy_name is not None
    changes: list[Change] = []
    if backup is not None:
        differences = setting_differences(backup, legacy)
        if not differences:
            changes += [
                SaveSnapshot(backup.name, "stale-backup"),
                RemoveConnector(backup.name, f"an earlier copy with the same settings as {legacy.name!r}"),
            ]
        elif desired.overrides.force_backup_overwrite:
            changes += [
                SaveSnapshot(backup.name, "overwritten-backup"),
                RemoveConnector(backup.name, "replaced, as --force-backup-overwrite requested; a copy is saved first"),
            ]
        else:
            fields_text = ", ".join(f"{key} {before!r} vs {after!r}" for key, (before, after) in differences.items())
            violations.append(
                Violation(
                    "backup_exists",
                    backup.name,
                    f"connector {backup.name!r} already exists with other settings than {legacy.name!r} "
                    f"({fields_text}); remove or rename it, or run 'tenanttls upgrade {tenant_id} "
                    "--force-backup-overwrite' to replace it (the store keeps a copy)",
                )
            )

    changes += [
        SaveSnapshot(legacy.name, SNAPSHOT_BEFORE_RENAME),
        RenameConnector(legacy.name, backup_name(legacy_name)),
    ]
    return changes


def _plan_new_connector(
    tenant_id: str,
    connectors: list[InboundConnector],
    desired: Desired,
    legacy: InboundConnector | None,
    legacy_unresolved: bool,
    cloud_services_mail_enabled: bool,
    violations: list[Violation],
) -> list[Change]:
    settings = desired_connector(desired, cloud_services_mail_enabled)
    named = _find(connectors, desired.connector_name)
    if named is not None and (named is legacy or (legacy_unresolved and (named in legacy_candidates(connectors, desired) or named is unconfirmed_legacy(connectors, desired)))):
        named = None  # the rename of the legacy connector frees the name

    unique = (desired.unique_name or "").lower()
    foreign = [
        connector
        for connector in connectors
        if not is_ours(connector) and connector is not named and connector is not legacy
        and unique and covers(connector.tls_sender_certificate_name or "", unique)
    ]
    if foreign and not desired.overrides.allow_foreign_connector:
        names = ", ".join(repr(connector.name) for connector in foreign)
        violations.append(
            Violation(
                "foreign_connector",
                names,
                f"connector {names} was not created by tenanttls and its certificate name already matches "
                f"the unique name {desired.unique_name}; remove it, or run 'tenanttls upgrade {tenant_id} --allow-foreign-connector' "
                "to leave it in place",
            )
        )

    if named is None:
        return [CreateConnector(settings)]

    adopting = not is_ours(named)
    if adopting and not desired.overrides.adopt_connector:
        violations.append(
            Violation(
                "name_taken",
                named.name,
                f"connector {named.name!r} exists and was not created by tenanttls (its Comment has no "
                f"'{OWNERSHIP_MARKER}' marker); rename or remove it, or run 'tenanttls upgrade {tenant_id} "
                "--adopt-connector' to take it over with the desired settings",
            )
        )
        return []

    differences = settings.differences(named)
    differences.pop("Name", None)  # Exchange compares names case-insensitively; a case change is not needed
    parameters = {key: value for key, value in settings.parameters().items() if key in differences}
    if adopting:
        differences["Comment"] = (named.comment, settings.comment)
        parameters["Comment"] = settings.comment
    if not differences:
        return []
    return [SetConnector(connector_name=named.name, differences=differences, parameters=parameters)]


# The whole tenant ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """Everything read about one tenant for a full plan."""

    tenant_id: str
    state: str
    has_certificate: bool
    graph_domain: Domain | None
    accepted_domains: list[AcceptedDomain]
    connectors: list[InboundConnector]
    snapshot: InboundConnector | None
    relay_mode: str
    grace_until: datetime | None


def plan_tenant(observation: Observation, desired: Desired) -> TenantPlan:
    """Return the full plan for one tenant, from its current state to completed."""
    unique = desired.unique_name
    display = desired if unique else _with_placeholder(desired)
    name = display.unique_name
    assert name is not None

    changes: list[Change] = plan_identity(desired, has_certificate=observation.has_certificate)
    changes += plan_domain(name, observation.graph_domain)
    changes += plan_accepted(name, observation.accepted_domains)

    connectors = plan_connectors(observation.tenant_id, observation.connectors, display, observation.snapshot)
    changes += connectors.changes

    if observation.relay_mode != "unique":
        changes.append(AwaitGrace(until=observation.grace_until))
        changes.append(SwitchRelay(from_name=desired.legacy_certificate_name, to_name=name))
    if observation.state not in ("completed", "rolled_back"):
        changes.append(ProbeMailFlow(name=name))

    return TenantPlan(
        tenant_id=observation.tenant_id,
        changes=tuple(changes),
        violations=connectors.violations,
        notes=connectors.notes,
    )


def _with_placeholder(desired: Desired) -> Desired:
    return replace(desired, unique_name=f"<unique name>.{desired.zone}")
