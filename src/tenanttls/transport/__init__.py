"""The HTTP policy shared by the Microsoft clients: timeouts, retries with backoff and jitter,
`Retry-After` under a deadline, a concurrency limit per tenant and a global token bucket."""

from __future__ import annotations

from tenanttls.transport.bearer import TokenSource, send_with_token
from tenanttls.transport.http import Transport, TransportStats
from tenanttls.transport.limits import TenantLimiter, TokenBucket
from tenanttls.transport.policy import TransportPolicy
from tenanttls.transport.retry import Deadline, backoff_delay, parse_retry_after

__all__ = [
    "Deadline",
    "TenantLimiter",
    "TokenBucket",
    "TokenSource",
    "Transport",
    "TransportPolicy",
    "TransportStats",
    "backoff_delay",
    "parse_retry_after",
    "send_with_token",
]
