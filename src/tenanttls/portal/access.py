"""Who may see and do what: the session's principal and the checks every route makes.

* A customer's user sees only their own tenant. Any other tenant id in a URL gets
  404, the same response as for a tenant that does not exist, so ids cannot be probed.
* Only a tenant admin (Global or Exchange Administrator) may act; other users of
  the tenant see the status read-only. Granting admin consent needs a Global or
  Privileged Role Administrator, as Microsoft Entra ID requires for application
  permissions.
* Operators (provider staff with the operator app role in the provider's tenant)
  see every tenant and use the operator routes to act.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from fastapi import HTTPException, Request

from tenanttls.domain.names import is_guid
from tenanttls.portal.oidc import Principal


class SignInRequired(Exception):
    """The request needs a signed-in user: pages redirect to the sign-in, and the API returns 401."""


class PageError(HTTPException):
    """An HTTP error whose page offers the way on.

    `title` replaces the heading chosen by status, and `link` is an ``(href, text)`` pair
    shown as a button. The JSON API returns only `detail`.
    """

    def __init__(self, status_code: int, detail: str, *, title: str | None = None, link: tuple[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.title = title
        self.link = link


def current_principal(request: Request) -> Principal | None:
    """Return the signed-in user, or None; a session older than its lifetime is cleared."""
    data = request.session.get("user")
    if not data:
        return None

    principal = Principal.from_session(data)
    lifetime = request.app.state.context.config.session_lifetime.total_seconds()
    if time.time() - principal.signed_in_at > lifetime:
        request.session.clear()
        return None
    return principal


def require_principal(request: Request) -> Principal:
    """Return the signed-in user or raise `SignInRequired`."""
    principal = current_principal(request)
    if principal is None:
        raise SignInRequired()
    return principal


def require_operator(request: Request) -> Principal:
    """Return the signed-in operator; raise 403 for anyone else."""
    principal = require_principal(request)
    if not principal.is_operator:
        raise PageError(
            403,
            f"This page is for the provider's operators, and you are signed in as {principal.upn or 'a customer'}. "
            "Operators sign in with their account in the provider's tenant.",
            link=(f"/operator/sign-in?next={quote(request.url.path, safe='/')}", "Operator sign-in"),
        )
    return principal


def check_tenant_scope(principal: Principal, tenant_id: str) -> str:
    """Return the tenant id, lower-cased, when `principal` may see it; raise 404 otherwise."""
    tenant_id = tenant_id.strip().lower()
    if not is_guid(tenant_id):
        raise HTTPException(status_code=404, detail="No such tenant.")
    if principal.is_operator or principal.tenant_id == tenant_id:
        return tenant_id
    raise HTTPException(status_code=404, detail="No such tenant.")


def require_tenant_admin(principal: Principal) -> None:
    """Raise 403 unless `principal` is an admin of their tenant who may act."""
    if not principal.can_act:
        raise HTTPException(
            status_code=403,
            detail="Only a Global Administrator or Exchange Administrator of this tenant can do this; you can view the status.",
        )


def require_consent_role(principal: Principal) -> None:
    """Raise 403 unless `principal` may grant admin consent."""
    if not principal.can_consent:
        raise HTTPException(
            status_code=403,
            detail="Granting the permissions needs a Global Administrator or Privileged Role Administrator of this tenant.",
        )
