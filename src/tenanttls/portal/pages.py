"""The customer's pages: Admin Settings > Setup > Connector, the checks panel, the plan,
the manual-upgrade request and the rollback confirmation.

Every route takes the tenant id from the URL and checks it against the session
(`check_tenant_scope`) before reading anything. Every action also checks the
admin role. Blocking work (store, Microsoft calls) runs in the thread pool.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from tenanttls.errors import ConsentRequired, MicrosoftApiError, NotFoundError, PermissionDenied, UpgradeStateError
from tenanttls.portal import forms, plan_text
from tenanttls.portal.access import check_tenant_scope, require_principal, require_tenant_admin
from tenanttls.portal.checks import CheckSubject
from tenanttls.portal.rendering import flash, render
from tenanttls.portal.services import plan_fingerprint
from tenanttls.portal.views import build_connector_page

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

MAX_NOTE_LENGTH = 2000


def _context(request: Request):
    return request.app.state.context


async def _overview(request: Request, tenant_id: str):
    """Return the tenant's overview, or raise 404 naming the tenant when the provider does not serve it."""
    try:
        return await run_in_threadpool(_context(request).services.overview, tenant_id)
    except NotFoundError as error:
        raise HTTPException(
            status_code=404,
            detail=f"Tenant {tenant_id} is not registered with the provider. If you use the provider's service, contact support.",
        ) from error


@router.get("/connector")
async def own_connector(request: Request):
    principal = require_principal(request)
    if principal.is_operator:
        return RedirectResponse("/operator", status_code=303)
    return RedirectResponse(f"/tenants/{principal.tenant_id}/connector", status_code=303)


