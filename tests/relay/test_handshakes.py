"""Rate-limited logging of failed STARTTLS handshakes."""

from __future__ import annotations

import logging
import ssl

from tenanttls.relay.handshakes import HandshakeFailures, handshake_failure_reason


class _Ticks:
    """A monotonic clock that moves only when a test sets `now`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _alert(name: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {name}] alert")
    error.reason = name
    return error


def test_repeats_logged_after_interval(caplog):
    ticks = _Ticks()
    failures = HandshakeFailures("relay", interval=60, monotonic=ticks)

    with caplog.at_level(logging.WARNING, logger="tenanttls.relay.handshakes"):
        for _ in range(4):
            failures.record(("192.0.2.7", 40000), _alert("TLSV1_ALERT_UNKNOWN_CA"))
        ticks.now = 61
        failures.record(("192.0.2.7", 40001), _alert("TLSV1_ALERT_UNKNOWN_CA"))
        failures.record(("198.51.100.9", 40002), ConnectionResetError())

    lines = [record.getMessage() for record in caplog.records]
    assert failures.total == 6
    assert len(lines) == 3
    assert lines[0].startswith("relay: TLS handshake failed peer=192.0.2.7:40000")
    assert lines[0].endswith("suppressed=0")
    assert lines[1].endswith("suppressed=3")
    assert "peer=198.51.100.9:40002" in lines[2]


def test_reason_of_unknown_ca_alert():
    reason = handshake_failure_reason(_alert("TLSV1_ALERT_UNKNOWN_CA"))

    assert reason.startswith("the client ended the handshake with TLS alert unknown_ca")
    assert "does not trust the server certificate" in reason


def test_reason_of_other_alert():
    reason = handshake_failure_reason(_alert("TLSV1_ALERT_PROTOCOL_VERSION"))

    assert reason == "the client ended the handshake with TLS alert protocol_version"


def test_reason_of_closed_connection():
    assert handshake_failure_reason(ConnectionResetError()) == "the client closed the connection during the handshake"
