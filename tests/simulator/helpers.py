"""Small helpers for the simulator tests: HTTPS clients, tokens, InvokeCommand calls and hand-made assertions."""

from __future__ import annotations

import base64
import ssl
import time
import uuid
from typing import Any

import httpx
import jwt

from tenanttls.simulator import Simulator
from tests.fixtures.simulator import EXCHANGE_SCOPE, GRAPH_SCOPE, AppCredentials, token_for


def https_client(simulator: Simulator, **options: Any) -> httpx.Client:
    """Return an httpx client for the simulator that trusts its CA and does not follow redirects."""
    context = ssl.create_default_context(cafile=str(simulator.ca_path))
    return httpx.Client(base_url=simulator.base_url, verify=context, timeout=options.pop("timeout", 10.0), **options)


def access_token(simulator: Simulator, credentials: AppCredentials, tenant: str, scope: str = EXCHANGE_SCOPE) -> str:
    """Return an access token from MSAL, failing the test with MSAL's error when there is none."""
    result = token_for(simulator, credentials, tenant, scope)
    assert "access_token" in result, result
    return result["access_token"]


def graph_token(simulator: Simulator, credentials: AppCredentials, tenant: str) -> str:
    """Return a Graph access token for `tenant`."""
    return access_token(simulator, credentials, tenant, GRAPH_SCOPE)


def invoke(
    client: httpx.Client,
    tenant: str,
    token: str,
    cmdlet: str,
    parameters: dict[str, Any] | None = None,
    *,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """POST one InvokeCommand request and return the response."""
    body: dict[str, Any] = {"CmdletInput": {"CmdletName": cmdlet}}
    if parameters is not None:
        body["CmdletInput"]["Parameters"] = parameters
    return client.post(
        url or f"/adminapi/beta/{tenant}/InvokeCommand",
        json=body,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        params=params,
    )


def error_text(response: httpx.Response) -> str:
    """Return the readable text of an InvokeCommand error: ``details[0].message`` after the second ``|``."""
    return response.json()["error"]["details"][0]["message"].split("|", 2)[2]


def error_type(response: httpx.Response) -> str:
    """Return the exception type of an InvokeCommand error (the middle part of ``details[0].message``)."""
    return response.json()["error"]["details"][0]["message"].split("|")[1]


def thumbprint_header(hex_thumbprint: str) -> str:
    """Return a hex thumbprint in the base64url form of the ``x5t`` header."""
    return base64.urlsafe_b64encode(bytes.fromhex(hex_thumbprint)).decode().rstrip("=")


def make_assertion(
    credentials: AppCredentials,
    audience: str,
    *,
    issuer: str | None = None,
    expires_in: int = 600,
    issued_at: float | None = None,
    key_pem: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """Return a client assertion signed like MSAL signs one (RS256 with x5t); arguments bend one part at a time."""
    now = issued_at if issued_at is not None else time.time()
    claims = {
        "aud": audience,
        "iss": issuer or credentials.client_id,
        "sub": issuer or credentials.client_id,
        "exp": now + expires_in,
        "iat": now,
        "nbf": now,
        "jti": str(uuid.uuid4()),
    }
    header = headers if headers is not None else {"x5t": thumbprint_header(credentials.thumbprint)}
    return jwt.encode(claims, key_pem or credentials.private_key_pem, algorithm="RS256", headers=header)


def token_request(
    client: httpx.Client, tenant: str, credentials: AppCredentials, *, scope: str = EXCHANGE_SCOPE, **overrides: str | None
) -> httpx.Response:
    """POST a client-credentials token request with a valid assertion unless `overrides` replace fields.

    An override of None removes the field.
    """
    audience = f"{str(client.base_url).rstrip('/')}/{tenant}/oauth2/v2.0/token"
    fields: dict[str, str | None] = {
        "grant_type": "client_credentials",
        "client_id": credentials.client_id,
        "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": make_assertion(credentials, audience),
    }
    fields.update(overrides)
    data = {key: value for key, value in fields.items() if value is not None}
    return client.post(f"/{tenant}/oauth2/v2.0/token", data=data)