@router.get("/tenants/{tenant_id}/connector")
async def connector_page(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await _overview(request, tenant_id)
    page = await run_in_threadpool(build_connector_page, _context(request), overview, principal)
    return render(request, "connector.html", page=page, tenant=overview.tenant)


@router.get("/tenants/{tenant_id}/checks")
async def checks_page(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await _overview(request, tenant_id)
    results = await run_in_threadpool(run_checks, _context(request), overview)
    return render(request, "checks.html", tenant=overview.tenant, results=results, unavailable=results is None)


def run_checks(context, overview):
    """Return the check results for the tenant, or None when the portal has no Microsoft clients."""
    if context.checks is None:
        return None
    subject = CheckSubject(
        tenant_id=overview.tenant.tenant_id,
        initial_domain=overview.tenant.initial_domain,
        state=overview.upgrade.state,
        unique_name=overview.unique_name,
        smart_host=overview.tenant.smart_host,
        certificate=overview.certificate,
        connector_name=context.config.connector_name,
        legacy_certificate_name=context.config.legacy_certificate_name,
        resume_state=overview.upgrade.resume_state,
    )
    return context.checks.run(subject)


# -- plan and start --------------------------------------------------------------------------


async def _plan_or_message(request: Request, tenant_id: str):
    """Return (plan, None), or (None, message) when the live state cannot be read."""
    try:
        return await run_in_threadpool(_context(request).services.plan, tenant_id), None
    except (ConsentRequired, PermissionDenied):
        return None, "The provider cannot read your tenant yet. Grant the permissions first; then open the plan again."
    except MicrosoftApiError as error:
        logger.warning("plan failed: tenant=%s error=%s", tenant_id, error)
        return None, "Your tenant's current setup could not be read from Microsoft 365 just now. Try again in a few minutes."


@router.get("/tenants/{tenant_id}/plan")
async def plan_page(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await _overview(request, tenant_id)
    page = await run_in_threadpool(build_connector_page, _context(request), overview, principal, read_connectors=False)
    plan, message = await _plan_or_message(request, tenant_id)
    return render(
        request,
        "plan.html",
        tenant=overview.tenant,
        page=page,
        plan=plan,
        steps=customer_steps(_context(request).config, plan, page.grace) if plan is not None else [],
        violations=[plan_text.describe_violation(violation) for violation in plan.violations] if plan is not None else [],
        notes=plan_text.customer_notes(plan, _context(request).config.connector_name) if plan is not None else [],
        message=message,
        fingerprint=plan_fingerprint(plan) if plan is not None else "",
    )


def customer_steps(config, plan, grace) -> list[dict]:
    """Return the plan's changes for the plan page: the step, the customer's sentence and the engine's lines."""
    return [
        {
            "step": change.step.value,
            "text": plan_text.describe_change(change, legacy_certificate_name=config.legacy_certificate_name, grace=grace),
            "technical": change.describe(),
        }
        for change in plan.changes
    ]


@router.post("/tenants/{tenant_id}/start")
async def start_upgrade(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    require_tenant_admin(principal)

    form = await request.form()
    try:
        forms.confirmed(form, "confirm", label="I have read the plan and want to start")
        confirmed_plan = forms.hex_digest(form, "plan", label="The plan's reference")
    except forms.FormError as error:
        flash(request, "error", _messages(error))
        return RedirectResponse(f"/tenants/{tenant_id}/plan", status_code=303)

    plan, message = await _plan_or_message(request, tenant_id)
    if plan is None:
        flash(request, "error", message)
        return RedirectResponse(f"/tenants/{tenant_id}/plan", status_code=303)
    if plan_fingerprint(plan) != confirmed_plan:
        flash(request, "error", "Your tenant's setup changed since the plan was shown. Review the new plan and confirm again.")
        return RedirectResponse(f"/tenants/{tenant_id}/plan", status_code=303)
    if not plan.is_safe:
        flash(request, "error", "The plan found something unexpected in your tenant, so the upgrade cannot start here. Contact support.")
        return RedirectResponse(f"/tenants/{tenant_id}/plan", status_code=303)

    result = await run_in_threadpool(_context(request).services.start, tenant_id, principal.actor)
    logger.info("upgrade requested in portal: tenant=%s outcome=%s actor=%s", tenant_id, result.outcome, principal.oid)
    flash(request, "ok", "The upgrade has started. This page shows each step as it completes.")
    return RedirectResponse(f"/tenants/{tenant_id}/connector", status_code=303)


def _messages(error: forms.FormError) -> str:
    return " ".join(message[0].upper() + message[1:] + "." for message in error.errors.values())


# -- manual upgrade through support --------------------------------------------------------


@router.get("/tenants/{tenant_id}/manual")
async def manual_page(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await _overview(request, tenant_id)
    page = await run_in_threadpool(build_connector_page, _context(request), overview, principal, read_connectors=False)
    return render(request, "manual.html", tenant=overview.tenant, page=page, errors={}, values={"contact_email": principal.upn})


@router.post("/tenants/{tenant_id}/manual")
async def request_manual(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    require_tenant_admin(principal)

    form = await request.form()
    values = {"contact_email": str(form.get("contact_email", ""))[:300], "note": str(form.get("note", ""))[:MAX_NOTE_LENGTH + 100]}
    errors: dict[str, str] = {}
    contact = note = ""
    try:
        contact = forms.email(form, "contact_email", label="Contact e-mail")
    except forms.FormError as error:
        errors.update(error.errors)
    try:
        note = forms.text(form, "note", label="Note for support", max_length=MAX_NOTE_LENGTH, multiline=True)
    except forms.FormError as error:
        errors.update(error.errors)

    if errors:
        overview = await _overview(request, tenant_id)
        page = await run_in_threadpool(build_connector_page, _context(request), overview, principal, read_connectors=False)
        return render(request, "manual.html", status_code=422, tenant=overview.tenant, page=page, errors=errors, values=values)

    try:
        await run_in_threadpool(_context(request).services.request_manual, tenant_id, principal.actor, contact_email=contact, note=note)
    except UpgradeStateError as error:
        flash(request, "error", str(error))
        return RedirectResponse(f"/tenants/{tenant_id}/connector", status_code=303)
    flash(request, "ok", "Your request is recorded. Support will contact you at " + contact + ".")
    return RedirectResponse(f"/tenants/{tenant_id}/connector", status_code=303)


# -- rollback ------------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/rollback")
async def rollback_page(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await _overview(request, tenant_id)
    page = await run_in_threadpool(build_connector_page, _context(request), overview, principal, read_connectors=False)
    return render(request, "rollback.html", tenant=overview.tenant, page=page, errors={}, connector_name=_context(request).config.connector_name)


@router.post("/tenants/{tenant_id}/rollback")
async def roll_back(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    require_tenant_admin(principal)

    form = await request.form()
    try:
        forms.confirmed(form, "confirm", label="Roll back the upgrade")
    except forms.FormError as error:
        overview = await _overview(request, tenant_id)
        page = await run_in_threadpool(build_connector_page, _context(request), overview, principal, read_connectors=False)
        return render(
            request, "rollback.html", status_code=422, tenant=overview.tenant, page=page, errors=error.errors,
            connector_name=_context(request).config.connector_name,
        )

    result = await run_in_threadpool(_context(request).services.rollback, tenant_id, principal.actor)
    logger.info("rollback requested in portal: tenant=%s outcome=%s actor=%s", tenant_id, result.outcome, principal.oid)
    flash(request, "ok", "Rollback requested: your previous connector is being restored.")
    return RedirectResponse(f"/tenants/{tenant_id}/connector", status_code=303)
