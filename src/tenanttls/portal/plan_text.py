"""The plan in words for the customer's admin.

The engine describes each change for operators, in Graph and Exchange terms
(``isVerified $false → $true``, ``verificationDnsRecords``, ``Set-InboundConnector``
parameters). The plan page shows the sentences below instead and keeps the engine's
lines behind a "Technical details" disclosure.
"""

from __future__ import annotations

from datetime import timedelta

from tenanttls.migration import changes
from tenanttls.migration.planner import TenantPlan
from tenanttls.migration.safety import Violation
from tenanttls.portal.explanations import describe_duration
from tenanttls.portal.rendering import format_time

# The planner's placeholders for a unique name that is allocated when the upgrade starts.
_PLACEHOLDER_PREFIX = "<"
_UNIQUE_NAME = "your tenant's unique certificate name"

# The meaning of each safety-gate violation for the customer, keyed by violation code.
_VIOLATIONS = {
    "backup_exists": "A connector named {object} already exists, with other settings than your current connector.",
    "foreign_connector": "A connector that the provider did not create ({object}) already names the certificate the upgrade would use.",
    "name_taken": "A connector that the provider did not create already has the name {object}, which the new connector needs.",
    "several_legacy": "Several connectors look like the one that accepts our mail today ({object}), so the upgrade cannot tell which to keep.",
    "connector_disabled": "Exchange Online keeps the new connector {object} disabled.",
    "backup_missing": "The backup connector {object} is missing.",
}


def _name(name: str, *, again: bool = False) -> str:
    """Return `name`, or words for the unique name when the plan has only its placeholder.

    A placeholder means the plan starts by creating the name, so `again` refers back to it.
    """
    if not name.startswith(_PLACEHOLDER_PREFIX):
        return name
    return "that name" if again else _UNIQUE_NAME


def describe_change(change: changes.Change, *, legacy_certificate_name: str, grace: timedelta) -> str:
    """Return one sentence that states what `change` does in the customer's tenant or on our servers."""
    sentence = _identity_sentence(change) or _connector_sentence(change)
    if sentence is None:
        sentence = _mail_flow_sentence(change, legacy_certificate_name, grace)
    return sentence or " ".join(change.describe())


def _identity_sentence(change: changes.Change) -> str | None:
    """Return the sentence for a change of the unique name, its certificate or its domain."""
    if isinstance(change, changes.AllocateIdentity):
        return f"Create {_UNIQUE_NAME}, a new name under {change.zone} that belongs to your tenant only."
    if isinstance(change, changes.IssueCertificate):
        return f"Issue a certificate for {_name(change.name, again=True)}. Our servers present it when they deliver your mail."
    if isinstance(change, changes.AddDomain):
        return f"Add {_name(change.name, again=True)} to your tenant as a domain."
    if isinstance(change, changes.PublishVerificationRecord):
        return f"Publish the DNS record that proves to Microsoft 365 that the provider owns {_name(change.name, again=True)}."
    if isinstance(change, changes.VerifyDomain):
        return f"Verify {_name(change.name, again=True)} in your tenant."
    if isinstance(change, changes.AwaitAcceptedDomain):
        return (
            f"Wait until Exchange Online lists {_name(change.name, again=True)} as an accepted domain; this takes from "
            "minutes to a few hours."
        )
    return None


def _connector_sentence(change: changes.Change) -> str | None:
    """Return the sentence for a change of an inbound connector."""
    if isinstance(change, changes.SaveSnapshot):
        return f"Save a copy of the settings of your connector {change.connector_name}, so that a rollback can restore it exactly."
    if isinstance(change, changes.RemoveConnector):
        return f"Remove the connector {change.connector_name}; a copy of its settings is saved first."
    if isinstance(change, changes.RenameConnector):
        return f"Rename your connector {change.from_name} to {change.to_name}. It keeps accepting our mail with the shared certificate."
    if isinstance(change, changes.CreateConnector):
        certificate = _name(change.settings.tls_sender_certificate_name or "<unique name>")
        return (
            f"Create the new connector {change.settings.name}. It accepts mail from our servers over TLS when they "
            f"present the certificate for {certificate}."
        )
    if isinstance(change, changes.SetConnector):
        return f"Correct the settings of the connector {change.connector_name}: {', '.join(change.differences) or 'none'}."
    return None


def _mail_flow_sentence(change: changes.Change, legacy_certificate_name: str, grace: timedelta) -> str | None:
    """Return the sentence for the grace period, the switch of our servers or the test message."""
    if isinstance(change, changes.AwaitGrace):
        return _grace_sentence(change, grace)
    if isinstance(change, changes.SwitchRelay):
        return (
            f"Our servers start presenting the certificate for {_name(change.to_name)} instead of the shared certificate "
            f"{legacy_certificate_name}."
        )
    if isinstance(change, changes.ProbeMailFlow):
        return "Send a test message to check that Microsoft 365 accepts our mail and attributes it to your tenant."
    return None


def _grace_sentence(change: changes.AwaitGrace, grace: timedelta) -> str:
    if change.until is not None:
        return (
            f"Wait until {format_time(change.until)}, the end of the grace period, so that the new connector has reached "
            "all of Microsoft's servers. Both connectors accept our mail meanwhile."
        )
    return (
        f"Wait {describe_duration(grace)}, the grace period, so that the new connector reaches all of Microsoft's "
        "servers. Both connectors accept our mail meanwhile."
    )


def describe_violation(violation: Violation) -> str:
    """Return what a safety-gate violation means for the customer, without the operator's flags."""
    template = _VIOLATIONS.get(violation.code, "Something in your tenant's connectors is not as the upgrade expects ({object}).")
    return template.format(object=violation.object_name)


def customer_notes(plan: TenantPlan, connector_name: str) -> list[str]:
    """Return the plan's notes that matter to the customer, in their words."""
    notes = []
    for note in plan.notes:
        if note.startswith("no legacy connector found"):
            notes.append(
                f"Your tenant has no connector named {connector_name} that accepts our mail today, so there is nothing "
                "to rename and keep as a backup."
            )
    return notes
