"""Zero downtime: several tenants go through the whole upgrade (and a rollback) while mail flows.

The real engine upgrades tenants in the simulator step by step. Meanwhile the real relay
sends a steady stream of normal and null-sender mail, to inside and outside recipients, to
the simulator's SMTP front door, which attributes it as Exchange Online does.
"""

from __future__ import annotations

import time

import pytest

from tenanttls.certificates.keystore import KeyStore
from tenanttls.certificates.local_ca import LocalCaIssuer
from tenanttls.migration.service import request_rollback
from tenanttls.relay import Relay, RelaySettings, RelayThread, StoreKeyPairs
from tenanttls.relay.demo_pki import RelayPki
from tenanttls.relay.mailflow import (
    NULL_OUTSIDE,
    FlowTenant,
    MailFlowDriver,
    PhaseCounts,
    queued_message_ids,
    upgrade_phase_reader,
)
from tenanttls.simulator.smtp import SmtpFrontDoorService
from tests.fixtures.simulator import make_tenant

TENANTS = 3
# A tenant in state "switched" is waiting for its switch: the step that leaves "switched"
# changes the relay assignment in the same transaction that moves the tenant to "verified".
BEFORE_SWITCH = ("awaiting_consent", "identity", "domain", "accepted", "backup", "connector", "grace", "switched")
AFTER_SWITCH = ("verified", "completed")
# Real seconds each state lasts at least, so that the stream reaches every phase.
DWELL = 0.25


