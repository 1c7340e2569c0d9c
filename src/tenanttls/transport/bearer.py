"""Requests with a bearer token, refreshed once when the API rejects it with 401."""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Protocol

import httpx

from tenanttls.transport.http import Transport
from tenanttls.transport.retry import Deadline

logger = logging.getLogger(__name__)


class TokenSource(Protocol):
    """The token interface the clients use; `tenanttls.identity.tokens.TokenProvider` implements it."""

    def get_token(self, tenant: str, scope: str) -> str:
        """Return an access token for `scope` in `tenant`, from the cache when still valid."""
        ...

    def invalidate(self, tenant: str, scope: str) -> None:
        """Drop the cached token for `scope` in `tenant`, so the next `get_token` gets a new one."""
        ...


def send_with_token(
    transport: Transport,
    tokens: TokenSource,
    *,
    scope: str,
    method: str,
    url: str,
    tenant: str,
    operation: str,
    idempotent: bool,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    deadline: Deadline | None = None,
    request_id: str | None = None,
    is_throttled: Callable[[httpx.Response], bool] | None = None,
    url_setting: str = "the base URL",
) -> httpx.Response:
    """Send through `transport` with ``Authorization: Bearer``; on 401 get a new token and send once more.

    A cached token can be rejected before it expires (revoked consent, a clock that
    moved). Any response of the second attempt, a 401 included, is returned to the
    caller, which maps it to an error. The token never reaches a log. `url_setting` names
    the setting that gave `url`, for configuration errors.
    """
    for attempt in (1, 2):
        token = tokens.get_token(tenant, scope)
        response = transport.send(
            method,
            url,
            tenant=tenant,
            operation=operation,
            idempotent=idempotent,
            headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            json=json,
            deadline=deadline,
            request_id=request_id,
            is_throttled=is_throttled,
            url_setting=url_setting,
        )
        if response.status_code != 401 or attempt == 2:
            return response

        logger.warning(
            "token rejected, getting a new one: tenant=%s operation=%s scope=%s client_request_id=%s",
            tenant,
            operation,
            scope,
            response.request.headers.get("client-request-id"),
        )
        tokens.invalidate(tenant, scope)
    raise AssertionError("unreachable")
