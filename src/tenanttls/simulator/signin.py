"""User sign-in on the simulated identity platform: the OpenID Connect authorization-code flow.

A web app (the portal) signs users in the way it would with Microsoft Entra ID:

1. It sends the browser to ``GET /{tenant}/oauth2/v2.0/authorize`` with ``response_type=code``,
   ``client_id``, ``redirect_uri``, ``scope=openid profile``, ``state`` and ``nonce``.
2. The simulator shows a small page that lists the tenant's seeded users. A test can skip
   the page: ``POST /_simulator/signin/select`` picks the user for the next request.
3. The simulator redirects to ``redirect_uri`` with a single-use ``code`` and the ``state``.
4. The app redeems the code at ``POST /{tenant}/oauth2/v2.0/token`` with
   ``grant_type=authorization_code`` and its certificate assertion. The token endpoint hands
   that grant to `redeem_code`, which returns an RS256 ID token.

The ID token carries ``iss``, ``aud`` (the client id), ``tid``, ``oid``, ``sub``,
``preferred_username``, ``name``, ``nonce``, ``roles`` (app roles assigned to the user) and
``wids`` (the template ids of the user's directory roles). ``{tenant}`` is a tenant id, a
verified domain, or ``organizations`` / ``common`` for a multi-tenant app that learns the
tenant from ``tid``.

Users are part of the tenant document (``users``, see `parse_users`), so they persist with
the simulator's state. Codes and the selected user live in memory and end with the process.
This module imports nothing from the portal or from the Microsoft clients.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tenanttls.domain.names import is_guid
from tenanttls.errors import InvalidInput
from tenanttls.simulator import catalog
from tenanttls.simulator.assertion import TokenRequestError, verify_client_assertion
from tenanttls.simulator.display import quoted
from tenanttls.simulator.jsonbody import InvalidJsonBody, parse_json
from tenanttls.simulator.services import Services, base_url, services_of

logger = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MULTI_TENANT_SEGMENTS = ("organizations", "common")

# Directory roles a seeded user may hold besides those in `catalog.ROLE_TEMPLATES`
# (template ids from the Microsoft Entra built-in roles reference).
EXTRA_ROLE_TEMPLATES = {"Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814"}

# NOTE: the code lifetime is this simulator's choice, not a figure taken from Microsoft.
CODE_LIFETIME = timedelta(minutes=10)
ID_TOKEN_LIFETIME = timedelta(hours=1)

# The audience of the access token issued next to the ID token: Microsoft Graph's app id.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

USER_KEYS = {"oid", "upn", "display_name", "directory_roles", "app_roles"}
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_MAX_PARAMETER_LENGTH = 2048


# --- seeded users ------------------------------------------------------------------------------------


def role_template(role: str) -> str | None:
    """Return the template id of a directory role given by name or id, or None when unknown."""
    for name, template in EXTRA_ROLE_TEMPLATES.items():
        if role.strip().lower() in (name.lower(), template):
            return template
    return catalog.role_template_id(role)


def role_name(template: str) -> str:
    """Return the display name of a role template id, or the id itself when unknown."""
    for name, known in EXTRA_ROLE_TEMPLATES.items():
        if known == template:
            return name
    return catalog.ROLE_NAMES.get(template, template)


def parse_users(value: Any, tenant_id: str, initial_domain: str) -> list[dict[str, Any]]:
    """Return the stored form of a tenant's seeded ``users`` list; raise InvalidInput naming the bad entry.

    Each entry: ``upn`` (required), ``oid`` (a GUID; derived from tenant and UPN when
    missing), ``display_name``, ``directory_roles`` (Entra role names or template ids) and
    ``app_roles`` (values of the app roles assigned to the user, such as ``Portal.Operator``).
    """
    if not isinstance(value, list):
        raise InvalidInput(f"invalid users {quoted(value, 80)} of tenant {tenant_id}: expected a list of user objects")

    users, seen = [], set()
    for spec in value:
        user = _parse_user(spec, tenant_id, initial_domain)
        if user["oid"] in seen or user["upn"] in seen:
            raise InvalidInput(f"user {user['upn']} of tenant {tenant_id} appears twice (same upn or oid)")
        seen.update((user["oid"], user["upn"]))
        users.append(user)
    return users


def _parse_user(spec: Any, tenant_id: str, initial_domain: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"invalid user {quoted(spec, 80)} of tenant {tenant_id}: expected an object with at least \"upn\"")
    unknown = sorted(set(spec) - USER_KEYS)
    if unknown:
        raise InvalidInput(f"unknown user key(s) {', '.join(unknown)} in tenant {tenant_id}: valid keys are {', '.join(sorted(USER_KEYS))}")

    upn = str(spec.get("upn") or "").strip().lower()
    if upn.count("@") != 1 or not upn.split("@")[0]:
        raise InvalidInput(f"invalid upn {quoted(spec.get('upn'))} of a user in tenant {tenant_id}: expected a name like \"adele@{initial_domain}\"")

    oid = str(spec.get("oid") or uuid.uuid5(uuid.NAMESPACE_URL, f"tenanttls-simulator/{tenant_id}/{upn}")).lower()
    if not is_guid(oid):
        raise InvalidInput(f"invalid oid {quoted(spec.get('oid'))} of user {upn}: expected a GUID")

    roles = []
    for role in spec.get("directory_roles") or []:
        template = role_template(role) if isinstance(role, str) else None
        if template is None:
            raise InvalidInput(
                f"unknown directory role {quoted(role)} of user {upn}: use a role template id or one of "
                f"{', '.join([*catalog.ROLE_TEMPLATES, *EXTRA_ROLE_TEMPLATES])}"
            )
        roles.append(template)

    app_roles = spec.get("app_roles") or []
    if not isinstance(app_roles, list) or not all(isinstance(role, str) and role.strip() for role in app_roles):
        raise InvalidInput(f"invalid app_roles {quoted(app_roles)} of user {upn}: expected a list of role values such as [\"Portal.Operator\"]")

    return {
        "oid": oid,
        "upn": upn,
        "display_name": str(spec.get("display_name") or upn.split("@")[0]),
        "directory_roles": list(dict.fromkeys(roles)),
        "app_roles": list(dict.fromkeys(role.strip() for role in app_roles)),
    }


@dataclass(frozen=True)
class SignInUser:
    """A seeded user together with the tenant it belongs to."""

    tenant_id: str
    oid: str
    upn: str
    display_name: str
    directory_roles: tuple[str, ...]
    app_roles: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "oid": self.oid,
            "upn": self.upn,
            "display_name": self.display_name,
            "directory_roles": [role_name(template) for template in self.directory_roles],
            "app_roles": list(self.app_roles),
        }


def users_of(services: Services, tenant_id: str | None) -> list[SignInUser]:
    """Return the users of `tenant_id`, or of every tenant when it is None, ordered by UPN."""
    tenant_ids = [tenant_id] if tenant_id is not None else services.state.tenant_ids()
    users = []
    for current in tenant_ids:
        for user in services.state.tenant(current).get("users", []):
            users.append(
                SignInUser(
                    tenant_id=current,
                    oid=user["oid"],
                    upn=user["upn"],
                    display_name=user["display_name"],
                    directory_roles=tuple(user["directory_roles"]),
                    app_roles=tuple(user["app_roles"]),
                )
            )
    return sorted(users, key=lambda user: user.upn)


def find_user(services: Services, reference: str) -> SignInUser | None:
    """Return the user whose object id or UPN is `reference` (any case), or None."""
    target = reference.strip().lower()
    for user in users_of(services, None):
        if target in (user.oid, user.upn):
            return user
    return None


# --- codes and the test hook (memory) ----------------------------------------------------------------


@dataclass
class AuthorizationCode:
    """An issued authorization code and what it was issued for."""

    client_id: str
    redirect_uri: str
    user: SignInUser
    nonce: str | None
    expires_at: datetime
    redeemed: bool = False


@dataclass
class SignInMemory:
    """Issued codes and the users selected by tests, per simulator app. Thread-safe."""

    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    selected: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_memory_lock = threading.Lock()


def memory_of(request: Request) -> SignInMemory:
    """Return the sign-in memory of the app that received `request`, creating it on first use."""
    with _memory_lock:
        memory = getattr(request.app.state, "signin", None)
        if memory is None:
            memory = SignInMemory()
            request.app.state.signin = memory
        return memory


# --- authorization endpoint --------------------------------------------------------------------------


class AuthorizeError(Exception):
    """An authorization request failed.

    `redirect` is False for errors about the client or the redirect URI: those are shown
    on an error page, never sent to a redirect URI that is not trusted yet.
    """

    def __init__(self, error: str, code: int | None, text: str, *, redirect: bool) -> None:
        super().__init__(text)
        self.error = error
        self.description = f"AADSTS{code}: {text}" if code else text
        self.code = code
        self.redirect = redirect


@dataclass(frozen=True)
class AuthorizeRequest:
    """The checked parameters of one authorization request."""

    tenant: str
    tenant_id: str | None
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Return True when `requested` matches the registered redirect URI.

    The match is exact, except that the port of a loopback URI is ignored, because apps
    on a developer's machine listen on a port the operating system picks (RFC 8252,
    section 7.3).
    """
    if registered == requested:
        return True
    want, got = urlsplit(registered), urlsplit(requested)
    if want.hostname not in _LOOPBACK_HOSTS or got.hostname != want.hostname:
        return False
    return (want.scheme, want.path, want.query) == (got.scheme, got.path, got.query)


