"""The Starlette application: every route of the simulated Microsoft hosts and of the inspection API.

One listener stands for ``login.microsoftonline.com`` (identity), ``graph.microsoft.com``
(``/v1.0/domains``) and ``outlook.office365.com`` (``/adminapi/``); the inspection API lives
under ``/_simulator/``, a prefix no Microsoft host uses.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenanttls.simulator import graph, identity, inspection, signin
from tenanttls.simulator.exchange import api as exchange_api
from tenanttls.simulator.responses import route_error
from tenanttls.simulator.services import Services, services_of

logger = logging.getLogger(__name__)


class CatchUnexpectedErrors:
    """ASGI middleware that turns an exception escaping a handler into a JSON 500 and logs it once.

    Starlette's handler for ``Exception`` re-raises after responding, so uvicorn would log the
    same traceback a second time ("Exception in ASGI application"). This middleware does not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as error:
            logger.error("simulator error: path=%s error=%r", scope.get("path"), error, exc_info=error)
            if started:
                # The status line is sent already; the client sees the response cut short.
                return
            response = JSONResponse(
                {"error": {"code": "InternalServerError", "message": "An internal server error occurred."}}, status_code=500
            )
            await response(scope, receive, send)


async def _no_route(request: Request, error: Exception) -> Response:
    """Render the router's 404 (no such path) and 405 (no such method) in the error shape of the path's API."""
    assert isinstance(error, HTTPException)
    now = services_of(request).clock.now()
    allowed = (error.headers or {}).get("Allow")
    return route_error(request, now, status=error.status_code, allowed=allowed)


def build_app(services: Services) -> Starlette:
    """Return the simulator's ASGI application bound to `services`."""
    routes = [
        *inspection.ROUTES,
        # Microsoft Graph
        Route("/v1.0/domains", graph.list_domains, methods=["GET"]),
        Route("/v1.0/domains", graph.create_domain, methods=["POST"]),
        Route("/v1.0/domains/{domain}", graph.get_domain, methods=["GET"]),
        Route("/v1.0/domains/{domain}", graph.delete_domain, methods=["DELETE"]),
        Route("/v1.0/domains/{domain}/verificationDnsRecords", graph.verification_records, methods=["GET"]),
        Route("/v1.0/domains/{domain}/verify", graph.verify_domain, methods=["POST"]),
        # Exchange Online admin API
        Route("/adminapi/beta/{tenant}/InvokeCommand", exchange_api.invoke_command, methods=["POST"]),
        Route("/adminapi/v1.0/{tenant}/InvokeCommand", exchange_api.invoke_command_v1, methods=["POST"]),
        # Microsoft identity platform
        Route("/common/discovery/instance", identity.instance_discovery, methods=["GET"]),
        Route("/common/discovery/v2.0/keys", identity.keys, methods=["GET"]),
        Route("/common/discovery/keys", identity.keys, methods=["GET"]),
        Route("/{tenant}/discovery/v2.0/keys", identity.keys, methods=["GET"]),
        Route("/{tenant}/v2.0/.well-known/openid-configuration", identity.openid_configuration, methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/token", identity.token, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/token", identity.token_get, methods=["GET"]),
        Route("/{tenant}/adminconsent", identity.admin_consent, methods=["GET"]),
        # User sign-in (OpenID Connect authorization-code flow)
        *signin.ROUTES,
        Route("/{tenant}/v2.0/adminconsent", identity.admin_consent, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(CatchUnexpectedErrors)], exception_handlers={HTTPException: _no_route}
    )
    app.state.services = services
    return app
