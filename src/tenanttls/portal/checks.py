"""The checks panel: live checks of one tenant, each passed or failed with the fix.

Each check reads, never writes, and catches only the errors it explains: a
Microsoft API error, a DNS or network failure. Its result states what was found and,
when it failed, what the customer or the provider should do.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from tenanttls.audit.drift import DRIFT_PARTIALLY_REPAIRED, DRIFT_REPAIRED, DriftItem, is_open, latest_drift
from tenanttls.clock import Clock
from tenanttls.domain.exchange import InboundConnector
from tenanttls.errors import ConsentRequired, MicrosoftApiError, NotFound, PermissionDenied, TenantTlsError
from tenanttls.migration.planner import backup_name, is_ours
from tenanttls.migration.states import FORWARD, UpgradeState
from tenanttls.store.audit import AuditEvent

logger = logging.getLogger(__name__)

SMTP_PORT = 25
# Seconds to wait for the return host's TCP connection and its 220 greeting.
RETURN_HOST_TIMEOUT = 5.0
# A certificate closer than this to its expiry is shown as a failed check.
MIN_DAYS_TO_EXPIRY = 14


@dataclass(frozen=True)
class CheckResult:
    """One line of the checks panel.

    `passed` is True (green), False (red) or None when the check does not apply yet
    (grey). `detail` states what was found and `fix` what to do when it failed, both in
    words for the customer. `technical` is the raw error, shown to operators only.
    """

    key: str
    title: str
    passed: bool | None
    detail: str
    fix: str = ""
    technical: str = ""

    def to_json(self, *, technical: bool = False) -> dict[str, Any]:
        """Return the result as JSON; `technical` adds the raw error, for operators."""
        values = {"key": self.key, "title": self.title, "passed": self.passed, "detail": self.detail, "fix": self.fix}
        if technical:
            values["technical"] = self.technical
        return values


@dataclass(frozen=True)
class CertificateInfo:
    """The tenant's active certificate, as the checks need it."""

    name: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class CheckSubject:
    """The subject of the checks: the tenant, its upgrade state, unique name, smart host and certificate."""

    tenant_id: str
    initial_domain: str
    state: str
    unique_name: str | None
    smart_host: str | None
    certificate: CertificateInfo | None
    connector_name: str
    legacy_certificate_name: str
    # The step a tenant in needs_attention stopped at; its connectors are checked as in that step.
    resume_state: str | None = None

    @property
    def step(self) -> str:
        """The state whose connectors are expected: the stopped step for a tenant in needs_attention."""
        if self.state == UpgradeState.NEEDS_ATTENTION.value and self.resume_state:
            return self.resume_state
        return self.state


def _after(state: str, step: UpgradeState) -> bool:
    """True when the tenant has finished `step` on the forward path."""
    try:
        current = UpgradeState(state)
    except ValueError:
        return False
    if current not in FORWARD:
        return False
    return FORWARD.index(current) > FORWARD.index(step)


