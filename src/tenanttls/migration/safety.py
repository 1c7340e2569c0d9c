"""The safety gate: plans that would touch something unexpected are rejected.

Each `Violation` names the object, what is unexpected and the override flag of
``tenanttls upgrade`` that accepts the risk. Overrides are stored per tenant with
the upgrade request, so the worker applies the same decision later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tenanttls.errors import PlanSafetyError


@dataclass(frozen=True)
class Overrides:
    """Operator decisions that relax the safety gate for one tenant."""

    # Remove an existing <Name>-BACKUP connector whose settings differ from the original.
    force_backup_overwrite: bool = False
    # Go on although a connector we did not create already names the unique certificate.
    allow_foreign_connector: bool = False
    # Take over a connector we did not create that already has the new connector's name.
    adopt_connector: bool = False
    # The connector to treat as the legacy one when several look like it, or when the
    # connector named like it is on another certificate.
    legacy_connector: str | None = None
    # Keep waiting for Microsoft support to enable a connector that Exchange created disabled.
    allow_disabled_connector: bool = False

    @classmethod
    def from_json(cls, values: dict[str, Any] | None) -> "Overrides":
        """Build overrides from the stored JSON object, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in (values or {}).items() if key in known})

    def to_json(self) -> dict[str, Any]:
        """Return the overrides that are set, as a JSON object."""
        return {key: value for key, value in asdict(self).items() if value not in (False, None)}

    def merged(self, other: "Overrides") -> "Overrides":
        """Return these overrides with every override set in `other` added."""
        return Overrides.from_json({**self.to_json(), **other.to_json()})


# Flags of `tenanttls upgrade`, by violation code.
FLAGS = {
    "backup_exists": "--force-backup-overwrite",
    "foreign_connector": "--allow-foreign-connector",
    "name_taken": "--adopt-connector",
    "several_legacy": "--legacy-connector NAME",
    "legacy_unconfirmed": "--legacy-connector NAME",
    "connector_disabled": "--allow-disabled-connector",
    "backup_missing": None,
}


@dataclass(frozen=True)
class Violation:
    """One reason the plan is unsafe: `code`, the object it concerns and a message naming the fix."""

    code: str
    object_name: str
    message: str

    @property
    def flag(self) -> str | None:
        """The `tenanttls upgrade` option that overrides this violation, or None when none does."""
        return FLAGS[self.code]

    def to_json(self) -> dict[str, Any]:
        """Return the violation as a JSON object."""
        return {"code": self.code, "object": self.object_name, "message": self.message, "flag": self.flag}


def raise_for(tenant_id: str, violations: list[Violation]) -> None:
    """Raise `PlanSafetyError` listing every violation, or return when there is none."""
    if not violations:
        return
    text = "; ".join(violation.message for violation in violations)
    error = PlanSafetyError(f"tenant {tenant_id}: plan rejected by the safety gate: {text}")
    error.violations = violations  # type: ignore[attr-defined]
    raise error
