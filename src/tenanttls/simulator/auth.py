"""Bearer-token checks shared by the simulated Graph and Exchange."""

from __future__ import annotations

from typing import Any, Iterable

import jwt
from starlette.requests import Request

from tenanttls.simulator.services import Services
from tenanttls.simulator.tokens import TokenRejected


def bearer_token(request: Request) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(request: Request, services: Services, audiences: Iterable[str]) -> dict[str, Any] | str:
    """Return the verified claims of the request's token, or the reason it was rejected.

    Reasons: ``missing``, ``malformed``, ``signature``, ``expired``, ``audience`` and
    ``tenant`` (the token's tenant does not exist in the simulator).
    """
    try:
        claims = services.issuer.verify(bearer_token(request), audiences=audiences)
    except TokenRejected as rejection:
        return rejection.reason

    tenant_id = claims.get("tid")
    if not isinstance(tenant_id, str) or not services.state.has_tenant(tenant_id):
        return "tenant"
    return claims


def unverified_tenant(request: Request, services: Services) -> str | None:
    """Return the ``tid`` claim of the request's token, unchecked, when it names a known tenant.

    Used only to count calls and pick per-tenant faults before the token is verified.
    """
    token = bearer_token(request)
    if token is None:
        return None
    try:
        tenant_id = jwt.decode(token, options={"verify_signature": False}).get("tid")
    except jwt.InvalidTokenError:
        return None
    return tenant_id if isinstance(tenant_id, str) and services.state.has_tenant(tenant_id) else None
