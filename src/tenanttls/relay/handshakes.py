"""Logging of failed STARTTLS handshakes: one WARNING line per peer address, repeats counted.

aiosmtpd logs a failed handshake as a session exception with two chained tracebacks,
once per connection. A client that does not trust the relay's certificate retries
often, so the relay logs the first failure of each peer address, then at most one
line per `interval` seconds with the number of failures since the last line.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Callable

logger = logging.getLogger(__name__)

# Seconds between two log lines about the same peer address.
DEFAULT_INTERVAL = 60.0
# Peer addresses remembered at most; the oldest is forgotten first.
_MAX_TRACKED = 10_000
# TLS alerts (RFC 8446 section 6.2) that a client sends when it rejects the server's certificate.
_UNTRUSTED_ALERTS = {"unknown_ca", "bad_certificate", "certificate_unknown", "certificate_expired"}


def handshake_failure_reason(error: BaseException | None) -> str:
    """Describe why a server-side TLS handshake failed, in words an operator can act on."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"client certificate failed verification: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        if reason.startswith("TLSV1_ALERT_") or reason.startswith("SSLV3_ALERT_"):
            alert = reason.split("_ALERT_", 1)[1].lower()
            text = f"the client ended the handshake with TLS alert {alert}"
            if alert in _UNTRUSTED_ALERTS:
                text += "; it does not trust the server certificate or its CA"
            return text
        return reason.lower().replace("_", " ") or str(error)
    if isinstance(error, (ConnectionError, EOFError)):
        return "the client closed the connection during the handshake"
    if error is None:
        return "unknown reason"
    return f"{error.__class__.__name__}: {error}"


class HandshakeFailures:
    """Count failed handshakes per peer address and log them rate-limited. Use it from one event loop."""

    def __init__(self, prefix: str, *, interval: float = DEFAULT_INTERVAL, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._prefix = prefix
        self._interval = interval
        self._monotonic = monotonic
        self._seen: dict[str, tuple[float, int]] = {}  # address -> (last logged, failures not logged since)
        self.total = 0

    def record(self, peer: object, error: BaseException | None) -> str:
        """Count one failure of `peer` (address, port); log it unless logged recently. Return the reason."""
        reason = handshake_failure_reason(error)
        address = peer[0] if isinstance(peer, tuple) and peer else str(peer)
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        key = str(address)
        now = self._monotonic()
        self.total += 1

        last_logged, unlogged = self._seen.get(key, (None, 0))
        if last_logged is not None and now - last_logged < self._interval:
            self._seen[key] = (last_logged, unlogged + 1)
            return reason

        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        if len(self._seen) > _MAX_TRACKED:
            self._seen.pop(next(iter(self._seen)))
        logger.warning("%s: TLS handshake failed peer=%s reason=%s suppressed=%d",
                       self._prefix, peer_text, reason, unlogged)
        return reason
