"""The portal's clock against a simulator whose clock was moved ahead of wall time."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tenanttls.errors import ConfigurationError
from tenanttls.portal import build_portal
from tenanttls.store.upgrades import update_upgrade
from tests.portal.conftest import ADMIN_A, TENANT_A

TWO_HOURS = 2 * 3600


def _advance_simulator(portal, seconds: float) -> None:
    answer = httpx.post(
        f"{portal.simulator.base_url}/_simulator/clock/advance", json={"seconds": seconds}, verify=str(portal.simulator.ca_path)
    )
    assert answer.status_code == 200, answer.text


def test_system_clock_rejects_advanced_tokens(portal_factory):
    portal = portal_factory(wall_clock=True, share_clock=False)
    _advance_simulator(portal, TWO_HOURS)

    client = portal.client()
    answer = portal.sign_in(client, ADMIN_A)
    page = client.get(answer.headers["location"])
    assert "the ID token is not valid yet" in page.text


def test_simulator_clock_accepts_advanced_tokens(portal_factory):
    portal = portal_factory(wall_clock=True, share_clock=False, portal_settings={"portal_clock": "simulator"})
    _advance_simulator(portal, TWO_HOURS)

    client = portal.client()
    answer = portal.sign_in(client, ADMIN_A)
    assert answer.headers["location"] == f"/tenants/{TENANT_A}/connector"


def test_simulator_clock_counts_grace_left(portal_factory):
    portal = portal_factory(wall_clock=True, share_clock=False, portal_settings={"portal_clock": "simulator"})
    _advance_simulator(portal, TWO_HOURS)
    grace_until = portal.simulator.clock.now() + timedelta(minutes=30)
    with portal.harness.store.write() as connection:
        update_upgrade(connection, TENANT_A, owner=None, state="grace", requested=True, run_id="run-1", grace_until=grace_until)

    page = portal.signed_in(ADMIN_A).get(f"/tenants/{TENANT_A}/connector")
    left = re.search(r"Grace period: <strong>([^<]+)</strong> left", page.text).group(1)
    assert left in ("29 min", "30 min")


def test_simulator_clock_needs_simulator(portal):
    settings = portal.harness.settings
    unreachable = type(settings)(**{**settings.__dict__, "login_url": "https://127.0.0.1:9", "portal_clock": "simulator"})
    with pytest.raises(ConfigurationError) as caught:
        build_portal(unreachable, public_url="http://127.0.0.1:9", engine_context=portal.harness.context)
    assert "works against the simulator only" in str(caught.value)


def test_unknown_portal_clock_rejected(portal):
    settings = portal.harness.settings
    wrong = type(settings)(**{**settings.__dict__, "portal_clock": "ntp"})
    with pytest.raises(ConfigurationError) as caught:
        build_portal(wrong, public_url="http://127.0.0.1:9", engine_context=portal.harness.context)
    assert "invalid portal_clock 'ntp'" in str(caught.value)
