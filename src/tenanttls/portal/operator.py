"""The operator view: the fleet table with filters and search, a tenant's audit trail,
and the retry and rollback buttons. Only signed-in operators reach these routes."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from tenanttls.domain.names import MAX_CONNECTOR_NAME_LENGTH, validate_connector_name
from tenanttls.errors import InvalidInput, NotFoundError
from tenanttls.migration.safety import Overrides
from tenanttls.migration.states import UpgradeState
from tenanttls.portal import forms
from tenanttls.portal.diagnosis import OVERRIDE_FIELDS, OVERRIDE_LABELS, explain_stop
from tenanttls.portal.access import check_tenant_scope, require_operator
from tenanttls.portal.fleet import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, FleetQuery, query_audit_trail, query_fleet
from tenanttls.portal.rendering import flash, render
from tenanttls.portal.timeline import STATE_SUMMARIES

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

STATES = tuple(state.value for state in UpgradeState)
MAX_REASON_LENGTH = 500


def fleet_query(params) -> FleetQuery:
    """Return the fleet filters from query parameters; raise `forms.FormError` on bad input."""
    return FleetQuery(
        state=forms.choice(params, "state", label="State", choices=STATES),
        search=forms.search(params, "q", label="Search"),
        after=forms.domain_cursor(params, "after"),
        page_size=forms.integer(params, "size", label="Page size", minimum=1, maximum=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE),
    )


def load_fleet(store, query: FleetQuery):
    with store.engine.connect() as connection:
        return query_fleet(connection, query)


@router.get("/operator")
async def fleet_page(request: Request):
    principal = require_operator(request)
    context = request.app.state.context
    try:
        query = fleet_query(request.query_params)
    except forms.FormError as error:
        # The form stays on the page, with the values as typed, so the operator can correct them.
        typed = FleetQuery(state=request.query_params.get("state") or None, search=request.query_params.get("q") or None)
        return render(
            request, "operator/fleet.html", status_code=422, principal=principal, page=None, query=typed, states=STATES,
            errors=error.errors,
        )

    page = await run_in_threadpool(load_fleet, context.store, query)
    return render(request, "operator/fleet.html", principal=principal, page=page, query=query, states=STATES, errors={})


def load_tenant(context, tenant_id: str, before_id: int | None):
    overview = context.services.overview(tenant_id)
    with context.store.engine.connect() as connection:
        trail = query_audit_trail(connection, tenant_id, before_id=before_id)
    return overview, trail


@router.get("/operator/tenants/{tenant_id}")
async def tenant_page(request: Request, tenant_id: str):
    principal = require_operator(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    try:
        before = forms.integer(request.query_params, "before", label="Cursor", minimum=1, maximum=2**62, default=0)
    except forms.FormError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error

    try:
        overview, trail = await run_in_threadpool(load_tenant, request.app.state.context, tenant_id, before or None)
    except NotFoundError as error:
        raise HTTPException(status_code=404, detail=str(error)) from error
    upgrade = overview.upgrade
    stop = None
    if upgrade.state == UpgradeState.NEEDS_ATTENTION.value:
        stop = explain_stop(upgrade, connector_name=request.app.state.context.config.connector_name)
    return render(
        request,
        "operator/tenant.html",
        overview=overview,
        trail=trail,
        summary=STATE_SUMMARIES.get(upgrade.state, upgrade.state),
        errors={},
        overrides=[(name, OVERRIDE_LABELS[name]) for name in OVERRIDE_FIELDS],
        suggested=OVERRIDE_LABELS.get(stop.override) if stop and stop.override else None,
    )


def retry_overrides(form) -> Overrides:
    """Return the engine override chosen in the Retry form; raise `forms.FormError` on bad input.

    An override relaxes the safety gate for this tenant, so it needs the confirmation
    checkbox. `legacy_connector` also needs the connector's name.
    """
    choice = forms.choice(form, "override", label="Override", choices=OVERRIDE_FIELDS)
    if choice is None:
        return Overrides()

    forms.confirmed(form, "confirm_override", label="I accept what the chosen override allows")
    if choice != "legacy_connector":
        return Overrides(**{choice: True})

    label = "Connector to keep as the backup"
    name = forms.text(form, "legacy_connector_name", label=label, max_length=MAX_CONNECTOR_NAME_LENGTH, required=True)
    try:
        return Overrides(legacy_connector=validate_connector_name(name))
    except InvalidInput as error:
        raise forms.FormError({"legacy_connector_name": f"{label}: {error}"}) from error


@router.post("/operator/tenants/{tenant_id}/retry")
async def retry(request: Request, tenant_id: str):
    principal = require_operator(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    try:
        overrides = retry_overrides(await request.form())
    except forms.FormError as error:
        flash(request, "error", " ".join(error.errors.values()))
        return RedirectResponse(f"/operator/tenants/{tenant_id}", status_code=303)

    services = request.app.state.context.services
    result = await run_in_threadpool(lambda: services.retry(tenant_id, principal.actor, overrides))
    chosen = ", ".join(overrides.to_json())
    logger.info(
        "retry requested by operator: tenant=%s outcome=%s overrides=%s actor=%s", tenant_id, result.outcome, chosen or "-", principal.oid
    )
    flash(request, "ok", f"Retry{' with ' + chosen if chosen else ''}: {result.message}.")
    return RedirectResponse(f"/operator/tenants/{tenant_id}", status_code=303)


@router.post("/operator/tenants/{tenant_id}/rollback")
async def roll_back(request: Request, tenant_id: str):
    principal = require_operator(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    form = await request.form()
    try:
        forms.confirmed(form, "confirm", label="Roll back this tenant")
        reason = forms.text(form, "reason", label="Reason", max_length=MAX_REASON_LENGTH, required=True, multiline=True)
    except forms.FormError as error:
        flash(request, "error", " ".join(error.errors.values()))
        return RedirectResponse(f"/operator/tenants/{tenant_id}", status_code=303)

    services = request.app.state.context.services
    result = await run_in_threadpool(lambda: services.rollback(tenant_id, principal.actor, reason=reason))
    logger.info("rollback requested by operator: tenant=%s outcome=%s actor=%s", tenant_id, result.outcome, principal.oid)
    flash(request, "ok", f"Rollback: {result.message}.")
    return RedirectResponse(f"/operator/tenants/{tenant_id}", status_code=303)
