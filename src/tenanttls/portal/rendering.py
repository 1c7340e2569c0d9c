"""Page rendering: the Jinja2 environment, `render` and one-time messages (`flash`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from tenanttls import __version__
from tenanttls.portal.access import current_principal
from tenanttls.portal.security import csrf_token

TEMPLATES_DIR = Path(__file__).parent / "templates"


def create_templates() -> Jinja2Templates:
    """Return the template environment (autoescaping on, as Jinja2Templates sets it for .html)."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals["csrf_token"] = lambda request: csrf_token(request.session)
    templates.env.globals["version"] = __version__
    templates.env.filters["when"] = format_time
    return templates


def format_time(value: datetime | None) -> str:
    """Return a timestamp as ``YYYY-MM-DD HH:MM UTC``, or an empty string."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M UTC")


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render `template` with the signed-in user and the pending one-time messages."""
    flashes = request.session.pop("flash", [])
    return request.app.state.templates.TemplateResponse(
        request,
        template,
        {"principal": current_principal(request), "flashes": flashes, **values},
        status_code=status_code,
    )


def flash(request: Request, kind: str, text: str) -> None:
    """Queue a message for the next page; `kind` is ``ok`` or ``error``."""
    request.session["flash"] = [*request.session.get("flash", []), {"kind": kind, "text": text}]