class CheckRunner:
    """Run the checks of one tenant against the Microsoft clients."""

    def __init__(self, clients: Any, clock: Clock, *, connect: Callable[..., socket.socket] = socket.create_connection) -> None:
        self._clients = clients
        self._clock = clock
        self._connect = connect

    def run(self, subject: CheckSubject) -> list[CheckResult]:
        """Return every check's result, in the order the panel shows them."""
        token = self.check_token(subject)
        consent = self.check_consent(subject, token)
        results = [token, consent]

        if consent.passed:
            results.append(self.check_accepted_domain(subject))
            results.append(self.check_connectors(subject))
        else:
            results.append(CheckResult("domain", "Accepted domain present and verified", None, "Needs the permissions first."))
            results.append(CheckResult("connectors", "Connectors as expected", None, "Needs the permissions first."))

        results.append(self.check_drift(subject))
        results.append(self.check_certificate(subject))
        results.append(self.check_return_host(subject))
        return results

    # -- identity platform ------------------------------------------------------------------

    def check_token(self, subject: CheckSubject) -> CheckResult:
        title = "Token can be obtained"
        try:
            self._clients.tokens.get_token(subject.tenant_id, self._clients.exchange.scope)
        except (ConsentRequired, PermissionDenied) as error:
            return CheckResult(
                "token", title, False,
                "Microsoft 365 gives the provider's app no access to your tenant: the permissions have not been granted "
                "yet, or they were removed.",
                "A Global Administrator or Privileged Role Administrator of your tenant presses Grant permissions on the "
                "Connector page and accepts on Microsoft's page.",
                str(error),
            )
        except TenantTlsError as error:
            logger.warning("check failed: tenant=%s check=token error=%s", subject.tenant_id, error)
            return CheckResult(
                "token", title, False, "The provider's app could not get access to your tenant just now.",
                "Run the checks again in a few minutes; contact support if this stays red.", str(error),
            )
        return CheckResult("token", title, True, "The provider's app obtained an access token for your tenant.")

    def check_consent(self, subject: CheckSubject, token: CheckResult) -> CheckResult:
        title = "Permissions effective"
        if not token.passed:
            return CheckResult("consent", title, None, "Needs a token first.")
        try:
            self._clients.exchange.get_accepted_domains(subject.tenant_id)
        except (ConsentRequired, PermissionDenied) as error:
            return CheckResult(
                "consent", title, False, "Exchange Online rejected the provider's app for your tenant.",
                "Grant the permissions again on the Connector page; a new consent can take a few minutes to take effect.",
                str(error),
            )
        except MicrosoftApiError as error:
            logger.warning("check failed: tenant=%s check=consent error=%s", subject.tenant_id, error)
            return CheckResult(
                "consent", title, False, "Exchange Online did not respond as expected.", "Run the checks again in a few minutes.",
                str(error),
            )
        return CheckResult("consent", title, True, "Exchange Online accepts the app's requests for your tenant.")

    # -- Graph and Exchange -----------------------------------------------------------------

    def check_accepted_domain(self, subject: CheckSubject) -> CheckResult:
        title = "Accepted domain present and verified"
        name = subject.unique_name
        if name is None:
            return CheckResult("domain", title, None, "The unique name is allocated when the upgrade starts.")

        try:
            domain = self._clients.graph.get_domain(subject.tenant_id, name)
            accepted = self._clients.exchange.get_accepted_domains(subject.tenant_id)
        except NotFound:
            return self._missing_domain(subject, title, name)
        except MicrosoftApiError as error:
            logger.warning("check failed: tenant=%s check=domain error=%s", subject.tenant_id, error)
            return CheckResult(
                "domain", title, False, f"{name} could not be read from Microsoft 365 just now.", "Run the checks again in a few minutes.",
                str(error),
            )

        listed = any(item.domain_name == name for item in accepted)
        if domain.is_verified and listed:
            return CheckResult("domain", title, True, f"{name} is verified and listed as an accepted domain.")
        if not _after(subject.state, UpgradeState.DOMAIN):
            return CheckResult("domain", title, None, f"{name} is being added and verified; this is the current step.")
        if not domain.is_verified:
            return CheckResult(
                "domain", title, False, f"{name} exists but is not verified.",
                "The provider's upgrade verifies it; use Retry or contact support if this stays red.",
            )
        if not _after(subject.state, UpgradeState.ACCEPTED):
            return CheckResult("domain", title, None, f"{name} is verified; Exchange Online has not listed it yet (this can take hours).")
        return CheckResult(
            "domain", title, False, f"{name} is verified but Exchange Online does not list it as an accepted domain.",
            "Wait for Microsoft's propagation, then run the checks again; contact support if it persists.",
        )

    def _missing_domain(self, subject: CheckSubject, title: str, name: str) -> CheckResult:
        if _after(subject.state, UpgradeState.DOMAIN):
            return CheckResult(
                "domain", title, False, f"{name} is not a domain of your tenant any more.",
                "Do not remove this domain in the Microsoft 365 admin center. Ask support to add it again.",
            )
        return CheckResult("domain", title, None, f"{name} is added when the upgrade reaches this step.")

    def check_connectors(self, subject: CheckSubject) -> CheckResult:
        title = "Connectors as expected"
        try:
            connectors = self._clients.exchange.get_inbound_connectors(subject.tenant_id)
        except MicrosoftApiError as error:
            logger.warning("check failed: tenant=%s check=connectors error=%s", subject.tenant_id, error)
            return CheckResult(
                "connectors", title, False, "The connectors could not be read from Exchange Online just now.",
                "Run the checks again in a few minutes.", str(error),
            )

        disabled = created_disabled(subject, connectors)
        if disabled is not None:
            return CheckResult(
                "connectors", title, False,
                f"Exchange Online created the new connector {disabled.name} disabled, so it cannot accept our mail yet. "
                "This happens on some tenants, whose inbound connectors Exchange Online creates disabled.",
                "Contact Microsoft support and ask them to enable inbound connectors for your tenant, then ask the "
                f"provider to retry the upgrade. Meanwhile mail keeps flowing through {backup_name(subject.connector_name)}, "
                "your previous connector.",
            )
        problems = expected_connector_problems(subject, connectors)
        if problems:
            return CheckResult(
                "connectors", title, False, " ".join(problems),
                "Do not change the connectors by hand during the upgrade; roll back, or contact support.",
            )
        return CheckResult("connectors", title, True, describe_connectors(connectors))

    # -- drift, from the store --------------------------------------------------------------

    def check_drift(self, subject: CheckSubject) -> CheckResult:
        """Show the latest recorded drift check of a completed tenant; it reads the store, not Microsoft."""
        title = "Configuration matches what tenanttls set up"
        if subject.state != UpgradeState.COMPLETED.value:
            return CheckResult("drift", title, None, "Checked once the upgrade is completed.")

        event = latest_drift(self._clients, subject.tenant_id)
        if event is None:
            return CheckResult("drift", title, True, "No drift has been recorded since the upgrade completed.")
        when = event.at.isoformat(sep=" ", timespec="minutes")
        if not is_open(event):
            how = "repaired" if event.action == DRIFT_REPAIRED else "found to match again"
            return CheckResult("drift", title, True, f"The connector, the domain and our servers were {how} at {when}.")

        fields = drifted_fields(event)
        detail = f"At {when} the setup differed from what tenanttls set up: {'; '.join(fields) or 'see the audit trail'}."
        if event.action == DRIFT_PARTIALLY_REPAIRED:
            detail += " A repair ran but did not finish."
        return CheckResult(
            "drift", title, False, detail,
            "The provider repairs it. Do not change the connector or the domain by hand; contact support if this "
            "stays red.",
            f"Repair with 'tenanttls drift {subject.tenant_id} --repair'.",
        )

    # -- certificate and return path --------------------------------------------------------

    def check_certificate(self, subject: CheckSubject) -> CheckResult:
        title = "Certificate valid"
        certificate = subject.certificate
        if certificate is None:
            if _after(subject.state, UpgradeState.IDENTITY):
                return CheckResult("certificate", title, False, "No active certificate is stored for the unique name.", "Contact support.")
            return CheckResult("certificate", title, None, "The certificate is issued when the upgrade starts.")

        now = self._clock.now()
        days = (certificate.not_after - now).days
        if now < certificate.not_before or now >= certificate.not_after:
            return CheckResult(
                "certificate", title, False, f"The certificate for {certificate.name} is outside its validity period.",
                "Contact support; the provider renews it.",
            )
        if days < MIN_DAYS_TO_EXPIRY:
            return CheckResult(
                "certificate", title, False, f"The certificate for {certificate.name} expires in {days} days.",
                "The provider renews certificates automatically; contact support if this stays red.",
            )
        return CheckResult("certificate", title, True, f"The certificate for {certificate.name} is valid for {days} more days.")

    def check_return_host(self, subject: CheckSubject) -> CheckResult:
        title = "Return host reachable"
        host, port = return_host(subject)
        try:
            with self._connect((host, port), timeout=RETURN_HOST_TIMEOUT) as connection:
                connection.settimeout(RETURN_HOST_TIMEOUT)
                greeting = connection.recv(512).decode("ascii", "replace")
        except OSError as error:
            logger.warning("check failed: tenant=%s check=return_host host=%s port=%s error=%s", subject.tenant_id, host, port, error)
            return CheckResult(
                "return_host", title, False, _unreachable(host, port, error),
                f"The provider delivers your tenant's mail to {host}. Contact support if this stays red, and tell them "
                "if your organisation changed how Microsoft 365 receives its mail.",
                f"{type(error).__name__}: {error}",
            )
        if not greeting.startswith("220"):
            return CheckResult("return_host", title, False, f"{host} port {port} answered {greeting[:60]!r} instead of 220.", "Contact support.")
        return CheckResult("return_host", title, True, f"{host} port {port} accepts SMTP connections.")


def _unreachable(host: str, port: int, error: OSError) -> str:
    """Return why `host` could not be reached, in plain words."""
    if isinstance(error, socket.gaierror):
        return f"{host} was not found in DNS, so the provider cannot deliver mail to it."
    if isinstance(error, ConnectionRefusedError):
        return f"{host} refused the connection on port {port}."
    if isinstance(error, TimeoutError):
        return f"{host} did not answer on port {port} within {RETURN_HOST_TIMEOUT:g} seconds."
    return f"{host} could not be reached on port {port}."


def return_host(subject: CheckSubject) -> tuple[str, int]:
    """Return the host and port the relay delivers the tenant's mail to.

    The stored smart host may carry a port (``host:port`` or ``[IPv6]:port``); without a
    stored smart host it is ``<initial label>.mail.protection.outlook.com`` on port 25.
    """
    if subject.smart_host:
        text = subject.smart_host.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        else:
            host, port = text, ""
        return host, int(port) if port.isdigit() else SMTP_PORT
    label = subject.initial_domain.split(".")[0]
    return f"{label}.mail.protection.outlook.com", SMTP_PORT


def expected_connector_problems(subject: CheckSubject, connectors: list[InboundConnector]) -> list[str]:
    """Return what differs from the connectors expected at the tenant's state (empty when all is right)."""
    by_name = {connector.name.lower(): connector for connector in connectors}
    main = by_name.get(subject.connector_name.lower())
    backup = by_name.get(backup_name(subject.connector_name).lower())
    legacy = subject.legacy_certificate_name.lower()
    problems = []

    if _after(subject.step, UpgradeState.CONNECTOR):
        if main is None or not is_ours(main) or main.tls_sender_certificate_name != (subject.unique_name or "").lower():
            problems.append(f"The new connector {subject.connector_name} for {subject.unique_name} is missing or changed.")
        elif not main.enabled:
            problems.append(f"The new connector {subject.connector_name} is disabled.")
        if backup is None:
            problems.append(f"The backup connector {backup_name(subject.connector_name)} is missing.")
    elif _after(subject.step, UpgradeState.BACKUP):
        if backup is None:
            problems.append(f"The backup connector {backup_name(subject.connector_name)} is missing.")
    elif main is None or main.tls_sender_certificate_name != legacy:
        problems.append(f"The connector {subject.connector_name} for {subject.legacy_certificate_name} is missing or changed.")
    elif not main.enabled:
        problems.append(f"The connector {subject.connector_name} is disabled, so mail from the provider is not accepted.")
    return problems


