"""The mail-flow report's table: rows in the upgrade's state order."""

from __future__ import annotations

from tenanttls.migration.states import UpgradeState
from tenanttls.relay.mailflow import UPGRADE_PHASE_ORDER, MailFlowReport, PhaseCounts, in_phase_order


def test_phase_order_matches_upgrade_states():
    assert UPGRADE_PHASE_ORDER == ("not-requested", *(state.value for state in UpgradeState))


def test_rows_in_state_order():
    first_seen = ["grace", "backup", "needs_attention", "custom", "connector", "completed", "verified", "switched"]
    phases = {phase: PhaseCounts(sent=number + 1) for number, phase in enumerate(first_seen)}

    report = MailFlowReport(in_phase_order(phases), outcomes=[])
    rows = [line.split()[0] for line in report.lines()[3:-1]]

    assert list(report.phases) == ["backup", "connector", "grace", "switched", "verified", "completed", "needs_attention", "custom"]
    assert rows == [*report.phases, "total"]
    assert report.phases["grace"].sent == 1
