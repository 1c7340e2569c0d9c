"""`GraphDomainsClient`: Microsoft Graph v1.0 ``/domains`` for one app across many tenants.

Adding a domain takes three calls: ``POST /domains`` with ``{"id": name}``, ``GET
/domains/{name}/verificationDnsRecords`` for the ``MS=`` TXT value to publish, and
``POST /domains/{name}/verify`` once the record is visible in DNS.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar
from urllib.parse import quote

import httpx

from tenanttls.domain.graph import Domain, VerificationDnsRecord
from tenanttls.domain.names import validate_domain_name, validate_tenant
from tenanttls.errors import MicrosoftApiError, UnexpectedResponse
from tenanttls.graph.responses import error_for
from tenanttls.transport.bearer import TokenSource, send_with_token
from tenanttls.transport.http import Transport
from tenanttls.transport.network import require_https
from tenanttls.transport.responses import (
    context_of,
    describe_field_error,
    read_json_object,
    read_next_link,
    read_value_list,
)
from tenanttls.transport.retry import Deadline

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MAX_PAGES = 10_000

T = TypeVar("T")


class GraphDomainsClient:
    """Add, read, verify and delete domains of a tenant through Graph. Thread-safe.

    Every method validates the tenant and the domain name before any request and raises
    `InvalidInput` naming the value. `NotFound` means Graph responded 404 with
    ``Request_ResourceNotFound``; a timeout or a 5xx raises `MicrosoftServiceError`.
    The constructor raises `ConfigurationError` when `base_url` is not an https URL.
    """

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str = "https://graph.microsoft.com",
        transport: Transport | None = None,
        scope: str = GRAPH_SCOPE,
    ) -> None:
        self.tokens = tokens
        self.base_url = require_https("graph_url", base_url)
        self.transport = transport or Transport()
        self.scope = scope

    def add_domain(self, tenant: str, name: str) -> Domain:
        """Add `name` to the tenant, unverified (``POST /domains``); return the new domain."""
        tenant, name = validate_tenant(tenant), validate_domain_name(name)
        response = self._send(tenant, "POST", self.base_url + "/v1.0/domains", idempotent=False, json={"id": name})
        return self._domain(tenant, "POST /v1.0/domains", response)

    def get_domain(self, tenant: str, name: str) -> Domain:
        """Return domain `name` of the tenant; raise `NotFound` when the tenant does not have it."""
        tenant, name = validate_tenant(tenant), validate_domain_name(name)
        path = f"/v1.0/domains/{quote(name)}"
        return self._domain(tenant, f"GET {path}", self._send(tenant, "GET", self.base_url + path, idempotent=True))

    def list_domains(self, tenant: str) -> list[Domain]:
        """Return every domain of the tenant (``GET /domains``, all pages)."""
        tenant = validate_tenant(tenant)
        return self._list(tenant, "/v1.0/domains", Domain.from_graph)

    def list_verification_records(self, tenant: str, name: str) -> list[VerificationDnsRecord]:
        """Return the DNS records that prove ownership of `name` (a Txt ``MS=`` record and an Mx alternative)."""
        tenant, name = validate_tenant(tenant), validate_domain_name(name)
        path = f"/v1.0/domains/{quote(name)}/verificationDnsRecords"
        return self._list(tenant, path, VerificationDnsRecord.from_graph)

    def verify_domain(self, tenant: str, name: str) -> Domain:
        """Ask Graph to check the proof record of `name` (``POST /domains/{name}/verify``); return the domain.

        Graph rejects the call with `InvalidRequest` while the record is not visible to it.
        """
        tenant, name = validate_tenant(tenant), validate_domain_name(name)
        path = f"/v1.0/domains/{quote(name)}/verify"
        response = self._send(tenant, "POST", self.base_url + path, idempotent=False, json={})
        return self._domain(tenant, f"POST {path}", response)

    def delete_domain(self, tenant: str, name: str) -> None:
        """Delete domain `name` from the tenant (``DELETE /domains/{name}``)."""
        tenant, name = validate_tenant(tenant), validate_domain_name(name)
        self._send(tenant, "DELETE", f"{self.base_url}/v1.0/domains/{quote(name)}", idempotent=False)

    def _send(
        self,
        tenant: str,
        method: str,
        url: str,
        *,
        idempotent: bool,
        json: Any = None,
        deadline: Deadline | None = None,
    ) -> httpx.Response:
        """Send one request and return a 2xx response; raise the mapped error otherwise."""
        operation = f"{method} {httpx.URL(url).path}"
        response = send_with_token(
            self.transport,
            self.tokens,
            scope=self.scope,
            method=method,
            url=url,
            tenant=tenant,
            operation=operation,
            idempotent=idempotent,
            headers={"Accept": "application/json"},
            json=json,
            deadline=deadline,
            url_setting="graph_url",
        )
        if 200 <= response.status_code < 300:
            return response

        error = error_for(response, tenant=tenant, operation=operation)
        self._log_failure(error)
        raise error

    def _list(self, tenant: str, path: str, parse: Callable[[dict[str, Any]], T]) -> list[T]:
        """Return every item of a collection, following ``@odata.nextLink`` under one deadline."""
        deadline = self.transport.new_deadline()
        operation = f"GET {path}"
        items: list[T] = []
        seen: set[str] = set()
        next_url: str | None = self.base_url + path

        while next_url is not None:
            if len(seen) >= MAX_PAGES or next_url in seen:
                raise UnexpectedResponse(
                    f"Graph kept returning pages for {operation} in tenant {tenant} ({len(seen)} pages)",
                    tenant=tenant,
                    operation=operation,
                )
            seen.add(next_url)
            response = self._send(tenant, "GET", next_url, idempotent=True, deadline=deadline)
            document = read_json_object(response, tenant=tenant, operation=operation, service="Graph")
            for raw in read_value_list(document, response, tenant=tenant, operation=operation, service="Graph"):
                items.append(self._parse(tenant, operation, response, raw, parse))
            next_url = read_next_link(
                document, response, base_url=self.base_url, tenant=tenant, operation=operation, service="Graph"
            )
        return items

    def _domain(self, tenant: str, operation: str, response: httpx.Response) -> Domain:
        document = read_json_object(response, tenant=tenant, operation=operation, service="Graph")
        return self._parse(tenant, operation, response, document, Domain.from_graph)

    @staticmethod
    def _parse(
        tenant: str, operation: str, response: httpx.Response, raw: dict[str, Any], parse: Callable[[dict[str, Any]], T]
    ) -> T:
        """Build a typed record, turning a missing or malformed field into `UnexpectedResponse`."""
        try:
            return parse(raw)
        except (KeyError, TypeError, ValueError) as error:
            raise UnexpectedResponse(
                f"Graph returned an object {describe_field_error(error)} for {operation} in tenant {tenant}",
                **context_of(response, tenant, operation),
            ) from error

    @staticmethod
    def _log_failure(error: MicrosoftApiError) -> None:
        # DEBUG only: the error is raised, and the caller decides whether it is a failure.
        logger.debug(
            "graph error: tenant=%s operation=%s status=%s error_type=%s client_request_id=%s message=%s",
            error.tenant,
            error.operation,
            error.status,
            type(error).__name__,
            error.correlation_id,
            error,
        )
