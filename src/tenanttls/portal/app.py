"""`create_app`: the portal's FastAPI application.

Server-rendered pages (Jinja2) for customers' admins and the provider's operators,
and a JSON API under ``/api`` with its OpenAPI document at ``/openapi.json``.
Security layers, outermost first: security headers and body limit, signed session
cookie, CSRF check on every unsafe request (an app-wide dependency), then the
per-route tenant and role checks in `tenanttls.portal.access`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from urllib.parse import quote, urlsplit

from tenanttls import __version__
from tenanttls.errors import (
    InvalidInput,
    MicrosoftApiError,
    NotFoundError,
    PlanSafetyError,
    TenantTlsError,
    UpgradeStateError,
)
from tenanttls.portal import api, auth, operator, pages
from tenanttls.portal.access import SignInRequired
from tenanttls.portal.context import PortalContext
from tenanttls.portal.rendering import create_templates, render
from tenanttls.portal.security import SecurityHeadersMiddleware, content_security_policy, csrf_protect, safe_next_path
from tenanttls.portal.validation import describe_errors

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).parent
SESSION_COOKIE = "tenanttls_session"


def create_app(context: PortalContext) -> FastAPI:
    """Return the portal application serving `context`."""
    config = context.config
    app = FastAPI(
        title="tenanttls portal API",
        version=__version__,
        description="Status, checks, plan and actions of the per-tenant certificate upgrade.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(csrf_protect)],
    )
    app.state.context = context
    app.state.origin = config.origin
    app.state.templates = create_templates()

    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(operator.router)
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")

    app.add_middleware(
        SessionMiddleware,
        secret_key=config.session_secret.decode("latin-1"),
        session_cookie=SESSION_COOKIE,
        max_age=int(config.session_lifetime.total_seconds()),
        same_site="lax",
        https_only=config.https,
    )
    app.add_middleware(SecurityHeadersMiddleware, csp=content_security_policy([config.login_origin]), https=config.https)
    app.add_middleware(RequestLogMiddleware)
    _add_error_handlers(app)
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


# Errors that derive from TenantTlsError map to these HTTP statuses; the message is shown.
_STATUS_FOR_ERROR = (
    (NotFoundError, 404),
    (UpgradeStateError, 409),
    (PlanSafetyError, 409),
    (InvalidInput, 422),
    (MicrosoftApiError, 502),
)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _error: SignInRequired) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "You are not signed in, or your session has expired. Sign in again."}, status_code=401)
        if request.method == "GET":
            return RedirectResponse(sign_in_path(request), status_code=303)
        return render(
            request, "error.html", status_code=401, status=401, title="Your session has expired",
            message="You are not signed in any more, so what you sent was not carried out. Sign in again, then repeat it.",
            link=(sign_in_path(request, page=_referring_page(request)), "Sign in again"),
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return _error_response(
            request, error.status_code, str(error.detail), title=getattr(error, "title", None), link=getattr(error, "link", None)
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        problems = describe_errors(error.errors())
        message = " ".join(problem["message"] for problem in problems)
        if _is_api(request):
            return JSONResponse({"detail": message, "errors": problems}, status_code=422)
        return _error_response(request, 422, message)

    @app.exception_handler(TenantTlsError)
    async def tenanttls_error(request: Request, error: TenantTlsError) -> Response:
        for error_type, status in _STATUS_FOR_ERROR:
            if isinstance(error, error_type):
                return _error_response(request, status, str(error))
        logger.error("request failed: path=%s error=%s: %s", request.url.path, type(error).__name__, error)
        return _error_response(request, 500, "The request failed on the server; try again, or contact support.")


def sign_in_path(request: Request, page: str | None = None) -> str:
    """Return the sign-in that fits `page`: operators' pages start the operator sign-in.

    `page` defaults to the requested path with its query string. It is passed on as
    ``next`` so the user lands on it afterwards.
    """
    if page is None:
        page = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    start = "/operator/sign-in" if page.startswith("/operator") else "/sign-in"
    return f"{start}?next={quote(page, safe='/')}"


def _referring_page(request: Request) -> str:
    """Return the portal page a form was sent from (its ``Referer``), else the operator or customer home.

    The page's referrer policy is ``same-origin``, so browsers send the full address of
    the portal's own pages and nothing for other sites.
    """
    home = "/operator" if request.url.path.startswith("/operator") else "/"
    referer = urlsplit(request.headers.get("referer", ""))
    if f"{referer.scheme}://{referer.netloc}" != request.app.state.origin:
        return home
    return safe_next_path(referer.path + (f"?{referer.query}" if referer.query else ""), default=home)


def _error_response(
    request: Request, status: int, message: str, *, title: str | None = None, link: tuple[str, str] | None = None
) -> Response:
    if _is_api(request):
        return JSONResponse({"detail": message}, status_code=status)
    return render(request, "error.html", status_code=status, status=status, message=message, title=title, link=link)


class RequestLogMiddleware:
    """Log one line per request: method, path without the query string, status and duration.

    The query string is left out because sign-in and consent callbacks carry codes and state.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            logger.info(
                "request: method=%s path=%s status=%s ms=%.1f",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )
