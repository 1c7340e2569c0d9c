"""`ExchangeClient`: Exchange Online cmdlets through the admin API's ``InvokeCommand``.

``POST {base}/adminapi/beta/{tenant}/InvokeCommand`` with ``{"CmdletInput":
{"CmdletName": ..., "Parameters": {...}}}`` runs one cmdlet, the way the Exchange Online
PowerShell module (V3) does. Microsoft does not document or support this endpoint;
the request form follows the module and open-source clients that use it (CIPP,
ExoHelper).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from tenanttls.domain.exchange import AcceptedDomain, ConnectorSettings, InboundConnector
from tenanttls.domain.names import validate_connector_name, validate_tenant
from tenanttls.errors import InvalidInput, MicrosoftApiError, UnexpectedResponse
from tenanttls.exchange.parameters import (
    validate_cmdlet_name,
    validate_connector_parameters,
    validate_connector_settings,
    validate_parameters,
)
from tenanttls.exchange.responses import InvokeResult, error_for, is_concurrency_throttled, read_warnings
from tenanttls.transport.bearer import TokenSource, send_with_token
from tenanttls.transport.http import Transport
from tenanttls.transport.network import require_https
from tenanttls.transport.responses import describe_field_error, read_json_object, read_next_link, read_value_list
from tenanttls.transport.retry import Deadline

logger = logging.getLogger(__name__)

EXCHANGE_SCOPE = "https://outlook.office365.com/.default"
# The system mailbox that routes app-only admin API requests to the tenant's servers.
ANCHOR_MAILBOX = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@"
DEFAULT_PAGE_SIZE = 1000
# A listing that pages more often than this is stopped as a server fault.
MAX_PAGES = 10_000


class ExchangeClient:
    """Typed Exchange Online cmdlets for one app, across many tenants. Thread-safe.

    Every method validates its input before any request and raises `InvalidInput`
    naming the value. Failures raise subclasses of `MicrosoftApiError`: `NotFound` only
    when Exchange reports ManagementObjectNotFoundException, never for a timeout or a 5xx.
    The constructor raises `ConfigurationError` when `base_url` is not an https URL.
    """

    def __init__(
        self,
        tokens: TokenSource,
        *,
        base_url: str = "https://outlook.office365.com",
        transport: Transport | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        scope: str = EXCHANGE_SCOPE,
    ) -> None:
        if page_size < 1:
            raise InvalidInput(f"invalid Exchange page size {page_size}: use 1 or more")
        self.tokens = tokens
        self.base_url = require_https("exchange_url", base_url)
        self.transport = transport or Transport()
        self.page_size = page_size
        self.scope = scope

    def invoke(
        self,
        tenant: str,
        cmdlet: str,
        parameters: Mapping[str, Any] | None = None,
        select: list[str] | tuple[str, ...] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> InvokeResult:
        """Run `cmdlet` with `parameters` in `tenant` and return every page's objects and warnings.

        `select` limits the returned properties (``$select``). `idempotent` sets whether
        a request whose outcome is unknown (read timeout, 504) may be sent again; it
        defaults to True for ``Get-`` cmdlets only.
        """
        tenant = validate_tenant(tenant)
        cmdlet = validate_cmdlet_name(cmdlet)
        checked = validate_parameters(parameters)
        if select is not None:
            validate_parameters({name: True for name in select})
        return self._invoke(tenant, cmdlet, checked, select, idempotent)

    def _invoke(
        self,
        tenant: str,
        cmdlet: str,
        parameters: dict[str, Any],
        select: list[str] | tuple[str, ...] | None,
        idempotent: bool | None,
    ) -> InvokeResult:
        """Send one cmdlet with validated input, following ``@odata.nextLink`` under one deadline."""
        if idempotent is None:
            idempotent = cmdlet.startswith("Get-")
        url = f"{self.base_url}/adminapi/beta/{tenant}/InvokeCommand"
        if select:
            url += "?$select=" + ",".join(select)
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}

        deadline = self.transport.new_deadline()
        values: list[dict[str, Any]] = []
        warnings: list[str] = []
        seen: set[str] = set()
        next_url: str | None = url

        while next_url is not None:
            if len(seen) >= MAX_PAGES or next_url in seen:
                raise UnexpectedResponse(
                    f"Exchange kept returning pages for {cmdlet} in tenant {tenant} "
                    f"({len(seen)} pages, a link repeated or the {MAX_PAGES}-page limit was reached)",
                    tenant=tenant,
                    operation=cmdlet,
                )
            seen.add(next_url)
            page, page_warnings, next_url = self._page(tenant, cmdlet, next_url, body, idempotent, deadline)
            values.extend(page)
            warnings.extend(w for w in page_warnings if w not in warnings)

        for warning in warnings:
            logger.debug("exchange warning: tenant=%s cmdlet=%s warning=%s", tenant, cmdlet, warning)
        return InvokeResult(values=values, warnings=warnings)

    def _page(
        self, tenant: str, cmdlet: str, url: str, body: dict[str, Any], idempotent: bool, deadline: Deadline
    ) -> tuple[list[dict[str, Any]], list[str], str | None]:
        """Send one page's request; return its objects, its warnings and the next page's URL."""
        response = send_with_token(
            self.transport,
            self.tokens,
            scope=self.scope,
            method="POST",
            url=url,
            tenant=tenant,
            operation=cmdlet,
            idempotent=idempotent,
            headers=self._headers(tenant, cmdlet),
            json=body,
            deadline=deadline,
            is_throttled=is_concurrency_throttled,
            url_setting="exchange_url",
        )
        if not 200 <= response.status_code < 300:
            raise self._failed(error_for(response, tenant=tenant, cmdlet=cmdlet))

        document = read_json_object(response, tenant=tenant, operation=cmdlet, service="Exchange")
        values = read_value_list(document, response, tenant=tenant, operation=cmdlet, service="Exchange")
        next_url = read_next_link(
            document, response, base_url=self.base_url, tenant=tenant, operation=cmdlet, service="Exchange"
        )
        return values, read_warnings(document, response), next_url

    def _headers(self, tenant: str, cmdlet: str) -> dict[str, str]:
        return {
            "Accept": "application/json",
            "Prefer": f"odata.maxpagesize={self.page_size}",
            "X-AnchorMailbox": ANCHOR_MAILBOX + tenant,
            "X-CmdletName": cmdlet,
            "X-ResponseFormat": "json",
        }

    @staticmethod
    def _failed(error: MicrosoftApiError) -> MicrosoftApiError:
        """Log a cmdlet error at DEBUG and return it for the caller to raise.

        The caller decides whether the error is a failure (a NotFound often is the expected
        result), so the client does not log it as one.
        """
        logger.debug(
            "exchange error: tenant=%s cmdlet=%s status=%s error_type=%s client_request_id=%s message=%s",
            error.tenant,
            error.operation,
            error.status,
            type(error).__name__,
            error.correlation_id,
            error,
        )
        return error

    def get_inbound_connectors(self, tenant: str) -> list[InboundConnector]:
        """Return every inbound connector of `tenant` (Get-InboundConnector)."""
        result = self.invoke(tenant, "Get-InboundConnector")
        return [self._connector(tenant, raw) for raw in result.values]

    def get_inbound_connector(self, tenant: str, identity: str) -> InboundConnector:
        """Return the inbound connector named `identity` (a name or GUID).

        Raises `NotFound` only when Exchange reports that the connector does not exist.
        """
        identity = validate_connector_name(identity)
        result = self.invoke(tenant, "Get-InboundConnector", {"Identity": identity})
        if len(result.values) != 1:
            raise UnexpectedResponse(
                f"Exchange returned {len(result.values)} connectors for Get-InboundConnector -Identity "
                f"{identity!r} in tenant {tenant} and no error; expected exactly one",
                tenant=tenant,
                operation="Get-InboundConnector",
            )
        return self._connector(tenant, result.values[0])

    def new_inbound_connector(self, tenant: str, settings: ConnectorSettings) -> InvokeResult:
        """Create an inbound connector (New-InboundConnector) and return Exchange's result.

        Read `warnings`: Exchange may create the connector disabled ("created in a
        disabled state") and still succeed.
        """
        tenant = validate_tenant(tenant)
        parameters = validate_connector_settings(settings)
        return self._invoke(tenant, "New-InboundConnector", parameters, None, False)

    def set_inbound_connector(self, tenant: str, identity: str, parameters: Mapping[str, Any]) -> InvokeResult:
        """Change connector `identity` (Set-InboundConnector); rename with ``{"Name": new_name}``."""
        tenant = validate_tenant(tenant)
        identity = validate_connector_name(identity)
        checked = validate_connector_parameters(parameters)
        return self._invoke(tenant, "Set-InboundConnector", {"Identity": identity, **checked}, None, False)

    def remove_inbound_connector(self, tenant: str, identity: str) -> None:
        """Delete connector `identity` (Remove-InboundConnector -Confirm:$false)."""
        tenant = validate_tenant(tenant)
        identity = validate_connector_name(identity)
        self._invoke(tenant, "Remove-InboundConnector", {"Identity": identity, "Confirm": False}, None, False)

    def get_accepted_domains(self, tenant: str) -> list[AcceptedDomain]:
        """Return every accepted domain of `tenant` (Get-AcceptedDomain -ResultSize Unlimited).

        Without ResultSize the cmdlet returns at most 1000 domains, its documented default.
        """
        result = self.invoke(tenant, "Get-AcceptedDomain", {"ResultSize": "Unlimited"})
        return [self._accepted_domain(tenant, raw) for raw in result.values]

    @staticmethod
    def _connector(tenant: str, raw: dict[str, Any]) -> InboundConnector:
        try:
            return InboundConnector.from_exchange(raw)
        except (KeyError, TypeError, AttributeError) as error:
            raise UnexpectedResponse(
                f"Exchange returned an inbound connector {describe_field_error(error)} in tenant {tenant}",
                tenant=tenant,
                operation="Get-InboundConnector",
            ) from error

    @staticmethod
    def _accepted_domain(tenant: str, raw: dict[str, Any]) -> AcceptedDomain:
        try:
            return AcceptedDomain.from_exchange(raw)
        except (KeyError, TypeError, AttributeError) as error:
            raise UnexpectedResponse(
                f"Exchange returned an accepted domain {describe_field_error(error)} in tenant {tenant}",
                tenant=tenant,
                operation="Get-AcceptedDomain",
            ) from error
