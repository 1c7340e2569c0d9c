"""Sign-in, sign-out and the admin-consent round trip.

Both flows leave the portal for the identity platform and come back to a callback.
Before leaving, the portal stores a random ``state`` (and for sign-in a ``nonce``) in
the signed session. The callback accepts only the matching value, once, within
`PENDING_LIFETIME`. The page to return to after sign-in is a local path only.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from typing import Any, Mapping

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from tenanttls.errors import InvalidInput
from tenanttls.identity.consent import build_admin_consent_url, parse_consent_callback
from tenanttls.migration.service import RequestResult
from tenanttls.portal.access import check_tenant_scope, current_principal, require_consent_role, require_principal
from tenanttls.portal.oidc import Principal, SignInFailed
from tenanttls.portal.rendering import flash, render
from tenanttls.portal.security import csrf_token, safe_next_path

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

# A sign-in or consent that takes longer than this must start again.
PENDING_LIFETIME = 15 * 60
# Authorization codes of the Microsoft identity platform are far shorter; this only bounds input.
MAX_CODE_LENGTH = 4096
# The page a failed sign-in ends on, and the session key that carries its message there.
SIGN_IN_FAILED_PATH = "/sign-in/failed"
SIGN_IN_ERROR = "sign_in_error"


def _home(principal: Principal) -> str:
    return "/operator" if principal.is_operator else f"/tenants/{principal.tenant_id}/connector"


@router.get("/")
async def landing(request: Request):
    principal = current_principal(request)
    if principal is not None:
        return RedirectResponse(_home(principal), status_code=303)
    operator_enabled = bool(request.app.state.context.config.provider_tenant_id)
    return render(request, "landing.html", operator_enabled=operator_enabled)


@router.get("/sign-in")
async def sign_in(request: Request, next: str | None = None):
    return _start_sign_in(request, kind="tenant", segment="organizations", next_path=next)


@router.get("/operator/sign-in")
async def operator_sign_in(request: Request, next: str | None = None):
    config = request.app.state.context.config
    if not config.provider_tenant_id:
        raise HTTPException(status_code=404, detail="The operator sign-in is not configured (provider_tenant_id is empty).")
    return _start_sign_in(request, kind="operator", segment=config.provider_tenant_id, next_path=next)


def _start_sign_in(request: Request, *, kind: str, segment: str, next_path: str | None) -> RedirectResponse:
    context = request.app.state.context
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    request.session["oidc"] = {
        "state": state,
        "nonce": nonce,
        "kind": kind,
        "segment": segment,
        "next": safe_next_path(next_path, default=""),
        "at": time.time(),
    }
    url = context.oidc.authorization_url(segment, redirect_uri=context.config.sign_in_redirect_uri, state=state, nonce=nonce)
    return RedirectResponse(url, status_code=303)


def _take_pending(request: Request, key: str, state: str | None) -> dict[str, Any]:
    """Return and forget the pending flow under `key` when `state` matches it; raise 400 otherwise."""
    pending = request.session.pop(key, None)
    if not pending or time.time() - float(pending.get("at", 0)) > PENDING_LIFETIME:
        raise HTTPException(status_code=400, detail="This sign-in or consent link is out of date or was already used. Start again.")
    if not state or not hmac.compare_digest(state.encode(), str(pending["state"]).encode()):
        logger.warning("callback rejected: flow=%s reason=state mismatch", key)
        raise HTTPException(status_code=400, detail="The response does not belong to the request this browser made (state mismatch). Start again.")
    return pending


@router.get("/auth/callback")
async def sign_in_callback(request: Request):
    """Finish the sign-in; on any failure, redirect to `/sign-in/failed`.

    The redirect takes the code and state out of the address bar, so a reload or a
    bookmark never replays them, and the error page has a clean URL.
    """
    kind = str((request.session.get("oidc") or {}).get("kind", "tenant"))
    try:
        principal, next_path = await _complete_sign_in(request)
    except HTTPException as error:
        request.session[SIGN_IN_ERROR] = {"status": error.status_code, "message": str(error.detail), "kind": kind}
        return RedirectResponse(SIGN_IN_FAILED_PATH, status_code=303)

    request.session.clear()
    request.session["user"] = principal.to_session()
    csrf_token(request.session)
    logger.info("signed in: kind=%s tenant=%s user=%s", principal.kind, principal.tenant_id, principal.oid)
    return RedirectResponse(next_path or _home(principal), status_code=303)


async def _complete_sign_in(request: Request) -> tuple[Principal, str]:
    """Return the signed-in principal and the page to go to; raise HTTPException when the sign-in failed."""
    params = request.query_params
    pending = _take_pending(request, "oidc", params.get("state"))
    if params.get("error"):
        description = _first_line(params.get("error_description") or "")
        logger.warning("sign-in returned an error: kind=%s error=%s description=%s", pending["kind"], params["error"], description)
        if _declined(params["error"], description):
            raise HTTPException(status_code=400, detail="The sign-in was cancelled on Microsoft's page, so you are not signed in.")
        raise HTTPException(
            status_code=400,
            detail=f"Microsoft's sign-in page returned an error (code {_error_code(params['error'], description)}), so you are "
            "not signed in. Try again; if it happens again, contact support and mention the code.",
        )

    code = params.get("code", "")
    if not code or len(code) > MAX_CODE_LENGTH:
        raise HTTPException(status_code=400, detail="The sign-in response has no valid code. Start again.")

    context = request.app.state.context
    try:
        id_token = await run_in_threadpool(context.oidc.redeem_code, pending["segment"], code, context.config.sign_in_redirect_uri)
        claims = await run_in_threadpool(context.oidc.validate_id_token, id_token, nonce=pending["nonce"])
    except SignInFailed as error:
        logger.warning("sign-in failed: kind=%s error=%s", pending["kind"], error)
        raise HTTPException(status_code=400, detail=f"The sign-in failed: {error}") from error

    return _principal(context.config, pending["kind"], claims), pending["next"]


@router.get(SIGN_IN_FAILED_PATH)
async def sign_in_failed(request: Request):
    """Show why the last sign-in failed, with a button to start it again."""
    failure = request.session.pop(SIGN_IN_ERROR, None)
    if not failure:
        return RedirectResponse("/", status_code=303)

    start = "/operator/sign-in" if failure.get("kind") == "operator" else "/sign-in"
    return render(
        request, "error.html", status_code=int(failure.get("status", 400)), status=int(failure.get("status", 400)),
        message=str(failure.get("message", "")), title="Sign-in failed", link=(start, "Sign in again"),
    )


def _principal(config, kind: str, claims: Mapping[str, Any]) -> Principal:
    principal = Principal(
        kind=kind,
        tenant_id=str(claims["tid"]).lower(),
        oid=str(claims["oid"]).lower(),
        upn=str(claims.get("preferred_username", "")),
        name=str(claims.get("name", "")),
        wids=tuple(str(wid) for wid in claims.get("wids") or ()),
        roles=tuple(str(role) for role in claims.get("roles") or ()),
        signed_in_at=time.time(),
    )
    if kind == "operator":
        if principal.tenant_id != config.provider_tenant_id or config.operator_role not in principal.roles:
            logger.warning("operator sign-in rejected: tenant=%s user=%s", principal.tenant_id, principal.oid)
            raise HTTPException(
                status_code=403,
                detail=f"{principal.upn} is not an operator: the {config.operator_role} role in the provider's tenant is needed.",
            )
    return principal


def _first_line(text: str) -> str:
    return text.splitlines()[0][:300] if text else ""


@router.post("/sign-out")
async def sign_out(request: Request):
    principal = current_principal(request)
    request.session.clear()
    if principal is not None:
        logger.info("signed out: tenant=%s user=%s", principal.tenant_id, principal.oid)
    return RedirectResponse("/", status_code=303)


# -- admin consent --------------------------------------------------------------------------


@router.post("/tenants/{tenant_id}/consent")
async def start_consent(request: Request, tenant_id: str):
    principal = require_principal(request)
    tenant_id = check_tenant_scope(principal, tenant_id)
    require_consent_role(principal)

    context = request.app.state.context
    await run_in_threadpool(context.services.tenant, tenant_id)
    state = secrets.token_urlsafe(32)
    request.session["consent"] = {"state": state, "tenant": tenant_id, "at": time.time()}
    config = context.config
    url = build_admin_consent_url(config.login_url, config.client_id, tenant_id, config.consent_redirect_uri, state)
    return RedirectResponse(url, status_code=303)


@router.get("/consent/callback")
async def consent_callback(request: Request):
    principal = require_principal(request)
    params = dict(request.query_params)
    pending = _take_pending(request, "consent", params.get("state"))
    tenant_id = check_tenant_scope(principal, pending["tenant"])

    try:
        result = parse_consent_callback(params, pending["state"])
    except InvalidInput as error:
        raise HTTPException(status_code=400, detail=str(error)) from error
    if result.tenant_id is not None and result.tenant_id != tenant_id:
        raise HTTPException(status_code=400, detail="The consent was given for another tenant than the one you started it for.")

    context = request.app.state.context
    error_text = _first_line(result.error_description or result.error or "")
    continued = await run_in_threadpool(
        context.services.record_consent, tenant_id, principal.actor, granted=result.granted, error=error_text or None
    )
    if result.granted:
        flash(request, "ok", _consent_granted_text(continued))
    else:
        logger.warning("consent not granted: tenant=%s error=%s description=%s", tenant_id, result.error, error_text)
        flash(request, "error", _consent_failure_text(result.error or "", error_text))
    return RedirectResponse(f"/tenants/{tenant_id}/connector", status_code=303)


def _consent_granted_text(continued: RequestResult | None) -> str:
    """Return the customer's message for a grant, by what it did to the upgrade (see `record_consent`)."""
    if continued is None:
        return "Permissions granted. Review the plan, then start the upgrade."
    if continued.outcome == "resumed":
        return (
            "Permissions granted. The upgrade continues from the step where it stopped, and this page shows each "
            "step as it completes."
        )
    return "Permissions granted. The upgrade starts once Microsoft 365 applies them, which can take a few minutes."


def _consent_failure_text(error: str, description: str) -> str:
    """Return the customer's message for a consent that was not granted; the raw text goes to the audit trail."""
    if _declined(error, description):
        return (
            "The permissions were not granted because the request was declined on Microsoft's page. The upgrade "
            "needs them: press Grant permissions again and choose Accept, or request the manual upgrade through support."
        )
    return (
        f"The permissions were not granted: Microsoft's consent page returned an error (code {_error_code(error, description)}). "
        "Try again; if it happens again, contact support and mention the code."
    )


def _declined(error: str, description: str) -> bool:
    """True when the user cancelled or declined on Microsoft's page (OAuth ``access_denied``, AADSTS65004)."""
    return error == "access_denied" or "AADSTS65004" in description


def _error_code(error: str, description: str) -> str:
    """Return the AADSTS code in `description`, else the OAuth error code, for the user to quote to support."""
    found = re.search(r"AADSTS\d+", description)
    return found.group(0) if found else (error or "unknown")
