"""Findings about a tenant's inbound connectors and accepted domains.

Exchange Online attributes mail that arrives on an OnPremises inbound connector by,
in order, the domain on the sending server's TLS certificate (when it is an accepted
domain of a tenant whose connector names it), the envelope MAIL FROM domain, and the
RCPT TO domain (Microsoft Message Center MC1226222, February 2026). Mail with an empty
MAIL FROM (automatic replies, NDRs) therefore reaches the right tenant only through
the certificate: the checks below follow from that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tenanttls.audit.exportset import ExportSet
from tenanttls.config import Settings
from tenanttls.domain.exchange import AcceptedDomain, InboundConnector


class Severity(enum.IntEnum):
    """How much a finding matters; the CLI exits non-zero when any finding is an error."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        """The lower-case name used in reports."""
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One observation about the tenant, with what it means and how to fix it."""

    code: str
    severity: Severity
    subject: str
    explanation: str
    fix: str = ""


@dataclass(frozen=True)
class ProviderProfile:
    """How the provider's connector is recognised: its name and its certificate names."""

    connector_name: str
    legacy_certificate_name: str
    provider_zone: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "ProviderProfile":
        """Build the profile from the `connector_name`, `legacy_certificate_name` and `provider_zone` settings."""
        return cls(settings.connector_name, settings.legacy_certificate_name.lower(), settings.provider_zone.lower())

    @property
    def backup_name(self) -> str:
        """The name the upgrade gives the old connector."""
        return f"{self.connector_name}-BACKUP"

    def is_unique_name(self, certificate_name: str | None) -> bool:
        """True when `certificate_name` is a per-tenant name under the provider's zone."""
        return bool(certificate_name) and certificate_name.lower().endswith("." + self.provider_zone)

    def owns(self, connector: InboundConnector) -> bool:
        """True when `connector` is the provider's, by name or by certificate name."""
        name = connector.name.lower()
        certificate = connector.tls_sender_certificate_name or ""
        return (
            name in (self.connector_name.lower(), self.backup_name.lower())
            or certificate == self.legacy_certificate_name
            or self.is_unique_name(certificate)
        )


@dataclass(frozen=True)
class AuditReport:
    """The result of auditing one tenant's exports.

    `complete` is False when a kind of export was missing, so some checks could not run;
    the findings then include one that names the missing export. `connectors_checked`
    is False without a Get-InboundConnector export: `provider_connector` and
    `null_sender_attributed` are then None because they were not checked.
    """

    tenant: str | None
    files: tuple[dict[str, object], ...]
    provider_connector: str | None
    matched_by: str | None  # "certificate", "ip addresses" or None
    null_sender_attributed: bool | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    complete: bool = True
    unknown_fields: tuple[str, ...] = field(default=())
    connectors_checked: bool = True

    @property
    def worst(self) -> Severity | None:
        """The highest severity among the findings, or None when there are none."""
        return max((f.severity for f in self.findings), default=None)


def audit_exports(exports: ExportSet, profile: ProviderProfile) -> AuditReport:
    """Return the findings for the tenant whose exports are in `exports`.

    Steps: find the provider's connector; check how it matches and whether its certificate
    name is an accepted domain; check every connector for disabled state, wildcard and IP
    matching; check names for duplicates and conflicts; decide whether null-sender mail
    would be attributed.
    """
    connectors = exports.connectors
    domains = exports.accepted_domains if exports.has_accepted_domains else None
    findings: list[Finding] = []

    findings += _missing_exports(exports)
    provider = _provider_connector(connectors, profile)
    findings += _provider_findings(provider, connectors, profile, exports.has_connectors)

    upgraded = provider is not None and profile.is_unique_name(provider.tls_sender_certificate_name)
    for connector in connectors:
        if upgraded and connector.name.lower() == profile.backup_name.lower():
            continue  # the kept backup; _backup_findings reports it
        findings += _connector_findings(connector, connector is provider, profile, domains)

    findings += _name_findings(connectors, domains or [], provider, profile)
    attributed = None
    if exports.has_connectors:
        attributed, reason = _null_sender_attributed(provider, domains)
        findings.append(_null_sender_finding(provider, attributed, reason, profile))

    findings.sort(key=lambda f: (-f.severity, f.subject.lower(), f.code))
    return AuditReport(
        tenant=exports.tenant,
        files=tuple(_file_summary(export) for export in exports.exports),
        provider_connector=provider.name if provider else None,
        matched_by=_matched_by(provider) if provider else None,
        null_sender_attributed=attributed,
        findings=tuple(findings),
        notes=tuple(exports.notes),
        complete=exports.has_connectors and exports.has_accepted_domains,
        unknown_fields=tuple(f"{e.path}:{line}: {name}" for e in exports.exports for name, line in e.unknown_fields),
        connectors_checked=exports.has_connectors,
    )