def created_disabled(subject: CheckSubject, connectors: list[InboundConnector]) -> InboundConnector | None:
    """Return the new connector when the upgrade is at the connector step and Exchange keeps it disabled.

    On some tenants Exchange Online creates every inbound connector disabled and rejects
    enabling it; only Microsoft support can change that.
    """
    if subject.step != UpgradeState.CONNECTOR.value:
        return None
    main = next((connector for connector in connectors if connector.name.lower() == subject.connector_name.lower()), None)
    if main is None or not is_ours(main) or main.enabled:
        return None
    return main


def describe_connectors(connectors: list[InboundConnector]) -> str:
    """Return the connectors in one plain sentence: name, certificate name, enabled."""
    if not connectors:
        return "Your tenant has no inbound connectors."
    parts = [
        f"{connector.name} (certificate {connector.tls_sender_certificate_name or 'none'}, "
        f"{'enabled' if connector.enabled else 'disabled'})"
        for connector in connectors
    ]
    return "Found: " + "; ".join(parts) + "."


def drifted_fields(event: AuditEvent) -> list[str]:
    """Return the drift items of an open drift event in words: what remains, else what was found."""
    items = event.after or event.before
    if not isinstance(items, list):
        return []
    described = []
    for item in items:
        if isinstance(item, dict):
            values = {key: tuple(value) if isinstance(value, list) else value for key, value in item.items()}
            described.append(DriftItem(**values).describe())
    return described
