"""Network and TLS failures in plain words, and the https check of base URLs.

httpx and requests report a failed connection as a chain of wrapped exceptions, such as
httpx.ConnectError → httpcore.ConnectError → ssl.SSLError, or requests.SSLError →
urllib3.MaxRetryError → urllib3.SSLError → ssl.SSLError. The helpers here find the cause
in that chain, so that messages name it in words, such as "connection refused", instead
of a class name or a library's repr.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from typing import Iterator
from urllib.parse import urlsplit

import httpx

from tenanttls.errors import ConfigurationError

# OpenSSL reasons for a peer that does not speak TLS, such as a plain-HTTP port
# (OpenSSL 3.0 reports WRONG_VERSION_NUMBER when an HTTP response arrives instead of a
# ServerHello).
NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}
)
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH: the certificate is valid but names another host.
HOSTNAME_MISMATCH = 62

_SSL_PREFIX = re.compile(r"^\[[A-Z0-9_]+: ([A-Z0-9_]+)\]\s*")
_SSL_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def require_https(setting: str, url: str) -> str:
    """Return `url` without a trailing slash after checking that it is an absolute https URL.

    The clients send bearer tokens to their base URLs, and plain HTTP would expose them.
    Raises `ConfigurationError` naming `setting`, the value and the fix.
    """
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:
        parts, port_ok = None, False

    if parts is not None and parts.scheme.lower() == "https" and parts.hostname and port_ok:
        return url.rstrip("/")

    if parts is not None and parts.scheme.lower() == "http" and parts.hostname:
        fix = f"use https://{parts.netloc}{parts.path.rstrip('/')}"
    else:
        fix = "use an absolute URL such as https://HOST:PORT"
    raise ConfigurationError(
        f"invalid {setting} {url!r}: expected an https URL, because the clients send access tokens to it; {fix}"
    )


def origin_of(url: str | httpx.URL) -> str:
    """Return ``scheme://host:port`` of `url`, with the port made explicit."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"{parsed.scheme}://{parsed.host}:{port}"


def causes(error: BaseException) -> Iterator[BaseException]:
    """Yield `error` and every exception it wraps, nearest first.

    Follows ``__cause__``, ``__context__``, exceptions passed as arguments (httpcore,
    requests) and urllib3's `reason` attribute.
    """
    seen: set[int] = set()
    queue: list[BaseException] = [error]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current

        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        queue.extend(item for item in wrapped if isinstance(item, BaseException))


def find_ssl_error(error: BaseException) -> ssl.SSLError | None:
    """Return the `ssl.SSLError` that caused `error`, or None when TLS was not the cause."""
    for cause in causes(error):
        if isinstance(cause, ssl.SSLError):
            return cause
    return None


def ssl_reason(error: ssl.SSLError) -> tuple[str, str]:
    """Return OpenSSL's reason code (``WRONG_VERSION_NUMBER``) and its text (``wrong version number``)."""
    text = str(error.args[1]) if len(error.args) > 1 else str(error)
    match = _SSL_PREFIX.match(text)
    code = getattr(error, "reason", None) or (match.group(1) if match else "")
    words = _SSL_SUFFIX.sub("", _SSL_PREFIX.sub("", text)).strip()
    return str(code or ""), words or str(code)


def tls_configuration_error(url: str | httpx.URL, error: ssl.SSLError, *, setting: str) -> ConfigurationError | None:
    """Return the `ConfigurationError` for a TLS failure that a retry cannot fix, or None.

    A certificate that fails verification, and a server that does not speak TLS at all,
    are configuration problems. Other TLS failures (the peer closed the connection during
    the handshake) may be transient, so None is returned for them. `setting` names the
    base URL setting (``exchange_url``) that pointed to `url`.
    """
    origin = origin_of(url)
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or ssl_reason(error)[1]
        if error.verify_code == HOSTNAME_MISMATCH:
            fix = f"check {setting}: the server's certificate does not name this host"
        else:
            fix = "set microsoft_ca_bundle to the CA that signed it"
        return ConfigurationError(f"TLS certificate verification failed for {origin}: {reason}; {fix}")

    code, words = ssl_reason(error)
    if code in NOT_TLS_REASONS:
        return ConfigurationError(
            f"{origin} did not respond with TLS ({words}); check {setting}: it must point to an HTTPS port"
        )
    return None


def describe_network_error(error: BaseException) -> str:
    """Return the cause of a failed request in plain words, such as ``connection refused``."""
    timeouts = {
        httpx.ConnectTimeout: "the connection timed out",
        httpx.ReadTimeout: "timed out waiting for the response",
        httpx.WriteTimeout: "timed out sending the request",
        httpx.PoolTimeout: "timed out waiting for a free connection",
    }
    for kind, words in timeouts.items():
        if isinstance(error, kind):
            return words
    if isinstance(error, httpx.RemoteProtocolError):
        return _protocol_error_words(error)

    for cause in causes(error):
        words = _os_error_words(cause)
        if words:
            return words
    return f"a network error ({_short(error)})"


def _protocol_error_words(error: httpx.RemoteProtocolError) -> str:
    if "without sending" in str(error) or "disconnected" in str(error).lower():
        return "the connection closed unexpectedly"
    return f"the server's response was not valid HTTP ({_short(error)})"


def _os_error_words(cause: BaseException) -> str | None:
    """Return words for one low-level cause, or None when it is not one of the known kinds."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({cause.verify_message or ssl_reason(cause)[1]})"
    if isinstance(cause, ssl.SSLError):
        return f"the TLS handshake failed ({ssl_reason(cause)[1]})"
    if isinstance(cause, http.client.RemoteDisconnected):
        return "the connection closed unexpectedly"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "the connection was reset"
    if isinstance(cause, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror[:1].lower() + cause.strerror[1:]
    return None


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
