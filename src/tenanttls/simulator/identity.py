"""The simulated Microsoft identity platform: OpenID metadata, the token endpoint, admin consent, keys.

The token endpoint serves the client-credentials grant with a certificate assertion, which
is what an app-only daemon uses, and hands the authorization-code grant of user sign-in to
`tenanttls.simulator.signin`. A tenant is named in the path by its id (GUID) or by any of its
verified domains, as with ``login.microsoftonline.com``.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tenanttls.domain.names import is_guid
from tenanttls.simulator import catalog, signin
from tenanttls.simulator.assertion import TokenRequestError, verify_client_assertion
from tenanttls.simulator.responses import aad_error
from tenanttls.simulator.services import Services, base_url, services_of
from tenanttls.simulator.tenants import parse_iso

logger = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MULTI_TENANT_NAMES = ("common", "organizations", "consumers")


# --- tenant in the path ---------------------------------------------------------------------------


def _tenant_error(services: Services, reference: str) -> TokenRequestError | None:
    """Return the error Entra ID gives for a tenant path segment that names no tenant, or None."""
    text = reference.strip().lower()
    if text in MULTI_TENANT_NAMES:
        return TokenRequestError(
            400, "invalid_request", 50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        )
    if services.state.resolve(text) is not None:
        return None
    if not is_guid(text) and "." not in text:
        return TokenRequestError(
            400, "invalid_request", 900023,
            f"Specified tenant identifier '{reference}' is neither a valid DNS name, nor a valid external domain.",
        )
    return TokenRequestError(
        400, "invalid_request", 90002,
        f"Tenant '{reference}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant.",
    )


def _error_response(request: Request, services: Services, error: TokenRequestError) -> JSONResponse:
    return aad_error(request, services.clock.now(), status=error.status, error=error.error, code=error.code, text=error.text)


# --- OpenID metadata, keys, instance discovery ------------------------------------------------------


def _metadata(base: str, tenant: str) -> dict[str, Any]:
    authority = f"{base}/{tenant}"
    return {
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{authority}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{authority}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "at_hash", "c_hash"],
        "kerberos_endpoint": f"{authority}/kerberos",
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


async def openid_configuration(request: Request) -> Response:
    """``GET /{tenant}/v2.0/.well-known/openid-configuration``: the authority's metadata."""
    services = services_of(request)
    reference = request.path_params["tenant"]
    tenant_id = services.state.resolve(reference)

    async def handle() -> Response:
        if reference.lower() in MULTI_TENANT_NAMES:
            # Entra ID names the endpoints by the segment and leaves only the issuer as a template.
            metadata = _metadata(base_url(request), reference.lower())
            metadata["issuer"] = f"{base_url(request)}/{{tenantid}}/v2.0"
            return JSONResponse(metadata)
        error = _tenant_error(services, reference)
        if error is not None:
            # The metadata endpoint names an unknown tenant "invalid_tenant", unlike the token endpoint.
            return aad_error(request, services.clock.now(), status=400, error="invalid_tenant", code=error.code, text=error.text)
        return JSONResponse(_metadata(base_url(request), tenant_id))  # type: ignore[arg-type]

    return await services.guard.run(request, surface="identity", endpoint="identity:openid-configuration", tenant_id=tenant_id, handler=handle)


async def keys(request: Request) -> Response:
    """``GET /{tenant}/discovery/v2.0/keys``: the JSON Web Key Set that signs access tokens."""
    services = services_of(request)

    async def handle() -> Response:
        return JSONResponse(services.issuer.jwks())

    return await services.guard.run(request, surface="identity", endpoint="identity:keys", tenant_id=None, handler=handle)


async def instance_discovery(request: Request) -> Response:
    """``GET /common/discovery/instance``: return MSAL's instance discovery with this simulator as the only host."""
    services = services_of(request)

    async def handle() -> Response:
        endpoint = request.query_params.get("authorization_endpoint", "")
        segments = [segment for segment in urlsplit(endpoint).path.split("/") if segment]
        tenant = segments[0] if segments else "common"
        host = request.url.netloc
        return JSONResponse(
            {
                "tenant_discovery_endpoint": f"{base_url(request)}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    return await services.guard.run(request, surface="identity", endpoint="identity:instance-discovery", tenant_id=None, handler=handle)


# --- token endpoint -------------------------------------------------------------------------------------


async def token_get(request: Request) -> Response:
    """``GET /{tenant}/oauth2/v2.0/token``: Entra ID accepts only POST here."""
    services = services_of(request)
    error = TokenRequestError(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. Received a GET request.")
    return _error_response(request, services, error)


async def token(request: Request) -> Response:
    """``POST /{tenant}/oauth2/v2.0/token``: the client-credentials grant with a certificate assertion."""
    services = services_of(request)
    reference = request.path_params["tenant"]
    tenant_id = services.state.resolve(reference)

    async def handle() -> Response:
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        try:
            body = _issue_token(request, services, reference, fields)
        except TokenRequestError as error:
            logger.info("simulator token rejected: tenant=%s code=AADSTS%s", reference[:80], error.code)
            return _error_response(request, services, error)
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    return await services.guard.run(request, surface="identity", endpoint="identity:token", tenant_id=tenant_id, handler=handle)


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise TokenRequestError(400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'.")
    return value


def _issue_token(request: Request, services: Services, reference: str, fields: dict[str, str]) -> dict[str, Any]:
    """Check the token request in Entra ID's order and return the token response body."""
    if fields.get("grant_type") == "authorization_code":
        return signin.redeem_code(request, services, reference, fields)
    error = _tenant_error(services, reference)
    if error is not None:
        raise error
    tenant_id = services.state.resolve(reference)
    assert tenant_id is not None

    grant_type = _required(fields, "grant_type")
    if grant_type != "client_credentials":
        raise TokenRequestError(400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type[:80]}'.")

    client_id = _required(fields, "client_id").lower()
    document = services.state.tenant(tenant_id)
    app = services.state.app
    _check_service_principal(services, app, document, client_id)
    assert app is not None

    _check_credential(request, services, app, tenant_id, client_id, fields)
    resource = _resource(fields.get("scope", ""), document)
    return _token_response(services, app, document, resource)


def _check_service_principal(services: Services, app: dict[str, Any] | None, document: dict[str, Any], client_id: str) -> None:
    """Raise AADSTS700016 unless the app exists in the tenant: consented, and the consent delay has passed."""
    consent = document["consent"]
    effective = False
    if app is not None and app["client_id"] == client_id and consent["granted"] and consent["granted_at"]:
        delay = services.state.delays(document["tenant_id"])["consent_seconds"]
        effective = parse_iso(consent["granted_at"]).timestamp() + delay <= services.clock.now().timestamp()

    if not effective:
        raise TokenRequestError(
            400, "unauthorized_client", 700016,
            f"Application with identifier '{client_id[:80]}' was not found in the directory '{document['display_name']}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or consented "
            "to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
        )


def _check_credential(request: Request, services: Services, app: dict[str, Any], tenant_id: str, client_id: str, fields: dict[str, str]) -> None:
    if fields.get("client_secret"):
        raise TokenRequestError(
            401, "invalid_client", 7000215,
            f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
            f"not the client secret ID, for a secret added to app '{client_id}'.",
        )
    if not fields.get("client_assertion"):
        raise TokenRequestError(
            401, "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if fields.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenRequestError(
            400, "invalid_request", 900144,
            f"The request body must contain the following parameter: 'client_assertion_type' with the value '{ASSERTION_TYPE}'.",
        )

    def audience_matches(audience: str) -> bool:
        parts = urlsplit(audience)
        segments = [segment for segment in parts.path.split("/") if segment]
        if parts.scheme != "https" or parts.netloc.lower() not in (request.url.netloc.lower(), "login.microsoftonline.com"):
            return False
        if len(segments) not in (3, 4) or segments[1:] not in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            return False
        return services.state.resolve(segments[0]) == tenant_id

    verify_client_assertion(fields["client_assertion"], app=app, client_id=client_id, audience_matches=audience_matches)


def _resource(scope: str, document: dict[str, Any]) -> str:
    """Return the resource URI of a client-credentials scope such as ``https://outlook.office365.com/.default``."""
    scopes = scope.split()
    if not scopes:
        raise TokenRequestError(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")

    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise TokenRequestError(
            400, "invalid_scope", 1002012,
            f"The provided value for scope {scope[:200]} is not valid. Client credential flows must have a scope value "
            "with /.default suffixed to the resource identifier (application ID URI).",
        )

    name = scopes[0][: -len("/.default")].rstrip("/").lower()
    resource = catalog.RESOURCE_ALIASES.get(name)
    if resource is None:
        raise TokenRequestError(
            400, "invalid_resource", 500011,
            f"The resource principal named {name[:200]} was not found in the tenant named {document['display_name']}. "
            "This can happen if the application has not been installed by the administrator of the tenant or consented "
            "to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
        )
    return resource


def _token_response(services: Services, app: dict[str, Any], document: dict[str, Any], resource: str) -> dict[str, Any]:
    roles = [item for item in document["consent"]["permissions"] if catalog.permission_resource(item) == resource]
    lifetime = int(services.state.settings["token_lifetime_seconds"])
    access_token = services.issuer.issue(
        tenant_id=document["tenant_id"],
        audience=resource,
        app_id=app["client_id"],
        app_display_name=app["display_name"],
        roles=roles,
        wids=document["app_roles"],
        lifetime=lifetime,
    )
    logger.info("simulator token issued: tenant=%s client_id=%s resource=%s roles=%s", document["tenant_id"], app["client_id"], resource, ",".join(roles))
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}


# --- admin consent -----------------------------------------------------------------------------------------


def _error_page(status: int, code: int, text: str) -> HTMLResponse:
    """Return the sign-in error page Entra ID shows when it cannot redirect back to the app."""
    page = (
        "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
        f"<h1>Sorry, but we're having trouble signing you in.</h1><p id=\"error\">AADSTS{code}: {html.escape(text)}</p>"
        "</body></html>"
    )
    return HTMLResponse(page, status_code=status)


def _redirect(redirect_uri: str, parameters: dict[str, str]) -> RedirectResponse:
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(parameters.items())
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)


async def admin_consent(request: Request) -> Response:
    """``GET /{tenant}/adminconsent``: record the admin's decision and redirect back to the app.

    The decision comes from the tenant's ``consent_decision`` test hook (accept by default).
    An unknown tenant or app, or a redirect URI not registered for the app, gets an error
    page and never a redirect. NOTE: Microsoft documents only the success redirect; a
    declined consent is sent back as Entra ID's authorize endpoint does it
    (``error=access_denied``, AADSTS65004).
    """
    services = services_of(request)
    reference = request.path_params["tenant"]
    tenant_id = services.state.resolve(reference)

    async def handle() -> Response:
        return _admin_consent(request, services, reference, tenant_id)

    return await services.guard.run(request, surface="identity", endpoint="identity:adminconsent", tenant_id=tenant_id, handler=handle)


def _admin_consent(request: Request, services: Services, reference: str, tenant_id: str | None) -> Response:
    params = request.query_params
    client_id = params.get("client_id", "").strip().lower()
    redirect_uri = params.get("redirect_uri", "")
    app = services.state.app

    if not client_id:
        return _error_page(400, 900144, "The request body must contain the following parameter: 'client_id'.")
    error = _tenant_error(services, reference)
    if error is not None:
        return _error_page(400, error.code, error.text)
    assert tenant_id is not None
    if app is None or client_id != app["client_id"]:
        return _error_page(
            400, 700016,
            f"Application with identifier '{client_id[:80]}' was not found in the directory "
            f"'{services.state.tenant(tenant_id)['display_name']}'.",
        )
    if redirect_uri not in app["redirect_uris"]:
        return _error_page(
            400, 50011,
            f"The redirect URI '{redirect_uri[:200]}' specified in the request does not match the redirect URIs "
            f"configured for the application '{client_id}'.",
        )

    state_value = params.get("state", "")
    if services.state.tenant(tenant_id)["consent"]["decision"] == "deny":
        logger.info("simulator admin consent: tenant=%s decision=deny", tenant_id)
        return _redirect(
            redirect_uri,
            {
                "error": "access_denied",
                "error_subcode": "cancel",
                "error_description": "AADSTS65004: User declined to consent to access the app.",
                "state": state_value,
            },
        )

    services.state.set_consent(tenant_id, True, None, "admin-consent")
    return _redirect(redirect_uri, {"admin_consent": "True", "tenant": tenant_id, "state": state_value})