def check_authorize_request(services: Services, tenant: str, params: Mapping[str, str]) -> AuthorizeRequest:
    """Return the checked request, or raise `AuthorizeError` in the order Entra ID checks."""
    for name, value in params.items():
        if len(value) > _MAX_PARAMETER_LENGTH:
            raise AuthorizeError("invalid_request", None, f"The parameter '{name}' is longer than {_MAX_PARAMETER_LENGTH} characters.", redirect=False)

    client_id = params.get("client_id", "").strip().lower()
    app = services.state.app
    if not client_id:
        raise AuthorizeError("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.", redirect=False)
    if app is None or app["client_id"] != client_id:
        raise AuthorizeError("unauthorized_client", 700016, f"Application with identifier '{client_id[:80]}' was not found in the directory.", redirect=False)

    redirect_uri = params.get("redirect_uri", "")
    if not any(redirect_uri_matches(uri, redirect_uri) for uri in app["redirect_uris"]):
        raise AuthorizeError(
            "invalid_request", 50011,
            f"The redirect URI '{redirect_uri[:200]}' specified in the request does not match the redirect URIs "
            f"configured for the application '{client_id}'.",
            redirect=False,
        )

    tenant_id = None
    if tenant.lower() not in MULTI_TENANT_SEGMENTS:
        tenant_id = services.state.resolve(tenant)
        if tenant_id is None:
            raise AuthorizeError("invalid_request", 90002, f"Tenant '{tenant[:80]}' not found.", redirect=False)

    request = AuthorizeRequest(tenant.lower(), tenant_id, client_id, redirect_uri, params.get("state"), params.get("nonce"))
    _check_flow(params)
    return request


