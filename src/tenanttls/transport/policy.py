"""The settings of the HTTP policy that the Microsoft clients share."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from tenanttls.errors import ConfigurationError


@dataclass(frozen=True)
class TransportPolicy:
    """Timeouts, retries and rate limits for calls to Microsoft 365.

    Times are in seconds. Microsoft documents no limit for the Exchange admin API, so the
    concurrency and rate defaults are estimates, chosen far below the limits that are
    documented:

    - Microsoft Graph allows 130,000 requests per 10 seconds per app across all tenants
      (learn.microsoft.com/graph/throttling-limits, checked 2026).
    - Exchange Online remote PowerShell allowed 3 concurrent connections per account,
      as a Microsoft365DSC maintainer wrote (github.com/microsoft/microsoft365dsc/issues/135).
      The REST admin API rejects extra requests with "maximum number of concurrent
      requests per tenant" but does not state the number.
    - REST cmdlets of the Exchange Online module time out after 15 minutes
      (learn.microsoft.com/powershell/exchange/exchange-online-powershell-v2).
    """

    connect_timeout: float = 10.0
    # NOTE: estimate. A minute is far longer than a connector cmdlet should take and far
    # shorter than the 15-minute limit of REST cmdlets.
    read_timeout: float = 60.0
    # Total time for one client method, retries and waits included. A listing that pages
    # shares one deadline across its pages.
    deadline: float = 180.0
    max_attempts: int = 6
    # Full-jitter exponential backoff: attempt n waits a random time in [0, min(cap, base * 2**(n-1))].
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    # NOTE: estimate, see the class docstring.
    tenant_concurrency: int = 3
    # Global token bucket: sustained requests per second and the burst allowed at once.
    # NOTE: estimate, see the class docstring.
    requests_per_second: float = 20.0
    burst: int = 20

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "deadline", "backoff_cap", "requests_per_second"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"invalid transport {name}={getattr(self, name)!r}: use a positive number")
        if self.backoff_base < 0:
            raise ConfigurationError(f"invalid transport backoff_base={self.backoff_base!r}: use 0 or more")
        for name in ("max_attempts", "tenant_concurrency", "burst"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"invalid transport {name}={getattr(self, name)!r}: use 1 or more")

    @classmethod
    def from_options(cls, options: "TransportPolicy | Mapping[str, Any] | None") -> "TransportPolicy":
        """Return a policy from a policy, a mapping of field names to values, or None (the defaults)."""
        if options is None:
            return cls()
        if isinstance(options, TransportPolicy):
            return options

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown transport option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}"
            )
        return replace(cls(), **dict(options))
