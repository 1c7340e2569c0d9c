"""Reasons for a stopped upgrade in words for the customer, and the override an operator may pass.

The engine stores the reason a tenant went to needs_attention as the text of
`upgrades.last_error`, written for the provider's staff: it names exceptions and
``tenanttls`` commands. Customers see `StopReason.customer` instead, and the raw
text stays in the operator view and the logs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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

# The engine's text when a step stopped because the app has no consent any more.
_CONSENT_MISSING = "consent is missing"


@dataclass(frozen=True)
class StopReason:
    """The reason a tenant is in needs_attention.

    `kind` is ``consent``, ``connector_disabled``, ``safety``, ``gave_up`` or ``other``.
    `customer` explains it to the tenant's admin. `override` is the `Overrides` field that
    the engine's message suggests, or None.
    """

    kind: str
    customer: str
    override: str | None = None


def explain_stop(last_error: str | None, resume_state: str | None, *, connector_name: str) -> StopReason:
    """Return the customer's explanation of a stop from the engine's `last_error` text.

    NOTE: the engine records the reason as text only. The kind is therefore recognised by
    the phrases and flags its messages contain, and an unrecognised text becomes ``other``.
    """
    text = last_error or ""
    step = _step_label(resume_state)
    override = suggested_override(text)

    if text.startswith(_CONSENT_MISSING):
        return StopReason(
            "consent",
            "Microsoft 365 no longer accepts the provider's app for your tenant: the permissions are missing or were "
            "removed. A Global Administrator or Privileged Role Administrator can grant them again on this page. "
            "The upgrade then continues on its own.",
        )
    if override == "allow_disabled_connector" or (resume_state == UpgradeState.CONNECTOR.value and "disabled" in text):
        return StopReason(
            "connector_disabled",
            f"Exchange Online created the new connector {connector_name} disabled. This happens on some tenants, "
            "whose inbound connectors Exchange Online creates disabled. Contact Microsoft support and ask them to "
            f"enable inbound connectors for your tenant, then ask the provider to retry. Meanwhile mail keeps flowing "
            f"through {connector_name}-BACKUP, your previous connector.",
            "allow_disabled_connector",
        )
    if "safety gate" in text:
        return StopReason(
            "safety",
            f"The upgrade stopped before the step \u201c{step}\u201d because your tenant's connectors are not as "
            "expected, for example a connector the provider did not create uses a name the upgrade needs. The "
            "upgrade changes nothing in such a case without the provider's review. The provider's team decides how "
            "to go on and contacts you if they need you.",
            override,
        )
    if "gave up after" in text:
        return StopReason(
            "gave_up",
            f"Microsoft 365 did not respond as expected several times in a row during the step \u201c{step}\u201d, "
            "so the upgrade paused. The provider's team retries it; nothing needs to be done on your side.",
        )
    return StopReason(
        "other",
        f"The upgrade paused at the step \u201c{step}\u201d because of an error that the provider's team needs to "
        "look at. They retry the upgrade once it is fixed, or contact you if they need your help.",
        override,
    )


def consent_lost(upgrade: UpgradeRecord) -> bool:
    """True when the engine stopped the tenant because its consent is missing or was withdrawn."""
    if upgrade.state != UpgradeState.NEEDS_ATTENTION.value:
        return False
    return explain_stop(upgrade.last_error, upgrade.resume_state, connector_name="").kind == "consent"


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