def _file_summary(export) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "path": export.path,
        "cmdlet": export.kind.value,
        "form": export.form,
        "encoding": export.encoding,
        "objects": len(export.records),
    }


def _missing_exports(exports: ExportSet) -> list[Finding]:
    findings = []
    if not exports.has_connectors:
        findings.append(
            Finding(
                "connectors-not-given",
                Severity.WARNING,
                "exports",
                "No Get-InboundConnector export was given, so no connector was checked.",
                "Add the output of 'Get-InboundConnector | ConvertTo-Json -Depth 5'.",
            )
        )
    if not exports.has_accepted_domains:
        findings.append(
            Finding(
                "accepted-domains-not-given",
                Severity.WARNING,
                "exports",
                "No Get-AcceptedDomain export was given, so no certificate name was checked against "
                "the accepted domains and null-sender attribution is unknown.",
                "Add the output of 'Get-AcceptedDomain | ConvertTo-Json'.",
            )
        )
    return findings


def _provider_connector(connectors: list[InboundConnector], profile: ProviderProfile) -> InboundConnector | None:
    """Return the provider's active connector: by exact name first, then by certificate name."""
    owned = [c for c in connectors if profile.owns(c) and c.name.lower() != profile.backup_name.lower()]
    for connector in owned:
        if connector.name.lower() == profile.connector_name.lower():
            return connector
    return owned[0] if owned else None


def _matched_by(connector: InboundConnector) -> str | None:
    if connector.tls_sender_certificate_name:
        return "certificate"
    if connector.sender_ip_addresses:
        return "ip addresses"
    return None


def _provider_findings(
    provider: InboundConnector | None,
    connectors: list[InboundConnector],
    profile: ProviderProfile,
    has_connectors: bool,
) -> list[Finding]:
    if not has_connectors:
        return []
    if provider is None:
        return [
            Finding(
                "provider-connector-missing",
                Severity.ERROR,
                profile.connector_name,
                f"No inbound connector is named {profile.connector_name} or names the certificate "
                f"{profile.legacy_certificate_name} or a name under {profile.provider_zone}, so mail from "
                "the provider is not matched to a connector of this tenant.",
                "Create the connector with 'tenanttls script' or check that the export is of the right tenant.",
            )
        ]

    how = "by its name" if provider.name.lower() == profile.connector_name.lower() else "by its certificate name"
    matched = _matched_by(provider)
    detail = {
        "certificate": f"it matches mail on the certificate name {provider.tls_sender_certificate_name}",
        "ip addresses": f"it matches mail on the IP addresses {', '.join(provider.sender_ip_addresses)}",
        None: "it names neither a certificate nor IP addresses, so it matches no mail",
    }[matched]
    findings = [
        Finding("provider-connector", Severity.INFO, provider.name, f"This is the provider's connector ({how}); {detail}.")
    ]
    if provider.connector_type != "OnPremises":
        findings.append(
            Finding(
                "provider-connector-type",
                Severity.ERROR,
                provider.name,
                f"The connector's type is {provider.connector_type}; only OnPremises connectors let the "
                "provider relay the tenant's mail to outside recipients.",
                f"Set-InboundConnector -Identity '{provider.name}' -ConnectorType OnPremises, "
                "or let 'tenanttls script' create the new connector.",
            )
        )
    if provider.sender_domains != ("*",):
        findings.append(
            Finding(
                "provider-sender-domains",
                Severity.WARNING,
                provider.name,
                f"SenderDomains is {', '.join(provider.sender_domains) or 'empty'}; the provider relays "
                "mail of every sender domain, so mail from other domains is not matched.",
                f"Set-InboundConnector -Identity '{provider.name}' -SenderDomains *",
            )
        )
    return findings


def _connector_findings(
    connector: InboundConnector,
    is_provider: bool,
    profile: ProviderProfile,
    domains: list[AcceptedDomain] | None,
) -> list[Finding]:
    findings = []
    findings += _disabled_findings(connector, is_provider, profile)
    if connector.connector_type != "OnPremises":
        return findings

    findings += _ip_findings(connector, is_provider)
    findings += _certificate_findings(connector, is_provider, profile, domains)
    return findings


def _disabled_findings(connector: InboundConnector, is_provider: bool, profile: ProviderProfile) -> list[Finding]:
    if connector.enabled:
        return []

    never_changed = (
        connector.when_created is not None
        and connector.when_changed is not None
        and abs((connector.when_changed - connector.when_created).total_seconds()) < 2
    )
    if never_changed:
        explanation = (
            "The connector is disabled and has not changed since it was created, so it was most likely "
            "created disabled: Exchange Online does that in some tenants ('Inbound connector for this "
            "service offering is created in a disabled state')."
        )
        fix = f"Run Set-InboundConnector -Identity '{connector.name}' -Enabled $true; if Exchange refuses, ask Microsoft support to enable it."
    else:
        explanation = "The connector is disabled, so it matches no mail."
        fix = f"Run Set-InboundConnector -Identity '{connector.name}' -Enabled $true if it should be in use."

    if connector.name.lower() == profile.backup_name.lower():
        return [Finding("connector-disabled", Severity.INFO, connector.name, explanation + " It is the upgrade's backup.")]
    severity = Severity.ERROR if is_provider else (Severity.WARNING if never_changed else Severity.INFO)
    code = "connector-created-disabled" if never_changed else "connector-disabled"
    return [Finding(code, severity, connector.name, explanation, fix)]


def _ip_findings(connector: InboundConnector, is_provider: bool) -> list[Finding]:
    if connector.tls_sender_certificate_name or not connector.sender_ip_addresses:
        return []

    addresses = ", ".join(connector.sender_ip_addresses)
    if is_provider:
        return [
            Finding(
                "matches-on-shared-ips",
                Severity.ERROR,
                connector.name,
                f"The connector matches mail on IP addresses ({addresses}) that the provider's relay uses "
                "for all its customers. Microsoft names IP-based OnPremises connectors on shared IPs as a "
                "configuration that can stop working without notice.",
                "Upgrade the tenant to a certificate-based connector with a unique certificate name "
                "('tenanttls script').",
            )
        ]
    return [
        Finding(
            "matches-on-ips",
            Severity.WARNING,
            connector.name,
            f"The connector matches mail on IP addresses ({addresses}). If other tenants send from these "
            "addresses, Exchange Online cannot tell the tenants apart.",
            "Prefer a connector that matches a certificate name that is an accepted domain of this tenant.",
        )
    ]


def _certificate_findings(
    connector: InboundConnector,
    is_provider: bool,
    profile: ProviderProfile,
    domains: list[AcceptedDomain] | None,
) -> list[Finding]:
    name = connector.tls_sender_certificate_name
    if not name:
        return []

    findings = []
    if name.startswith("*."):
        findings.append(_wildcard_finding(connector, name, profile))
    if domains is not None and name != profile.legacy_certificate_name:
        findings += _accepted_domain_finding(connector, name, is_provider, domains)
    if not connector.require_tls:
        findings.append(
            Finding(
                "tls-not-required",
                Severity.WARNING,
                connector.name,
                "RequireTls is False, so mail without TLS is matched too and the certificate is not checked.",
                f"Set-InboundConnector -Identity '{connector.name}' -RequireTls $true",
            )
        )
    if not connector.restrict_domains_to_certificate:
        findings.append(
            Finding(
                "certificate-not-enforced",
                Severity.WARNING,
                connector.name,
                "RestrictDomainsToCertificate is False, so mail is matched without checking the certificate name.",
                f"Set-InboundConnector -Identity '{connector.name}' -RestrictDomainsToCertificate $true",
            )
        )
    return findings


def _wildcard_finding(connector: InboundConnector, name: str, profile: ProviderProfile) -> Finding:
    if name == profile.legacy_certificate_name:
        return Finding(
            "shared-wildcard-certificate",
            Severity.ERROR,
            connector.name,
            f"The certificate name {name} is shared by every customer of the provider and is an accepted "
            "domain of no tenant, so Exchange Online cannot attribute mail by certificate.",
            "Upgrade the tenant to its unique certificate name ('tenanttls script' or the portal).",
        )
    return Finding(
        "wildcard-certificate",
        Severity.WARNING,
        connector.name,
        f"The certificate name {name} is a wildcard; a wildcard certificate is usually shared with other "
        "tenants, and Microsoft recommends an exact name.",
        "Use a certificate with an exact name that is an accepted domain of this tenant.",
    )


