"""Reading JSON bodies of Microsoft responses without trusting their shape."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tenanttls.errors import UnexpectedResponse

SNIPPET_LENGTH = 120


def body_snippet(response: httpx.Response) -> str:
    """Return the start of the body on one line, for error messages."""
    text = response.text[:SNIPPET_LENGTH].replace("\r", " ").replace("\n", " ").strip()
    if len(response.text) > SNIPPET_LENGTH:
        text += "..."
    return repr(text) if text else "an empty body"


def with_next_step(message: str, step: str) -> str:
    """Return `message` followed by `step`: as a new sentence after a full stop, else after a semicolon.

    Microsoft's texts often end in a full stop, and ".;" would read as a typo.
    """
    message = message.rstrip()
    if message.endswith((".", "!", "?")):
        return f"{message} {step[:1].upper()}{step[1:]}"
    return f"{message}; {step}"


def describe_field_error(error: Exception) -> str:
    """Return what a record parser found wrong: a missing field (KeyError) or a value of another type."""
    if isinstance(error, KeyError) and error.args:
        return f"without the {error.args[0]!r} field"
    return f"with a field of an unexpected type or value ({error})"


def context_of(response: httpx.Response, tenant: str, operation: str) -> dict[str, Any]:
    """Return the keyword arguments that name a failed request in a `MicrosoftApiError`."""
    return {
        "tenant": tenant,
        "operation": operation,
        "status": response.status_code,
        "correlation_id": response.request.headers.get("client-request-id"),
    }


def try_json_object(response: httpx.Response) -> dict[str, Any] | None:
    """Return the body as a JSON object, or None when it is empty, not JSON or not an object."""
    try:
        document = json.loads(response.content)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def read_json_object(response: httpx.Response, *, tenant: str, operation: str, service: str) -> dict[str, Any]:
    """Return the body as a JSON object.

    Raises `UnexpectedResponse` for an HTML page, truncated or invalid JSON, or JSON that
    is not an object. `service` names the API in the message ("Exchange", "Graph").
    """
    document = try_json_object(response)
    if document is None:
        content_type = response.headers.get("Content-Type", "no Content-Type")
        raise UnexpectedResponse(
            f"{service} returned HTTP {response.status_code} with a body that is not a JSON object "
            f"({content_type}: {body_snippet(response)}) for {operation} in tenant {tenant}; "
            "check the base URL, or retry if the service was failing",
            **context_of(response, tenant, operation),
        )
    return document


def read_value_list(document: dict[str, Any], response: httpx.Response, *, tenant: str, operation: str, service: str) -> list[dict[str, Any]]:
    """Return the OData `value` array of objects, or raise `UnexpectedResponse` when it is missing or malformed."""
    value = document.get("value")
    found = _value_problem(value)
    if found is not None:
        raise UnexpectedResponse(
            f"{service} returned HTTP {response.status_code} with {found} for {operation} in tenant "
            f"{tenant}; expected an OData collection, a 'value' array of objects",
            **context_of(response, tenant, operation),
        )
    return value


def _value_problem(value: Any) -> str | None:
    """Return what is wrong with an OData `value`, or None when it is an array of objects."""
    if value is None:
        return "no 'value'"
    if not isinstance(value, list):
        return f"a 'value' of type {type(value).__name__}"
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            return f"a 'value' array whose item {index} is a {type(item).__name__}, not an object"
    return None


def read_next_link(
    document: dict[str, Any], response: httpx.Response, *, base_url: str, tenant: str, operation: str, service: str
) -> str | None:
    """Return the `@odata.nextLink` of a page, or None on the last page.

    The link must point to the same scheme, host and port as `base_url`, because the
    next request carries the bearer token. Raises `UnexpectedResponse` otherwise.
    """
    link = document.get("@odata.nextLink")
    if link is None:
        return None

    base = httpx.URL(base_url)
    target = httpx.URL(link) if isinstance(link, str) else None
    if target is None or (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
        raise UnexpectedResponse(
            f"{service} returned an @odata.nextLink {str(link)[:SNIPPET_LENGTH]!r} for {operation} in tenant "
            f"{tenant} that does not point to {base_url}; the listing was stopped so the token stays there",
            **context_of(response, tenant, operation),
        )
    return link