def _check_flow(params: Mapping[str, str]) -> None:
    response_type = params.get("response_type", "")
    if response_type != "code":
        raise AuthorizeError(
            "unsupported_response_type", None,
            f"The simulator supports response_type 'code' only, not '{response_type[:40]}'.", redirect=True,
        )
    if params.get("response_mode", "query") != "query":
        raise AuthorizeError("invalid_request", None, "The simulator supports response_mode 'query' only.", redirect=True)
    if "openid" not in params.get("scope", "").split():
        raise AuthorizeError("invalid_scope", None, "The scope must include 'openid' to sign a user in.", redirect=True)


async def authorize(request: Request) -> Response:
    """``GET|POST /{tenant}/oauth2/v2.0/authorize``: the sign-in page, then the redirect with a code."""
    services = services_of(request)
    tenant = request.path_params["tenant"]
    params = {key: value for key, value in request.query_params.items()}
    choice: dict[str, str] = {}
    if request.method == "POST":
        form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
        choice = {key: form.pop(key) for key in ("user", "action") if key in form}
        params = form

    try:
        checked = check_authorize_request(services, tenant, params)
    except AuthorizeError as error:
        return _authorize_error(error, params)

    if request.method == "POST":
        return _complete(request, services, checked, choice)

    candidates = users_of(services, checked.tenant_id)
    selected = _take_selected(request, checked, candidates)
    if selected is not None:
        return _redirect_with_code(request, services, checked, selected)
    return HTMLResponse(_sign_in_page(tenant, params, candidates))


def _take_selected(request: Request, checked: AuthorizeRequest, candidates: list[SignInUser]) -> SignInUser | None:
    memory = memory_of(request)
    with memory.lock:
        oid = memory.selected.pop(checked.tenant, None)
    return next((user for user in candidates if user.oid == oid), None) if oid else None


def _complete(request: Request, services: Services, checked: AuthorizeRequest, choice: Mapping[str, str]) -> Response:
    if choice.get("action") == "cancel":
        return _redirect(
            checked.redirect_uri,
            {"error": "access_denied", "error_description": "AADSTS65004: User declined to consent to access the app.", "state": checked.state},
        )

    user = next((user for user in users_of(services, checked.tenant_id) if user.oid == choice.get("user")), None)
    if user is None:
        return _authorize_error(AuthorizeError("invalid_request", None, "The selected user is not a user of this tenant.", redirect=False), {})
    return _redirect_with_code(request, services, checked, user)


