"""Reasons for a stopped upgrade in words for the customer, and the override an operator may pass.

The engine stores the kind of each stop in `upgrades.stop_kind` and its message in
`upgrades.last_error`. The message is written for the provider's staff: it names
exceptions and ``tenanttls`` commands. Customers see `StopReason.customer`, chosen by
the kind, and the message stays in the operator view and the logs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from tenanttls.migration.outcomes import StopKind
from tenanttls.migration.safety import FLAGS, Overrides
from tenanttls.migration.states import UpgradeState
from tenanttls.portal.timeline import STEP_LABELS
from tenanttls.store.upgrades import UpgradeRecord

# Description of each engine override, as `tenanttls upgrade` describes its flag, keyed by `Overrides` field.
OVERRIDE_LABELS = {
    "force_backup_overwrite": "Replace an existing -BACKUP connector whose settings differ (a copy is stored first)",
    "allow_foreign_connector": "Go on although a connector the provider did not create already names the unique certificate",
    "adopt_connector": "Take over a connector the provider did not create that has the new connector's name",
    "legacy_connector": "Keep the named connector as the backup when several look like the legacy one",
    "allow_disabled_connector": "Keep waiting for Microsoft support to enable a connector that Exchange created disabled",
}
OVERRIDE_FIELDS = tuple(field.name for field in fields(Overrides))

# The customer's explanation of each kind of stop. `{step}` is the label of the step that stopped, and
# `{connector}` is the new connector's name.
CUSTOMER_TEXTS = {
    StopKind.CONSENT: (
        "Microsoft 365 no longer accepts the provider's app for your tenant: the permissions are missing or were "
        "removed. A Global Administrator or Privileged Role Administrator can grant them again on this page. "
        "The upgrade then continues on its own."
    ),
    StopKind.CONNECTOR_DISABLED: (
        "Exchange Online created the new connector {connector} disabled. This happens on some tenants, "
        "whose inbound connectors Exchange Online creates disabled. Contact Microsoft support and ask them to "
        "enable inbound connectors for your tenant, then ask the provider to retry. Meanwhile mail keeps flowing "
        "through {connector}-BACKUP, your previous connector."
    ),
    StopKind.SAFETY: (
        "The upgrade stopped before the step \u201c{step}\u201d because your tenant's connectors are not as "
        "expected, for example a connector the provider did not create uses a name the upgrade needs. The "
        "upgrade changes nothing in such a case without the provider's review. The provider's team decides how "
        "to go on and contacts you if they need you."
    ),
    StopKind.GAVE_UP: (
        "Microsoft 365 did not respond as expected several times in a row during the step \u201c{step}\u201d, "
        "so the upgrade paused. The provider's team retries it; nothing needs to be done on your side."
    ),
    StopKind.TIMED_OUT: (
        "Exchange Online did not list the new domain as an accepted domain of your tenant within the time the "
        "upgrade waits, so the upgrade paused at the step \u201c{step}\u201d. The provider's team checks the "
        "domain and retries, or contacts you if they need your help."
    ),
    StopKind.PERMISSIONS: (
        "Microsoft 365 denied the provider's app a change in your tenant during the step \u201c{step}\u201d, "
        "because the app lacks a permission or an administrator role there. The provider's team checks the "
        "app's permissions and contacts you if an administrator of your tenant needs to assign them."
    ),
    StopKind.REJECTED: (
        "Microsoft 365 rejected a change that the upgrade requested during the step \u201c{step}\u201d. "
        "The provider's team looks at the error and retries the upgrade once it is fixed, or contacts you if "
        "they need your help."
    ),
    StopKind.UNKNOWN_TENANT: (
        "Microsoft Entra ID does not know the tenant id that the provider has on file for your organization, "
        "so the upgrade cannot start. The provider's team checks the id and contacts you if they need your help."
    ),
    StopKind.ROLLBACK_BLOCKED: (
        "The rollback paused because your previous connector could not be restored from its -BACKUP copy: "
        "either both connectors exist or neither does. The provider's team looks at your connectors and "
        "contacts you before they change anything."
    ),
    StopKind.OTHER: (
        "The upgrade paused at the step \u201c{step}\u201d because of an error that the provider's team needs to "
        "look at. They retry the upgrade once it is fixed, or contact you if they need your help."
    ),
}

# The start of the engine's message when a step stopped because the app has no consent any more.
_CONSENT_MISSING = "consent is missing"


@dataclass(frozen=True)
class StopReason:
    """The reason a tenant is in needs_attention.

    `kind` is the engine's kind of stop. `customer` explains it to the tenant's admin.
    `override` is the `Overrides` field that lets the upgrade go on, or None.
    """

    kind: StopKind
    customer: str
    override: str | None = None


def explain_stop(upgrade: UpgradeRecord, *, connector_name: str) -> StopReason:
    """Return the customer's explanation of the tenant's stop, chosen by `stop_kind(upgrade)`.

    The override of a disabled connector follows from the kind. For other kinds it is the
    flag that the engine's message names, such as ``--force-backup-overwrite``.
    """
    kind = stop_kind(upgrade)
    if kind is StopKind.CONNECTOR_DISABLED:
        override = "allow_disabled_connector"
    else:
        override = suggested_override(upgrade.last_error or "")

    text = CUSTOMER_TEXTS[kind].format(step=_step_label(upgrade.resume_state), connector=connector_name)
    return StopReason(kind, text, override)


def stop_kind(upgrade: UpgradeRecord) -> StopKind:
    """Return the kind of the tenant's stop: the stored `stop_kind`, else the kind that its message suggests.

    A stored kind that this version does not know (from a newer engine) counts as OTHER.
    """
    if upgrade.stop_kind is None:
        return _kind_from_message(upgrade.last_error or "", upgrade.resume_state)
    try:
        return StopKind(upgrade.stop_kind)
    except ValueError:
        return StopKind.OTHER


def _kind_from_message(text: str, resume_state: str | None) -> StopKind:
    # NOTE: a worker of a tenanttls older than store revision 0005 stops tenants without a kind. For those
    # rows only, the kind is recognised by phrases and flags of the message, which a rewording can break.
    if text.startswith(_CONSENT_MISSING):
        return StopKind.CONSENT
    disabled = suggested_override(text) == "allow_disabled_connector"
    if disabled or (resume_state == UpgradeState.CONNECTOR.value and "disabled" in text):
        return StopKind.CONNECTOR_DISABLED
    if "safety gate" in text:
        return StopKind.SAFETY
    if "gave up after" in text:
        return StopKind.GAVE_UP
    return StopKind.OTHER


def consent_lost(upgrade: UpgradeRecord) -> bool:
    """True when the engine stopped the tenant because its consent is missing or was withdrawn."""
    if upgrade.state != UpgradeState.NEEDS_ATTENTION.value:
        return False
    return stop_kind(upgrade) is StopKind.CONSENT


def suggested_override(text: str) -> str | None:
    """Return the `Overrides` field whose ``tenanttls upgrade`` flag `text` names, or None."""
    for flag in FLAGS.values():
        if flag and flag.split()[0] in text:
            return flag.split()[0].removeprefix("--").replace("-", "_")
    return None


def _step_label(state: str | None) -> str:
    try:
        return STEP_LABELS[UpgradeState(state)]
    except (ValueError, KeyError):
        return "unknown step"
