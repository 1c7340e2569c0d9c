"""The JSON API behind the pages, under ``/api``; FastAPI serves its OpenAPI document.

It uses the same session cookie as the pages, so it makes the same tenant and role
checks, and an unsafe request must carry the CSRF token in ``X-CSRF-Token``
(``GET /api/me`` returns it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tenanttls.domain.names import MAX_CONNECTOR_NAME_LENGTH, validate_connector_name
from tenanttls.errors import ConsentRequired, InvalidInput, PermissionDenied
from tenanttls.migration.safety import Overrides
from tenanttls.portal import forms
from tenanttls.portal.diagnosis import OVERRIDE_LABELS
from tenanttls.portal.access import check_tenant_scope, require_operator, require_principal, require_tenant_admin
from tenanttls.portal.fleet import query_audit_trail
from tenanttls.portal.operator import fleet_query, load_fleet
from tenanttls.portal.pages import MAX_NOTE_LENGTH, run_checks
from tenanttls.portal.security import csrf_token
from tenanttls.portal.services import plan_fingerprint
from tenanttls.portal.views import build_connector_page

router = APIRouter(prefix="/api", tags=["portal"])


class StartRequest(BaseModel):
    """Start the upgrade after reviewing the plan: echo the plan's fingerprint."""

    model_config = ConfigDict(extra="forbid")
    plan_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="`fingerprint` from GET …/plan")


def _line_breaks_as_lf(value: Any) -> Any:
    """Turn CR LF line breaks into LF before the length check, as the forms count them."""
    return forms.normalize_line_breaks(value) if isinstance(value, str) else value


class ManualRequest(BaseModel):
    """Hand the upgrade to support."""

    model_config = ConfigDict(extra="forbid")
    contact_email: str = Field(min_length=3, max_length=forms.MAX_EMAIL_LENGTH, pattern=forms.EMAIL_PATTERN.pattern)
    note: str = Field(default="", max_length=MAX_NOTE_LENGTH)

    _note_line_breaks = field_validator("note", mode="before")(_line_breaks_as_lf)


class RollbackRequest(BaseModel):
    """Roll the upgrade back; `confirm` must be true."""

    model_config = ConfigDict(extra="forbid")
    confirm: bool
    reason: str = Field(default="", max_length=500)

    _reason_line_breaks = field_validator("reason", mode="before")(_line_breaks_as_lf)


class OverridesRequest(BaseModel):
    """Engine overrides that relax the safety gate for the tenant, as the flags of ``tenanttls upgrade``."""

    model_config = ConfigDict(extra="forbid")
    force_backup_overwrite: bool = Field(default=False, description=OVERRIDE_LABELS["force_backup_overwrite"])
    allow_foreign_connector: bool = Field(default=False, description=OVERRIDE_LABELS["allow_foreign_connector"])
    adopt_connector: bool = Field(default=False, description=OVERRIDE_LABELS["adopt_connector"])
    legacy_connector: str | None = Field(
        default=None, min_length=1, max_length=MAX_CONNECTOR_NAME_LENGTH, description=OVERRIDE_LABELS["legacy_connector"]
    )
    allow_disabled_connector: bool = Field(default=False, description=OVERRIDE_LABELS["allow_disabled_connector"])

    @field_validator("legacy_connector")
    @classmethod
    def _connector_name(cls, value: str | None) -> str | None:
        try:
            return validate_connector_name(value) if value is not None else None
        except InvalidInput as error:
            raise ValueError(str(error)) from error


class RetryRequest(BaseModel):
    """Retry, optionally with engine overrides stored for the tenant from now on."""

    model_config = ConfigDict(extra="forbid")
    overrides: OverridesRequest = Field(default_factory=OverridesRequest)


def _context(request: Request):
    return request.app.state.context


@router.get("/me", summary="The signed-in user and the CSRF token for unsafe requests")
async def me(request: Request) -> dict[str, Any]:
    principal = require_principal(request)
    return {
        "kind": principal.kind,
        "tenant_id": principal.tenant_id,
        "user": principal.upn,
        "name": principal.name,
        "roles": principal.role_names,
        "can_act": principal.can_act,
        "can_consent": principal.can_consent,
        "csrf_token": csrf_token(request.session),
    }


@router.get("/tenants/{tenant_id}/status", summary="The connector page: state, timeline, connectors, explanations")
async def status(request: Request, tenant_id: str) -> dict[str, Any]:
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await run_in_threadpool(_context(request).services.overview, tenant_id)
    page = await run_in_threadpool(build_connector_page, _context(request), overview, principal)
    return page.to_json()