def _redirect_with_code(request: Request, services: Services, checked: AuthorizeRequest, user: SignInUser) -> Response:
    code = secrets.token_urlsafe(32)
    issued = AuthorizationCode(checked.client_id, checked.redirect_uri, user, checked.nonce, services.clock.now() + CODE_LIFETIME)
    memory = memory_of(request)
    with memory.lock:
        memory.codes[code] = issued
    logger.info("simulator sign-in: tenant=%s user=%s client_id=%s", user.tenant_id, user.oid, checked.client_id)
    return _redirect(checked.redirect_uri, {"code": code, "state": checked.state})


def _redirect(uri: str, parameters: Mapping[str, str | None]) -> RedirectResponse:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in parameters.items() if v is not None]
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)


def _authorize_error(error: AuthorizeError, params: Mapping[str, str]) -> Response:
    logger.info("simulator sign-in rejected: error=%s code=%s", error.error, error.code)
    if error.redirect:
        return _redirect(params["redirect_uri"], {"error": error.error, "error_description": error.description, "state": params.get("state")})
    page = (
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
        f"<h1>Sorry, but we're having trouble signing you in.</h1><p id=\"error\">{html.escape(error.description)}</p></body></html>"
    )
    return HTMLResponse(page, status_code=400)


def _sign_in_page(tenant: str, params: Mapping[str, str], users: list[SignInUser]) -> str:
    """Return the page that lists the users one can sign in as, one form per user."""
    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items())
    action = html.escape(f"/{tenant}/oauth2/v2.0/authorize")
    rows = []
    for user in users:
        roles = ", ".join([role_name(template) for template in user.directory_roles] + list(user.app_roles)) or "no admin role"
        rows.append(
            f'<li><form method="post" action="{action}">{hidden}'
            f'<input type="hidden" name="user" value="{html.escape(user.oid)}">'
            f'<button type="submit" data-upn="{html.escape(user.upn)}">{html.escape(user.display_name)} ({html.escape(user.upn)})</button>'
            f" <small>{html.escape(roles)}</small></form></li>"
        )
    if not rows:
        rows.append("<li>No users are seeded for this tenant.</li>")

    cancel = f'<form method="post" action="{action}">{hidden}<input type="hidden" name="action" value="cancel"><button type="submit">Cancel</button></form>'
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Sign in to your account</title></head><body>'
        "<h1>Pick an account</h1><p>Simulated Microsoft identity platform.</p>"
        f"<ul>{''.join(rows)}</ul>{cancel}</body></html>"
    )


# --- token endpoint: authorization_code grant ----------------------------------------------------------


