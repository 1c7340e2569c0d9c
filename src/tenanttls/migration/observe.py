"""Read everything about one tenant and plan its whole upgrade, without changing anything.

``tenanttls plan TENANT`` uses it. Reads: the store (identity, certificate, snapshot,
relay assignment, upgrade state), Graph (the unique name's domain) and Exchange
(accepted domains, inbound connectors). A failed read raises; nothing is guessed.
"""

from __future__ import annotations

from sqlalchemy import select

from tenanttls.domain.exchange import InboundConnector
from tenanttls.errors import NotFound, NotFoundError
from tenanttls.migration.context import EngineContext
from tenanttls.migration.planner import SNAPSHOT_BEFORE_RENAME, Desired, Observation, TenantPlan, plan_tenant, stamp_comment
from tenanttls.migration.safety import Overrides
from tenanttls.store import relay_assignments
from tenanttls.store.schema import certificates
from tenanttls.store.snapshots import find_snapshot
from tenanttls.store.tenants import get_tenant
from tenanttls.store.upgrades import get_upgrade


def plan_for(context: EngineContext, tenant_id: str, overrides: Overrides | None = None) -> TenantPlan:
    """Return the plan from the tenant's live state to completed; `overrides` adds to the stored ones."""
    tenant_id = tenant_id.strip().lower()
    with context.store.engine.connect() as connection:
        get_tenant(connection, tenant_id)
        upgrade = get_upgrade(connection, tenant_id)
        saved = find_snapshot(connection, tenant_id, run_id=upgrade.run_id, reason=SNAPSHOT_BEFORE_RENAME) if upgrade.run_id else None
        assignment = relay_assignments.find_assignment(connection, tenant_id)

    try:
        unique_name = context.identities.get(tenant_id).name
    except NotFoundError:
        unique_name = None

    graph_domain = None
    has_certificate = False
    if unique_name is not None:
        has_certificate = _has_certificate(context, tenant_id, unique_name)
        try:
            graph_domain = context.graph.get_domain(tenant_id, unique_name)
        except NotFound:
            graph_domain = None

    stored = Overrides.from_json(upgrade.overrides)
    settings = context.settings
    desired = Desired(
        connector_name=settings.connector_name,
        legacy_certificate_name=settings.legacy_certificate_name,
        zone=settings.provider_zone,
        unique_name=unique_name,
        comment=stamp_comment(context.version, upgrade.run_id or "<new run>", context.clock.now()),
        overrides=stored.merged(overrides) if overrides else stored,
    )
    observation = Observation(
        tenant_id=tenant_id,
        state=upgrade.state,
        has_certificate=has_certificate,
        graph_domain=graph_domain,
        accepted_domains=context.exchange.get_accepted_domains(tenant_id),
        connectors=context.exchange.get_inbound_connectors(tenant_id),
        snapshot=InboundConnector.from_exchange(saved.connector) if saved is not None else None,
        relay_mode=assignment.mode if assignment else relay_assignments.LEGACY,
        grace_until=upgrade.grace_until,
    )
    return plan_tenant(observation, desired)


def _has_certificate(context: EngineContext, tenant_id: str, name: str) -> bool:
    with context.store.engine.connect() as connection:
        row = connection.execute(
            select(certificates.c.id).where(
                certificates.c.tenant_id == tenant_id, certificates.c.name == name, certificates.c.status == "active"
            )
        ).first()
    return row is not None
