"""Drop the relay's cached assignment of a tenant as soon as the engine switches it (PostgreSQL).

The store sends ``NOTIFY tenanttls_relay_assignments, '<tenant id>'`` in the transaction
that changes a relay assignment. `AssignmentListener` keeps one connection that
LISTENs on that channel and calls `AssignmentReader.forget(tenant_id)` for each
notification, so the next delivery for the tenant reads the new row.

Notifications sent while the listener is disconnected are lost. After a reconnect it
therefore drops every cached assignment. The reader's own expiry (`max_age`) stays
the fallback: without the listener, or while it reconnects, a switch takes effect
at the latest `max_age` seconds after it was committed.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from sqlalchemy.engine import Engine

from tenanttls.relay.assignments import AssignmentReader
from tenanttls.store.relay_assignments import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

# How long one wait for notifications lasts, so that `stop()` is noticed.
POLL_SECONDS = 1.0
RECONNECT_SECONDS = 5.0


def listens(engine: Engine) -> bool:
    """Return True when the store can notify relays (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


class AssignmentListener:
    """A thread that LISTENs for assignment changes and drops them from `reader`'s cache."""

    def __init__(self, engine: Engine, reader: AssignmentReader, *, reconnect_seconds: float = RECONNECT_SECONDS) -> None:
        if not listens(engine):
            raise ValueError(f"relay assignment notifications need PostgreSQL, not {engine.dialect.name}")
        # psycopg takes the libpq form of the URL, without SQLAlchemy's driver name.
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._reader = reader
        self._reconnect_seconds = reconnect_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tenanttls-assignment-listener", daemon=True)
        self.connected = threading.Event()
        self.received = 0

    def start(self) -> "AssignmentListener":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close the connection (waits up to a few seconds)."""
        self._stop.set()
        self._thread.join(timeout=POLL_SECONDS + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                logger.warning(
                    "relay assignment listener: connection lost error=%s; until it reconnects in %.0fs, each cached "
                    "assignment is read again from the store once it is %.0fs old",
                    " ".join(str(error).split()), self._reconnect_seconds, self._reader.max_age,
                )
            self.connected.clear()
            self._stop.wait(self._reconnect_seconds)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            # Changes made while no connection listened were not notified.
            self._reader.forget()
            self.connected.set()
            logger.info("relay assignment listener: listening channel=%s", NOTIFY_CHANNEL)
            while not self._stop.is_set():
                for notification in connection.notifies(timeout=POLL_SECONDS):
                    self.received += 1
                    self._reader.forget(notification.payload)