def redeem_code(request: Request, services: Services, reference: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Return the token response for an ``authorization_code`` grant; raise `TokenRequestError` otherwise.

    Checks, in order: the client and its certificate assertion (audience: this token
    endpoint), then the code (known, not redeemed, issued to this client, same
    redirect URI, not expired). A code can be redeemed once, even when a later check fails.
    """
    client_id = _required(fields, "client_id").lower()
    app = services.state.app
    if app is None or app["client_id"] != client_id:
        raise TokenRequestError(400, "unauthorized_client", 700016, f"Application with identifier '{client_id[:80]}' was not found in the directory.")
    _check_client(request, app, reference, client_id, fields)

    code = _take_code(request, _required(fields, "code"))
    if code.client_id != client_id:
        raise TokenRequestError(400, "invalid_grant", 70000, "The provided authorization code was issued to another client.")
    if fields.get("redirect_uri", "") != code.redirect_uri:
        raise TokenRequestError(
            400, "invalid_grant", 500112,
            "The reply address does not match the reply address provided when requesting the authorization code.",
        )
    now = services.clock.now()
    if now >= code.expires_at:
        raise TokenRequestError(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired.")
    if reference.lower() not in MULTI_TENANT_SEGMENTS and services.state.resolve(reference) != code.user.tenant_id:
        raise TokenRequestError(400, "invalid_grant", 70000, "The authorization code was issued for another tenant.")

    logger.info("simulator code redeemed: tenant=%s user=%s client_id=%s", code.user.tenant_id, code.user.oid, client_id)
    return _token_response(services, base_url(request), code, now)


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise TokenRequestError(400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")
    return value


def _check_client(request: Request, app: dict[str, Any], reference: str, client_id: str, fields: Mapping[str, str]) -> None:
    if not fields.get("client_assertion"):
        raise TokenRequestError(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    if fields.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenRequestError(
            400, "invalid_request", 900144,
            f"The request body must contain the following parameter: 'client_assertion_type' with the value '{ASSERTION_TYPE}'.",
        )

    endpoint = f"{base_url(request)}/{reference}/oauth2/v2.0/token".lower()
    verify_client_assertion(
        fields["client_assertion"], app=app, client_id=client_id, audience_matches=lambda audience: audience.lower() == endpoint
    )


def _take_code(request: Request, value: str) -> AuthorizationCode:
    memory = memory_of(request)
    with memory.lock:
        code = memory.codes.get(value)
        if code is None:
            raise TokenRequestError(400, "invalid_grant", 70000, "The provided authorization code is invalid or malformed.")
        if code.redeemed:
            raise TokenRequestError(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed.")
        code.redeemed = True
        return code


def id_token_claims(base: str, code: AuthorizationCode, now: datetime) -> dict[str, Any]:
    """Return the claims of the v2.0 ID token for a redeemed code."""
    user = code.user
    claims: dict[str, Any] = {
        "ver": "2.0",
        "iss": f"{base}/{user.tenant_id}/v2.0",
        "aud": code.client_id,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + ID_TOKEN_LIFETIME).timestamp()),
        "tid": user.tenant_id,
        "oid": user.oid,
        "sub": _pairwise_subject(code.client_id, user.oid),
        "preferred_username": user.upn,
        "name": user.display_name,
    }
    if code.nonce is not None:
        claims["nonce"] = code.nonce
    if user.app_roles:
        claims["roles"] = list(user.app_roles)
    if user.directory_roles:
        claims["wids"] = list(user.directory_roles)
    return claims


def _token_response(services: Services, base: str, code: AuthorizationCode, now: datetime) -> dict[str, Any]:
    lifetime = int(ID_TOKEN_LIFETIME.total_seconds())
    access_claims = {
        "ver": "1.0",
        "iss": f"https://sts.windows.net/{code.user.tenant_id}/",
        "aud": GRAPH_APP_ID,
        "appid": code.client_id,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(now.timestamp()) + lifetime,
        "tid": code.user.tenant_id,
        "oid": code.user.oid,
        "scp": "openid profile User.Read",
        "upn": code.user.upn,
        "uti": base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode(),
    }
    return {
        "token_type": "Bearer",
        "scope": "openid profile User.Read",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": services.issuer.sign(access_claims),
        "id_token": services.issuer.sign(id_token_claims(base, code, now)),
    }


def _pairwise_subject(client_id: str, oid: str) -> str:
    """Return a `sub` unique to the user and the app, as the identity platform issues it."""
    digest = hashlib.sha256(f"{client_id}|{oid}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- inspection API ----------------------------------------------------------------------------------


async def list_users(request: Request) -> Response:
    """``GET /_simulator/signin/users[?tenant=]``: the seeded users."""
    services = services_of(request)
    tenant = request.query_params.get("tenant")
    tenant_id = services.state.resolve(tenant) if tenant else None
    if tenant and tenant_id is None:
        return JSONResponse({"error": f"tenant {quoted(tenant, 80)} not found in the simulator"}, status_code=404)
    return JSONResponse({"value": [user.to_json() for user in users_of(services, tenant_id)]})


async def select_user(request: Request) -> Response:
    """``POST /_simulator/signin/select {"user": upn or oid, "tenant": segment}``: skip the page once.

    The next authorization request whose tenant segment is `tenant` (default
    ``organizations``) signs this user in without showing the page.
    """
    services = services_of(request)
    try:
        body = parse_json(await request.body())
    except InvalidJsonBody as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    if not isinstance(body, dict) or not isinstance(body.get("user"), str):
        return JSONResponse({"error": "give 'user': a seeded user's upn or oid"}, status_code=400)

    user = find_user(services, body["user"])
    if user is None:
        return JSONResponse({"error": f"no seeded user {quoted(body['user'], 80)}; add it to a tenant's 'users' in the seed"}, status_code=404)
    segment = str(body.get("tenant") or "organizations").lower()
    memory = memory_of(request)
    with memory.lock:
        memory.selected[segment] = user.oid
    return JSONResponse({"tenant": segment, "user": user.to_json()})


ROUTES = [
    Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"]),
    Route("/_simulator/signin/users", list_users, methods=["GET"]),
    Route("/_simulator/signin/select", select_user, methods=["POST"]),
]