@router.get("/tenants/{tenant_id}/checks", summary="Run the live checks of the tenant")
async def checks(request: Request, tenant_id: str) -> dict[str, Any]:
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overview = await run_in_threadpool(_context(request).services.overview, tenant_id)
    results = await run_in_threadpool(run_checks, _context(request), overview)
    if results is None:
        raise HTTPException(status_code=503, detail="The checks need the Microsoft clients, which this portal runs without.")
    return {"tenant_id": tenant_id, "checks": [result.to_json(technical=principal.is_operator) for result in results]}


@router.get("/tenants/{tenant_id}/plan", summary="The plan from the tenant's live state to completed")
async def plan(request: Request, tenant_id: str) -> dict[str, Any]:
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    try:
        tenant_plan = await run_in_threadpool(_context(request).services.plan, tenant_id)
    except (ConsentRequired, PermissionDenied) as error:
        raise HTTPException(
            status_code=409, detail="Grant the permissions first: Microsoft 365 gives the provider's app no access to your tenant yet."
        ) from error
    return {**tenant_plan.to_json(), "fingerprint": plan_fingerprint(tenant_plan), "lines": tenant_plan.describe()}


@router.post("/tenants/{tenant_id}/start", summary="Start the upgrade (the plan must be unchanged)")
async def start(request: Request, tenant_id: str, body: StartRequest) -> dict[str, Any]:
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    require_tenant_admin(principal)

    services = _context(request).services
    tenant_plan = await run_in_threadpool(services.plan, tenant_id)
    if plan_fingerprint(tenant_plan) != body.plan_fingerprint:
        raise HTTPException(status_code=409, detail="The plan changed since it was read; read it again and confirm the new fingerprint.")
    if not tenant_plan.is_safe:
        raise HTTPException(status_code=409, detail="The plan is not safe to apply from the portal; contact support.")
    result = await run_in_threadpool(services.start, tenant_id, principal.actor)
    return result.to_json()


@router.post("/tenants/{tenant_id}/manual", summary="Request the manual upgrade through support")
async def manual(request: Request, tenant_id: str, body: ManualRequest) -> dict[str, Any]:
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    require_tenant_admin(principal)
    await run_in_threadpool(
        lambda: _context(request).services.request_manual(tenant_id, principal.actor, contact_email=body.contact_email, note=body.note)
    )
    return {"tenant_id": tenant_id, "state": "manual"}


@router.post("/tenants/{tenant_id}/rollback", summary="Roll the upgrade back (confirm must be true)")
async def rollback(request: Request, tenant_id: str, body: RollbackRequest) -> dict[str, Any]:
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    if not principal.is_operator:
        require_tenant_admin(principal)
    if not body.confirm:
        raise HTTPException(status_code=422, detail="Set confirm to true to roll back.")
    services = _context(request).services
    result = await run_in_threadpool(lambda: services.rollback(tenant_id, principal.actor, reason=body.reason or None))
    return result.to_json()


# -- operators ------------------------------------------------------------------------------


@router.get("/operator/tenants", summary="The fleet: filter by state, search, keyset pages")
async def fleet(request: Request) -> dict[str, Any]:
    require_operator(request)
    try:
        query = fleet_query(request.query_params)
    except forms.FormError as error:
        problems = [{"field": name, "message": message} for name, message in error.errors.items()]
        return JSONResponse({"detail": " ".join(error.errors.values()), "errors": problems}, status_code=422)
    page = await run_in_threadpool(load_fleet, _context(request).store, query)
    return {
        "tenants": [row.to_json() for row in page.rows],
        "next_after": page.next_after,
        "matching": page.matching,
        "matching_capped": page.matching_capped,
        "counts_by_state": page.counts_by_state,
    }


@router.get("/operator/tenants/{tenant_id}/audit", summary="A tenant's audit trail, newest first")
async def audit(request: Request, tenant_id: str, before: int | None = None) -> dict[str, Any]:
    principal = require_operator(request)
    tenant_id = check_tenant_scope(principal, tenant_id)

    def read():
        _context(request).services.tenant(tenant_id)
        with _context(request).store.engine.connect() as connection:
            return query_audit_trail(connection, tenant_id, before_id=before)

    trail = await run_in_threadpool(read)
    events = [{**event, "at": event["at"].isoformat()} for event in trail.events]
    return {"tenant_id": tenant_id, "events": events, "before": trail.before_id}


@router.post("/operator/tenants/{tenant_id}/retry", summary="Resume a stopped tenant or run its next step now")
async def retry(request: Request, tenant_id: str, body: RetryRequest | None = None) -> dict[str, Any]:
    principal = require_operator(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    overrides = Overrides(**body.overrides.model_dump()) if body is not None else Overrides()
    result = await run_in_threadpool(lambda: _context(request).services.retry(tenant_id, principal.actor, overrides))
    return result.to_json()
