"""Web security of the portal: CSRF tokens, security headers, body limits and safe redirects.

* CSRF: each session carries a random token. Every request with an unsafe method
  (POST, PUT, PATCH, DELETE) must echo it, in the ``csrf_token`` form field or the
  ``X-CSRF-Token`` header, and must come from the portal's own origin when the browser
  sends ``Origin``. `csrf_protect` runs as an app-wide dependency, so no route can forget it.
* Headers: a strict Content-Security-Policy with ``frame-ancestors 'none'``, no caching of
  signed-in pages, and no referrer to other sites (callback URLs carry codes and state).
* Redirect targets after sign-in are local paths only, so an attacker cannot build a sign-in
  link that ends on another site.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Iterable

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenanttls.portal.access import SignInRequired

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Every form of the portal is a few short fields; 64 KiB is generous and stops large uploads.
MAX_BODY_BYTES = 64 * 1024

# A local path: one leading slash, no scheme, no backslash, no control characters.
_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def csrf_token(session: dict) -> str:
    """Return the session's CSRF token, creating it on first use."""
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Reject an unsafe request that lacks the session's CSRF token or comes from another origin.

    Raises HTTPException 403 with a message asking the user to reload the page, 415
    for a multipart body (a file upload), and `SignInRequired` without a signed-in session.
    """
    if request.method not in UNSAFE_METHODS:
        return

    _check_origin(request)
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise HTTPException(
            status_code=415,
            detail="File uploads are not accepted. The portal's forms send text fields only, and the API takes JSON.",
        )
    if "user" not in request.session:
        _reject_signed_out(request)
        return
    expected = request.session.get("csrf")
    supplied = request.headers.get(CSRF_HEADER)
    if supplied is None and _is_form(request):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        supplied = value if isinstance(value, str) else None

    if not expected or not supplied or not hmac.compare_digest(str(expected), supplied):
        raise HTTPException(
            status_code=403,
            detail="The form's security token is missing or out of date. Reload the page and try again.",
        )


def _reject_signed_out(request: Request) -> None:
    """Raise `SignInRequired` for an unsafe request without a signed-in session, except sign-out.

    Without a session there is no CSRF token to compare, and the usual cause is a
    session that expired while the page was open, so the page asks the user to sign in again.
    Sign-out has nothing to end then, so it returns and goes on to its redirect.
    """
    if request.url.path != "/sign-out":
        raise SignInRequired()


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith("application/x-www-form-urlencoded")


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = getattr(request.app.state, "origin", None) or f"{request.url.scheme}://{request.url.netloc}"
    if origin != own:
        raise HTTPException(status_code=403, detail=f"Requests from {origin} are not accepted; use the portal's own pages.")


def safe_next_path(value: str | None, default: str = "/") -> str:
    """Return `value` when it is a local path of this site, otherwise `default`.

    ``//evil.example``, ``/\\evil.example``, ``https://…`` and paths with control
    characters are all replaced, so a redirect after sign-in never leaves the portal.
    """
    if not value or len(value) > 512 or not _LOCAL_PATH.match(value):
        return default
    return value


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """Return the CSP header value; `form_targets` are origins a form may redirect to.

    Chromium applies ``form-action`` to the redirects that follow a form submission, so
    the identity platform's origin must be listed for the admin-consent button.
    """
    form_action = " ".join(["'self'", *form_targets])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    )


class SecurityHeadersMiddleware:
    """Add the security headers to every response, and refuse request bodies above the limit."""

    def __init__(self, app: ASGIApp, *, csp: str, https: bool, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            # "same-origin" rather than "no-referrer": under no-referrer Chromium sends
            # "Origin: null" with same-origin form posts, which the origin check rejects.
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_too_large(send, self.max_body_bytes)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(status_code=413, detail=_too_large_text(self.max_body_bytes))
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in self.headers if item[0] not in present)
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large_text(limit: int) -> str:
    return f"The request is larger than {limit // 1024} KiB; shorten the text you entered."


async def _send_too_large(send: Send, limit: int) -> None:
    body = _too_large_text(limit).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