def _accepted_domain_finding(
    connector: InboundConnector, name: str, is_provider: bool, domains: list[AcceptedDomain]
) -> list[Finding]:
    accepted = {d.domain_name.lower() for d in domains}
    if name in accepted:
        return [Finding("certificate-accepted", Severity.INFO, connector.name, f"The certificate name {name} is an accepted domain.")]

    base = name[2:] if name.startswith("*.") else None
    if base and base in accepted:
        return [
            Finding(
                "wildcard-base-accepted",
                Severity.WARNING,
                connector.name,
                f"The certificate name {name} is a wildcard over the accepted domain {base}; Microsoft says "
                "this works but recommends an exact name that is itself an accepted domain.",
                "Use a certificate with an exact name and add that name as an accepted domain.",
            )
        ]
    return [
        Finding(
            "certificate-not-accepted",
            Severity.ERROR if is_provider else Severity.WARNING,
            connector.name,
            f"The certificate name {name} is not an accepted domain of this tenant, so mail with an empty "
            "MAIL FROM (automatic replies, NDRs) to outside recipients is rejected with "
            "'550 5.7.64 TenantAttribution; Relay Access Denied'.",
            "Add the certificate's exact name as an accepted domain (Microsoft 365 admin center > Domains, "
            "TXT record, Verify), or upgrade with 'tenanttls script'.",
        )
    ]


def _name_findings(
    connectors: list[InboundConnector],
    domains: list[AcceptedDomain],
    provider: InboundConnector | None,
    profile: ProviderProfile,
) -> list[Finding]:
    findings = []
    findings += _duplicate_names(connectors, domains)
    findings += _backup_findings(connectors, provider, profile)
    findings += _shared_certificate_names(connectors)
    findings += _unused_unique_name(domains, provider, profile)
    return findings


def _duplicate_names(connectors: list[InboundConnector], domains: list[AcceptedDomain]) -> list[Finding]:
    findings = []
    seen: dict[str, InboundConnector] = {}
    for connector in connectors:
        key = connector.name.lower()
        if key in seen:
            findings.append(
                Finding(
                    "duplicate-connector-name",
                    Severity.ERROR,
                    connector.name,
                    f"Two connectors are named {connector.name} (Guids {seen[key].guid} and {connector.guid}); "
                    "cmdlets that take the name as -Identity fail or pick one.",
                    "Rename or remove one of them, or check that the files are of one tenant.",
                )
            )
        seen.setdefault(key, connector)

    names = [d.domain_name for d in domains]
    for name in sorted({n for n in names if names.count(n) > 1}):
        findings.append(
            Finding(
                "duplicate-accepted-domain",
                Severity.ERROR,
                name,
                f"The accepted domain {name} is listed twice with different Guids.",
                "Export Get-AcceptedDomain again; a tenant cannot hold one domain twice.",
            )
        )
    return findings


def _backup_findings(
    connectors: list[InboundConnector], provider: InboundConnector | None, profile: ProviderProfile
) -> list[Finding]:
    backup = next((c for c in connectors if c.name.lower() == profile.backup_name.lower()), None)
    if backup is None:
        return []

    if provider is not None and profile.is_unique_name(provider.tls_sender_certificate_name):
        return [
            Finding(
                "backup-connector",
                Severity.INFO,
                backup.name,
                "The connector from before the upgrade is kept under this name for rollback.",
            )
        ]
    return [
        Finding(
            "conflicting-backup",
            Severity.ERROR,
            backup.name,
            f"A connector named {backup.name} exists while the provider's connector does not use a unique "
            "certificate name, so the upgrade's rename step would collide with it.",
            f"Check what {backup.name} is; remove or rename it if it is left over from an earlier attempt.",
        )
    ]


def _shared_certificate_names(connectors: list[InboundConnector]) -> list[Finding]:
    findings = []
    by_name: dict[str, list[InboundConnector]] = {}
    for connector in connectors:
        if connector.enabled and connector.tls_sender_certificate_name:
            by_name.setdefault(connector.tls_sender_certificate_name, []).append(connector)

    for name, group in sorted(by_name.items()):
        if len(group) > 1:
            names = ", ".join(c.name for c in group)
            findings.append(
                Finding(
                    "conflicting-certificate-name",
                    Severity.WARNING,
                    name,
                    f"The enabled connectors {names} all match the certificate name {name}, so which one "
                    "applies to a message is not defined.",
                    "Disable or remove all but one of them.",
                )
            )
    return findings


def _unused_unique_name(
    domains: list[AcceptedDomain], provider: InboundConnector | None, profile: ProviderProfile
) -> list[Finding]:
    unique = [d for d in domains if profile.is_unique_name(d.domain_name)]
    if not unique or provider is None or profile.is_unique_name(provider.tls_sender_certificate_name):
        return []
    names = ", ".join(d.domain_name for d in unique)
    return [
        Finding(
            "upgrade-incomplete",
            Severity.WARNING,
            names,
            f"The unique name {names} is an accepted domain, but the provider's connector still matches "
            f"{provider.tls_sender_certificate_name or 'no certificate'}, so the upgrade stopped half-way.",
            "Finish the upgrade: run the script from 'tenanttls script' again (it resumes) or resume it in tenanttls.",
        )
    ]


def _null_sender_attributed(
    provider: InboundConnector | None, domains: list[AcceptedDomain] | None
) -> tuple[bool | None, str]:
    """Return whether mail with an empty MAIL FROM is attributed (None: domains unknown), and why not."""
    if provider is None:
        return False, "the tenant has no connector of the provider"
    name = provider.tls_sender_certificate_name
    if not provider.enabled:
        return False, "the provider's connector is disabled"
    if provider.connector_type != "OnPremises":
        return False, f"the provider's connector is of type {provider.connector_type}, not OnPremises"
    if not name:
        return False, "the provider's connector matches on IP addresses, not on a certificate name"
    if name.startswith("*."):
        return False, f"the certificate name {name} is a wildcard, which is an accepted domain of no tenant"
    if domains is None:
        return None, "the accepted domains were not given"
    if name not in {d.domain_name.lower() for d in domains}:
        return False, f"the certificate name {name} is not an accepted domain"
    return True, ""


def _null_sender_fix(provider: InboundConnector | None, profile: ProviderProfile) -> str:
    """Return the fix for mail with an empty MAIL FROM that is not attributed, for the cause `_null_sender_attributed` found."""
    upgrade = "Upgrade the tenant to its unique certificate name and accepted domain ('tenanttls script')."
    if provider is None:
        return upgrade
    if not provider.enabled:
        return (
            f"Enable the connector: Set-InboundConnector -Identity '{provider.name}' -Enabled $true; "
            "if Exchange refuses, ask Microsoft support to enable it."
        )
    if provider.connector_type != "OnPremises":
        return f"Set-InboundConnector -Identity '{provider.name}' -ConnectorType OnPremises"
    name = provider.tls_sender_certificate_name
    if not profile.is_unique_name(name):
        return upgrade
    return (
        f"The connector already uses the unique name {name}; make it an accepted domain again: the provider runs "
        "'tenanttls drift TENANT --repair', which adds and verifies it in Microsoft Graph. Do not remove this domain "
        "in the Microsoft 365 admin center."
    )


def _null_sender_finding(
    provider: InboundConnector | None, attributed: bool | None, reason: str, profile: ProviderProfile
) -> Finding:
    subject = provider.name if provider else profile.connector_name
    if attributed:
        return Finding(
            "null-sender-attributed",
            Severity.INFO,
            subject,
            f"Mail with an empty MAIL FROM is attributed to this tenant through the certificate name "
            f"{provider.tls_sender_certificate_name}, an accepted domain matched by an enabled OnPremises connector.",
        )
    if attributed is None:
        return Finding(
            "null-sender-unknown",
            Severity.WARNING,
            subject,
            "Whether mail with an empty MAIL FROM is attributed depends on the accepted domains, which were not given.",
            "Add the output of 'Get-AcceptedDomain | ConvertTo-Json'.",
        )
    return Finding(
        "null-sender-not-attributed",
        Severity.ERROR,
        subject,
        f"Mail with an empty MAIL FROM (automatic replies, NDRs) cannot be attributed to this tenant because "
        f"{reason}; Exchange Online rejects it with '550 5.7.64 TenantAttribution; Relay Access Denied'.",
        _null_sender_fix(provider, profile),
    )
