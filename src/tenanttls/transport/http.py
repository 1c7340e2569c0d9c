"""`Transport`: one `httpx.Client` with the retry, deadline and rate-limit policy.

The Exchange and Graph clients send every request through one `Transport`, so the
per-tenant concurrency limit and the global request budget cover both APIs.

A request is retried only when a retry cannot do harm:

- 429, 503 and 408 responses, a refused connection and a connect timeout mean the
  server did not process the request, so every request may be retried.
- 504, a read timeout and a dropped connection leave the outcome unknown. Only
  requests the caller marks `idempotent` are retried. For others, the error message
  tells the caller to read the object's state before trying again.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

from tenanttls.clock import Clock, SystemClock
from tenanttls.errors import ConfigurationError, MicrosoftApiError, MicrosoftServiceError, Throttled
from tenanttls.metrics import MICROSOFT_REQUESTS, MICROSOFT_RETRIES, attempt_outcome
from tenanttls.transport.limits import TenantLimiter, TokenBucket
from tenanttls.transport.network import (
    describe_network_error,
    find_ssl_error,
    origin_of,
    ssl_reason,
    tls_configuration_error,
)
from tenanttls.transport.policy import TransportPolicy
from tenanttls.transport.retry import Deadline, backoff_delay, parse_retry_after

logger = logging.getLogger(__name__)

# Statuses after which the server did not process the request, so any request may be retried.
NOT_PROCESSED_STATUSES = frozenset({408, 429, 503})
# Statuses after which the request may have been processed; only idempotent requests are retried.
OUTCOME_UNKNOWN_STATUSES = frozenset({504})

_NOT_PROCESSED_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_OUTCOME_UNKNOWN_ERRORS = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def ssl_verification(verify: bool | str | Path | ssl.SSLContext) -> bool | ssl.SSLContext:
    """Return httpx's `verify` for True, False, a CA bundle path or an `ssl.SSLContext`."""
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    path = Path(verify)
    if not path.is_file():
        raise ConfigurationError(f"CA bundle not found: {path}; give the path of a PEM file or use the system store")
    try:
        return ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as error:
        raise ConfigurationError(
            f"invalid CA bundle {path}: {ssl_reason(error)[1]}; give a file of PEM CA certificates"
        ) from error


@dataclass
class TransportStats:
    """Counters since the transport was created (read them through `Transport.stats()`)."""

    requests: int = 0  # HTTP attempts sent, retries and attempts that ended in a network error included
    retries: int = 0  # attempts repeated after a wait
    # Errors the transport raised itself (retries or deadline used up, client-side limits). Responses
    # it returns, 4xx and 5xx included, are not counted: the client decides what they mean.
    failures: int = 0
    network_seconds: float = 0.0  # time between sending each request and reading its response


@dataclass
class _Attempt:
    """The result of one attempt: a response, or the httpx error that replaced it."""

    response: httpx.Response | None = None
    error: httpx.HTTPError | None = None
    throttled: bool = False
    origin: str = ""  # scheme://host:port of the request, named when `error` is set

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def describe(self) -> str:
        """Return the outcome in words: ``HTTP 503`` or ``connection refused (https://host:443)``."""
        if self.response is not None:
            return f"HTTP {self.response.status_code}" + (" (throttled)" if self.throttled else "")
        return f"{describe_network_error(self.error)} ({self.origin})" if self.error else "no response"

    def not_processed(self) -> bool:
        """Return True when the server certainly did not act on the request."""
        if self.throttled or self.status in NOT_PROCESSED_STATUSES:
            return True
        return isinstance(self.error, _NOT_PROCESSED_ERRORS)

    def outcome_unknown(self) -> bool:
        """Return True when the request failed in a way that may have left it processed."""
        return self.status in OUTCOME_UNKNOWN_STATUSES or isinstance(self.error, _OUTCOME_UNKNOWN_ERRORS)