class MailFlowHarness:
    """The engine harness plus the front door, the relay and the mail-flow driver."""

    def __init__(self, harness, tmp_path) -> None:
        self.harness = harness
        pki = RelayPki(tmp_path / "relay-pki")
        local_ca = LocalCaIssuer(harness.settings.data_dir / "ca", lifetime=harness.settings.certificate_lifetime).ca_path
        self.service = SmtpFrontDoorService(port=0, trusted_cas=[pki.ca_path, local_ca])
        harness.simulator.add_service(self.service)

        keystore = KeyStore.from_reference(harness.settings.key_encryption_key)
        settings = RelaySettings(
            queue_dir=tmp_path / "relay-queue",
            legacy=pki.legacy,
            tls_certificate=pki.server_certificate,
            tls_key=pki.server_key,
            listen_port=0,
            smart_host=f"127.0.0.1:{harness.simulator.smtp_port}",
            smart_host_ca=harness.simulator.ca_path,
            retry_schedule=(0.2,),
            assignment_max_age=0.0,
        )
        self.relay = RelayThread(Relay(settings, engine=harness.store.engine, key_pairs=StoreKeyPairs(harness.store.engine, keystore))).start()
        self.pki = pki

    def driver(self, tenants: list[dict]) -> MailFlowDriver:
        return MailFlowDriver(
            relay_host="127.0.0.1",
            relay_port=self.relay.port,
            relay_ca=self.pki.ca_path,
            tenants=[FlowTenant(tenant["tenant_id"], tenant["initial_domain"]) for tenant in tenants],
            phase_of=upgrade_phase_reader(self.harness.store.engine),
            rate=80.0,
        )

    def step_all_until(self, tenant_ids: list[str], state: str, max_rounds: int = 80) -> None:
        """Step every tenant until each is in `state`, pausing so mail flows in every phase."""
        for _ in range(max_rounds):
            waiting = [tenant_id for tenant_id in tenant_ids if self.harness.upgrade(tenant_id).state != state]
            if not waiting:
                return
            for tenant_id in waiting:
                upgrade = self.harness.upgrade(tenant_id)
                if upgrade.next_attempt_at is None:
                    raise AssertionError(f"tenant {tenant_id} stopped in {upgrade.state}: {upgrade.last_error}")
                if upgrade.next_attempt_at > self.harness.clock.now():
                    self.harness.clock.set(upgrade.next_attempt_at)
                self.harness.step(tenant_id)
            time.sleep(DWELL)
        raise AssertionError(f"tenants did not all reach {state}")

    @staticmethod
    def wait_for_null_outside(driver: MailFlowDriver, phase: str, count: int) -> None:
        """Wait until the stream sent `count` null-sender messages to outside recipients in `phase`."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = [m for m in driver.sent if m.phase == phase and m.kind == NULL_OUTSIDE]
            if len(sent) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"the stream sent fewer than {count} null-sender messages in phase {phase}")

    def report(self, driver: MailFlowDriver):
        assert self.relay.wait_until_empty(30)
        door = self.service.door
        return driver.report(door.inspection()["messages"], self.relay.relay.outcomes(), queued_message_ids(self.relay.relay.queue))

    def stop(self) -> None:
        self.relay.stop()


@pytest.fixture
def tenants() -> list[dict]:
    return [make_tenant(accepted_domains=[f"customer{number}.example"]) for number in range(TENANTS)]


@pytest.fixture
def flow(engine_factory, tenants, tmp_path):
    harness = engine_factory(tenants)
    harness.enrol(*[tenant["tenant_id"] for tenant in tenants])
    flow = MailFlowHarness(harness, tmp_path)
    yield flow
    flow.stop()


def test_upgrade_under_mail_flow(flow, tenants):
    tenant_ids = [tenant["tenant_id"] for tenant in tenants]
    driver = flow.driver(tenants).start()
    time.sleep(DWELL)

    flow.step_all_until(tenant_ids, "completed")
    flow.wait_for_null_outside(driver, "completed", TENANTS)
    driver.stop()
    report = flow.report(driver)

    print("\n".join(report.lines()))
    total = report.total
    assert report.violations() == []
    assert total.lost == 0
    assert total.pending == 0
    assert total.sent == total.accepted + total.rejected
    assert set(report.phases) >= {"awaiting_consent", "switched", "verified", "completed"}
    before = [report.phases.get(phase, PhaseCounts()) for phase in BEFORE_SWITCH]
    after = [report.phases.get(phase, PhaseCounts()) for phase in AFTER_SWITCH]
    assert sum(counts.null_outside_sent for counts in before) > 0
    # A message counted under "switched" may be delivered just after the switch, under the unique
    # certificate, and be accepted. In every earlier phase each null-sender message to outside is rejected.
    assert all(counts.null_outside_accepted == 0 for counts in before[:-1])
    assert all(counts.rejected == counts.null_outside_sent - counts.null_outside_accepted for counts in before)
    assert all(counts.rejected == 0 for counts in after)
    assert sum(counts.null_outside_accepted for counts in after) == sum(counts.null_outside_sent for counts in after) > 0


def test_rollback_under_mail_flow(flow, tenants):
    tenant_ids = [tenant["tenant_id"] for tenant in tenants]
    driver = flow.driver(tenants).start()

    flow.step_all_until(tenant_ids, "completed")
    time.sleep(DWELL)
    for tenant_id in tenant_ids:
        request_rollback(flow.harness.store, tenant_id, now=flow.harness.clock.now(), actor="test")
    flow.step_all_until(tenant_ids, "rolled_back")
    flow.wait_for_null_outside(driver, "rolled_back", TENANTS)
    driver.stop()
    report = flow.report(driver)

    print("\n".join(report.lines()))
    rolled_back = report.phases["rolled_back"]
    assert report.violations() == []
    assert report.total.lost == 0
    assert report.total.pending == 0
    assert rolled_back.null_outside_sent > 0
    assert rolled_back.rejected == rolled_back.null_outside_sent
    assert rolled_back.accepted == rolled_back.sent - rolled_back.null_outside_sent
    assert report.phases["completed"].rejected == 0
    rejected_kinds = {outcome.message.kind for outcome in report.outcomes if outcome.state == "rejected"}
    assert rejected_kinds == {NULL_OUTSIDE}


def test_every_message_attributed_to_its_tenant(flow, tenants):
    tenant_ids = [tenant["tenant_id"] for tenant in tenants]
    flow.step_all_until(tenant_ids, "completed")
    driver = flow.driver(tenants)

    driver.send(4 * TENANTS)
    report = flow.report(driver)

    accepted = [outcome for outcome in report.outcomes if outcome.state == "accepted"]
    assert len(accepted) == 4 * TENANTS
    assert all(outcome.attributed_to == outcome.message.tenant_id for outcome in accepted)
    assert {outcome.certificate_mode for outcome in accepted} == {"unique"}
