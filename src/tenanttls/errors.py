"""The exception hierarchy of tenanttls.

Every error that tenanttls raises on purpose derives from `TenantTlsError`, so an
entry point can catch one type, print its message and exit with its `exit_code`.
Errors of libraries (httpx, MSAL, dnspython, SQLAlchemy, acme) are converted at the
component boundary with ``raise ... from``.

    TenantTlsError
    ├── ConfigurationError          settings, credentials or files are missing or invalid
    ├── InvalidInput                a value given by a user or caller is invalid
    │   └── ExportError             a configuration export cannot be read; names file, line, field
    ├── NotFoundError               a tenant, identity or record is not known to tenanttls
    ├── MicrosoftApiError           Microsoft 365 (or the simulator) rejected or failed a call
    │   ├── NotFound                the object is clearly absent (never used for a failed read)
    │   ├── Throttled               429 or "too many concurrent requests"; carries retry_after
    │   ├── PermissionDenied        the token lacks a role or permission
    │   ├── ConsentRequired         admin consent is missing or not yet effective
    │   ├── CredentialError         the app's own credential is wrong (certificate, client id)
    │   ├── InvalidRequest          Microsoft rejected the parameters; carries its text
    │   ├── MicrosoftServiceError   transient faults (5xx, timeouts) that outlived the retries
    │   └── UnexpectedResponse      a response that does not have the documented shape
    ├── PlanSafetyError             the plan would touch something unexpected; an override flag exists
    ├── UpgradeStateError           the requested action does not fit the tenant's upgrade state
    ├── DnsError                    a DNS update or query failed
    ├── CertificateError            issuing, checking or storing a certificate failed
    ├── RelayError                  the relay could not accept or deliver mail
    └── StoreError                  the database failed or has an incompatible schema
"""

from __future__ import annotations


class TenantTlsError(Exception):
    """Root of all errors that tenanttls raises on purpose.

    `exit_code` is the process exit status the CLI uses for this error.
    """

    exit_code = 1


class ConfigurationError(TenantTlsError):
    """Settings, credentials or files are missing or invalid."""

    exit_code = 78  # EX_CONFIG from sysexits.h


class InvalidInput(TenantTlsError):
    """A value given by a user or a caller is invalid; the message names value and fix."""

    exit_code = 2


class NotFoundError(TenantTlsError):
    """A tenant, identity or record is not known to tenanttls."""

    exit_code = 3


class MicrosoftApiError(TenantTlsError):
    """A call to Microsoft 365 (or the simulator) failed.

    `tenant`, `operation` (cmdlet name or HTTP path), `status` and `correlation_id`
    are set when known, so that callers and logs can name the failing request.
    """

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        tenant: str | None = None,
        operation: str | None = None,
        status: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tenant = tenant
        self.operation = operation
        self.status = status
        self.correlation_id = correlation_id


class NotFound(MicrosoftApiError):
    """The object is clearly absent. A timeout or 5xx is never reported as NotFound."""


class Throttled(MicrosoftApiError):
    """Microsoft asked the caller to slow down; `retry_after` is in seconds, or None."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: object) -> None:
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PermissionDenied(MicrosoftApiError):
    """The token lacks a permission or the app lacks an Exchange role in the tenant."""


class ConsentRequired(MicrosoftApiError):
    """The tenant's admin has not consented to the app, or consent is not yet effective.

    `detail` is Microsoft's own error text when the identity platform gave one, for callers
    that add their own next step. `app_unknown` is True when Entra ID did not know the app,
    which a wrong client_id causes as well.
    """

    def __init__(self, message: str, *, detail: str | None = None, app_unknown: bool = False, **context: object) -> None:
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.detail = detail
        self.app_unknown = app_unknown


class CredentialError(MicrosoftApiError):
    """The app's own credential (client id, certificate, key) was rejected."""


class InvalidRequest(MicrosoftApiError):
    """Microsoft rejected the request's parameters; the message carries Microsoft's text."""


class MicrosoftServiceError(MicrosoftApiError):
    """A transient fault (5xx, timeout, network) that outlived the retries and deadline."""


class UnexpectedResponse(MicrosoftApiError):
    """A response without the documented shape (HTML error page, truncated JSON, no `value`)."""


class PlanSafetyError(TenantTlsError):
    """The plan would change something unexpected; the message names the override flag."""

    exit_code = 5


class UpgradeStateError(TenantTlsError):
    """The requested action does not fit the tenant's upgrade state."""

    exit_code = 6


class DnsError(TenantTlsError):
    """A DNS update or query failed."""

    exit_code = 7


class CertificateError(TenantTlsError):
    """Issuing, checking or storing a certificate failed."""

    exit_code = 8


class RelayError(TenantTlsError):
    """The relay could not accept, queue or deliver a message."""

    exit_code = 9


class StoreError(TenantTlsError):
    """The database failed, or its schema is not the one this version expects."""

    exit_code = 10


class ExportError(InvalidInput):
    """A configuration export (ConvertTo-Json or Format-List output) cannot be read.

    `path`, `line` and `field` locate the problem when known, so the message and
    callers can point at it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field