class Transport:
    """Send HTTP requests to Microsoft 365 under one `TransportPolicy`. Thread-safe.

    `clock` supplies the current time for `Retry-After` dates and the sleeps between
    retries. A `ManualClock` makes those sleeps return at once (tests).
    """

    def __init__(
        self,
        policy: TransportPolicy | None = None,
        *,
        verify: bool | str | Path | ssl.SSLContext = True,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or TransportPolicy()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            verify=ssl_verification(verify),
            timeout=httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )
        self.bucket = TokenBucket(self.policy.requests_per_second, self.policy.burst)
        self.tenants = TenantLimiter(self.policy.tenant_concurrency)
        self._stats = TransportStats()
        self._stats_lock = threading.Lock()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def new_deadline(self) -> Deadline:
        """Return a deadline of the policy's length that starts now."""
        return Deadline(self.policy.deadline)

    def stats(self) -> TransportStats:
        """Return a copy of the counters."""
        with self._stats_lock:
            return TransportStats(**vars(self._stats))

    def _count(self, **increments: float) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    def send(
        self,
        method: str,
        url: str,
        *,
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
        """Send a request, retrying under the policy, and return the final response.

        Every response that is not retried is returned as it is, errors included, for the
        caller to interpret. `request_id` is sent as ``client-request-id`` on every attempt
        (a new UUID when not given). `is_throttled` marks other responses as throttling,
        such as Exchange's "maximum number of concurrent requests per tenant".
        `url_setting` names the setting that gave the URL (``exchange_url``) in
        configuration errors.

        Raises:
            Throttled: Microsoft still throttled the request when the attempts or the
                deadline ran out, or the client-side limits could not be met in time.
            MicrosoftServiceError: 503, 504, timeouts or network errors outlived the
                retries, or the outcome of a non-idempotent request is unknown.
            ConfigurationError: the server's TLS certificate failed verification, or the
                server does not speak TLS. Neither is retried.
        """
        deadline = deadline or self.new_deadline()
        request_id = request_id or str(uuid.uuid4())
        headers = {**(headers or {}), "client-request-id": request_id, "return-client-request-id": "true"}
        context = {"tenant": tenant, "operation": operation, "correlation_id": request_id}

        attempt = 0
        while True:
            attempt += 1
            if deadline.expired():
                raise self._fail(
                    MicrosoftServiceError(
                        f"{operation} for tenant {tenant} ran out of its {deadline.seconds:g}s deadline "
                        f"before attempt {attempt}; retry the operation later",
                        **context,
                    ),
                    attempt - 1,
                )

            try:
                result = self._attempt(
                    method, url, headers, json, deadline, tenant, operation, is_throttled, url_setting
                )
            except Throttled as error:  # a client-side limit could not be met before the deadline
                error.correlation_id = request_id
                raise self._fail(error, attempt - 1) from None
            outcome = attempt_outcome(result.status, throttled=result.throttled)
            MICROSOFT_REQUESTS.labels(outcome=outcome).inc()
            if result.response is not None and not (result.not_processed() or result.outcome_unknown()):
                return result.response

            delay = self._retry_delay(result, attempt)
            retryable = result.not_processed() or (idempotent and result.outcome_unknown())
            if not retryable or attempt >= self.policy.max_attempts or delay > deadline.remaining():
                raise self._fail(self._final_error(result, attempt, idempotent, deadline, context), attempt)

            logger.warning(
                "request retry: tenant=%s operation=%s attempt=%d reason=%s delay=%.2fs client_request_id=%s",
                tenant,
                operation,
                attempt,
                result.describe(),
                delay,
                request_id,
            )
            self._count(retries=1)
            MICROSOFT_RETRIES.labels(outcome=outcome).inc()
            self._sleep(delay, deadline)

    def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        json: Any,
        deadline: Deadline,
        tenant: str,
        operation: str,
        is_throttled: Callable[[httpx.Response], bool] | None,
        url_setting: str,
    ) -> _Attempt:
        """Send one attempt inside the tenant's slot and the global budget."""
        with self.tenants.slot(tenant, deadline, operation=operation):
            self.bucket.acquire(deadline, tenant=tenant, operation=operation)
            remaining = max(deadline.remaining(), 0.001)
            timeout = httpx.Timeout(
                connect=min(self.policy.connect_timeout, remaining),
                read=min(self.policy.read_timeout, remaining),
                write=min(self.policy.read_timeout, remaining),
                pool=min(self.policy.connect_timeout, remaining),
            )
            self._count(requests=1)
            try:
                response = self._client.request(method, url, headers=headers, json=json, timeout=timeout)
            except httpx.ConnectError as error:
                ssl_error = find_ssl_error(error)
                if ssl_error is not None:
                    configuration_error = tls_configuration_error(url, ssl_error, setting=url_setting)
                    if configuration_error is not None:
                        raise configuration_error from error
                return _Attempt(error=error, origin=origin_of(url))
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
                return _Attempt(error=error, origin=origin_of(url))

        self._count(network_seconds=response.elapsed.total_seconds())
        throttled = response.status_code == 429 or bool(is_throttled and is_throttled(response))
        return _Attempt(response=response, throttled=throttled)

    def _retry_after(self, result: _Attempt) -> float | None:
        if result.response is None:
            return None
        return parse_retry_after(result.response.headers.get("Retry-After"), now=self._clock.now())

    def _retry_delay(self, result: _Attempt, attempt: int) -> float:
        """Return the wait before the next attempt: `Retry-After` when given, else backoff."""
        retry_after = self._retry_after(result)
        if retry_after is not None:
            return retry_after
        return backoff_delay(attempt, base=self.policy.backoff_base, cap=self.policy.backoff_cap, rng=self._rng)

    def _sleep(self, seconds: float, deadline: Deadline) -> None:
        """Sleep on the clock; count sleep time that a test clock skipped against the deadline."""
        started = deadline.elapsed()
        self._clock.sleep(seconds)
        deadline.add_skipped(seconds - (deadline.elapsed() - started))

    def _final_error(
        self, result: _Attempt, attempts: int, idempotent: bool, deadline: Deadline, context: dict[str, Any]
    ) -> MicrosoftApiError:
        """Return the error for a request that will not be retried again."""
        tenant, operation = context["tenant"], context["operation"]
        where = f"{operation} for tenant {tenant} failed after {attempts} attempt(s)"
        reason = result.describe()
        retry_after = self._retry_after(result)

        if result.throttled or (result.status == 503 and retry_after is not None):
            wait = f", and Microsoft asked to wait {retry_after:g}s" if retry_after is not None else ""
            return Throttled(
                f"{where}: {reason}{wait}; retry the operation later",
                retry_after=retry_after,
                status=result.status,
                **context,
            )
        if result.outcome_unknown() and not idempotent:
            return MicrosoftServiceError(
                f"{where}: {reason}. The request may have been applied, so read the object's current state "
                "before trying again",
                status=result.status,
                **context,
            )
        return MicrosoftServiceError(
            f"{where} within the {deadline.seconds:g}s deadline: {reason}; retry the operation later",
            status=result.status,
            **context,
        )

    def _fail(self, error: MicrosoftApiError, attempts: int) -> MicrosoftApiError:
        """Log a final failure and count it; return the error for the caller to raise."""
        logger.error(
            "request failed: tenant=%s operation=%s attempts=%d error=%s client_request_id=%s",
            error.tenant,
            error.operation,
            attempts,
            error,
            error.correlation_id,
        )
        self._count(failures=1)
        return error
