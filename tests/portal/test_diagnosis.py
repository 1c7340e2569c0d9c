"""The explanation of a stop follows the stored kind, and the engine's message decides only for rows without one."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tenanttls.migration.outcomes import StopKind
from tenanttls.portal.diagnosis import CUSTOMER_TEXTS, consent_lost, explain_stop, stop_kind
from tenanttls.store.upgrades import UpgradeRecord, update_upgrade
from tests.portal.conftest import TENANT_B

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CONSENT_MESSAGE = "consent is missing or was withdrawn (AADSTS65001: no consent); ask the tenant's admin to grant it again"
SAFETY_MESSAGE = (
    "tenant t: plan rejected by the safety gate: connector 'C-BACKUP' already exists with other settings; "
    "run 'tenanttls upgrade t --force-backup-overwrite' to replace it"
)


def _stopped(stop_kind: str | None, last_error: str | None, resume_state: str = "backup", state: str = "needs_attention"):
    return UpgradeRecord(
        tenant_id="t", state=state, state_entered_at=NOW, updated_at=NOW,
        last_error=last_error, stop_kind=stop_kind, resume_state=resume_state,
    )


def test_kind_wins_over_message():
    upgrade = _stopped("gave_up", CONSENT_MESSAGE, resume_state="domain")

    reason = explain_stop(upgrade, connector_name="C")

    assert reason.kind is StopKind.GAVE_UP
    assert "did not respond as expected several times" in reason.customer
    assert "grant them again" not in reason.customer
    assert consent_lost(upgrade) is False


def test_consent_kind_with_reworded_message():
    upgrade = _stopped("consent", "the admin took the app's grant away", resume_state="domain")

    reason = explain_stop(upgrade, connector_name="C")

    assert reason.kind is StopKind.CONSENT
    assert "can grant them again on this page" in reason.customer
    assert consent_lost(upgrade) is True


def test_disabled_kind_suggests_override():
    upgrade = _stopped("connector_disabled", "Exchange keeps the connector off", resume_state="connector")

    reason = explain_stop(upgrade, connector_name="CrosswareInboundConnector")

    assert reason.kind is StopKind.CONNECTOR_DISABLED
    assert reason.override == "allow_disabled_connector"
    assert "created the new connector CrosswareInboundConnector disabled" in reason.customer
    assert "through CrosswareInboundConnector-BACKUP" in reason.customer


def test_safety_override_from_flag():
    reason = explain_stop(_stopped("safety", SAFETY_MESSAGE), connector_name="C")

    assert reason.kind is StopKind.SAFETY
    assert reason.override == "force_backup_overwrite"
    assert "\u201cCurrent connector renamed to -BACKUP\u201d" in reason.customer


def test_unknown_kind_counts_as_other():
    upgrade = _stopped("kind_of_a_newer_engine", CONSENT_MESSAGE)

    assert stop_kind(upgrade) is StopKind.OTHER
    assert consent_lost(upgrade) is False


def test_consent_lost_only_when_stopped():
    assert consent_lost(_stopped("consent", CONSENT_MESSAGE, state="domain")) is False


@pytest.mark.parametrize("kind", list(StopKind))
def test_every_kind_has_customer_text(kind):
    reason = explain_stop(_stopped(kind.value, "message", resume_state="accepted"), connector_name="C")

    assert reason.kind is kind
    assert reason.customer
    assert "{" not in reason.customer
    assert "tenanttls" not in reason.customer


def test_customer_texts_cover_kinds():
    assert set(CUSTOMER_TEXTS) == set(StopKind)


@pytest.mark.parametrize(
    ("last_error", "resume_state", "expected"),
    [
        (CONSENT_MESSAGE, "domain", StopKind.CONSENT),
        ("plan rejected by the safety gate: ... run 'tenanttls upgrade t --allow-disabled-connector'", "connector", StopKind.CONNECTOR_DISABLED),
        ("connector 'C' is disabled", "connector", StopKind.CONNECTOR_DISABLED),
        (SAFETY_MESSAGE, "backup", StopKind.SAFETY),
        ("Graph failed GET /domains (gave up after 8 attempts; fix the cause)", "domain", StopKind.GAVE_UP),
        ("Exchange denied Set-InboundConnector", "backup", StopKind.OTHER),
        (None, "backup", StopKind.OTHER),
    ],
)
def test_without_kind_message_decides(last_error, resume_state, expected):
    upgrade = _stopped(None, last_error, resume_state=resume_state)

    assert stop_kind(upgrade) is expected
    assert explain_stop(upgrade, connector_name="C").kind is expected


def _stop_tenant_b(portal, *, stop_kind: str, last_error: str) -> None:
    with portal.harness.store.write() as connection:
        update_upgrade(
            connection, TENANT_B, owner=None, state="needs_attention", resume_state="domain", requested=True,
            last_error=last_error, stop_kind=stop_kind, next_attempt_at=None,
        )


def test_grant_resumes_reworded_consent_stop(portal):
    _stop_tenant_b(portal, stop_kind="consent", last_error="the admin took the app's grant away")

    result = portal.context.services.record_consent(TENANT_B, "test", granted=True)

    upgrade = portal.upgrade(TENANT_B)
    assert result.outcome == "resumed"
    assert upgrade.state == "domain"
    assert upgrade.stop_kind is None
    assert upgrade.last_error is None


def test_grant_keeps_safety_stop_with_consent_words(portal):
    _stop_tenant_b(portal, stop_kind="safety", last_error=CONSENT_MESSAGE)

    result = portal.context.services.record_consent(TENANT_B, "test", granted=True)

    upgrade = portal.upgrade(TENANT_B)
    assert result is None
    assert upgrade.state == "needs_attention"
    assert upgrade.stop_kind == "safety"
