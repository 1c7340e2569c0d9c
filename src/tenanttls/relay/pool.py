"""Outbound SMTP connections to smart hosts, kept open and reused per tenant and certificate.

A connection is keyed by tenant, presented certificate and smart host, so a tenant
whose relay assignment changed gets a new connection with the new certificate, and
its idle connections with the old certificate are closed. Every connection has
finished STARTTLS before it is handed out: one that could not start TLS raises,
so no message is ever sent in plain text.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Callable

import aiosmtplib

from tenanttls.errors import RelayError

logger = logging.getLogger(__name__)

ConnectionKey = tuple[str, tuple[str, int | None], str, int]  # tenant, certificate key, host, port


def describe_connection_error(error: BaseException, host: str, port: int) -> str:
    """Describe a failed connection or session with a smart host in plain words, for replies and logs."""
    address = f"{host}:{port}"
    cause = error.__cause__ if isinstance(error, aiosmtplib.SMTPConnectError) and isinstance(error.__cause__, OSError) else error

    if isinstance(cause, TimeoutError):  # also asyncio's and aiosmtplib's timeouts
        return f"connection to {address} timed out"
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {address}"
    if isinstance(cause, socket.gaierror):
        return f"host name {host} not found: {cause.strerror}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (f"the server certificate of {address} failed verification: {cause.verify_message}; "
                "check relay_smart_host_ca (--smart-host-ca)")
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {address} failed: {cause.reason or cause}"
    if isinstance(cause, aiosmtplib.SMTPServerDisconnected):
        return f"{address} closed the connection"
    if isinstance(cause, aiosmtplib.SMTPResponseException):
        return f"{address} replied {cause.code} {cause.message}"
    if isinstance(cause, aiosmtplib.SMTPException) and "STARTTLS" in str(cause):
        return f"{address} does not offer STARTTLS, and the relay never sends mail in plain text"
    if isinstance(cause, OSError) and cause.strerror:
        return f"connection to {address} failed: {cause.strerror}"
    return f"connection to {address} failed: {cause}"


@dataclass
class PooledConnection:
    """An open, TLS-protected SMTP client connection."""

    key: ConnectionKey
    smtp: aiosmtplib.SMTP
    last_used: float
    messages: int = 0
    reused: bool = field(default=False)

    @property
    def tenant_id(self) -> str:
        return self.key[0]


class ConnectionPool:
    """Up to `per_key` connections in use per key; idle ones are kept when `reuse` is on."""

    def __init__(
        self,
        *,
        reuse: bool,
        per_key: int,
        idle_timeout: float,
        max_messages: int,
        local_hostname: str,
        timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reuse = reuse
        self._per_key = per_key
        self._idle_timeout = idle_timeout
        self._max_messages = max_messages
        self._local_hostname = local_hostname
        self._timeout = timeout
        self._monotonic = monotonic
        self._idle: dict[ConnectionKey, list[PooledConnection]] = {}
        self._slots: dict[ConnectionKey, asyncio.Semaphore] = {}
        self.opened = 0

    def _slot(self, key: ConnectionKey) -> asyncio.Semaphore:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(self._per_key)
        return slot

    async def acquire(self, key: ConnectionKey, context: ssl.SSLContext, *, fresh: bool = False) -> PooledConnection:
        """Wait for a free slot of `key`, then return an idle connection (unless `fresh`) or a new one.

        Raises `RelayError` when TLS could not be started, and aiosmtplib's or the ssl
        module's errors when the connection failed; the slot is released in both cases.
        """
        await self._slot(key).acquire()
        try:
            await self._close_other_certificates(key)
            idle = [] if fresh else self._idle.get(key) or []
            while idle:
                connection = idle.pop()
                if connection.smtp.is_connected:
                    connection.reused = True
                    return connection
                connection.smtp.close()
            return await self._open(key, context)
        except BaseException:
            self._slot(key).release()
            raise

    async def _open(self, key: ConnectionKey, context: ssl.SSLContext) -> PooledConnection:
        _, _, host, port = key
        smtp = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            start_tls=True,
            tls_context=context,
            local_hostname=self._local_hostname,
            timeout=self._timeout,
        )
        await smtp.connect()
        if smtp.get_transport_info("ssl_object") is None:
            smtp.close()
            raise RelayError(f"STARTTLS did not start TLS with {host}:{port}; the message was not sent")
        self.opened += 1
        return PooledConnection(key, smtp, self._monotonic())

    async def release(self, connection: PooledConnection, *, healthy: bool) -> None:
        """Return a connection after a transaction; keep it for reuse when healthy and allowed."""
        connection.messages += 1
        connection.last_used = self._monotonic()
        keep = healthy and self.reuse and connection.smtp.is_connected and connection.messages < self._max_messages
        try:
            if keep:
                self._idle.setdefault(connection.key, []).append(connection)
            else:
                await self._quit(connection)
        finally:
            self._slot(connection.key).release()

    async def discard(self, connection: PooledConnection) -> None:
        """Close a connection that failed and free its slot."""
        try:
            connection.smtp.close()
        finally:
            self._slot(connection.key).release()

    async def _quit(self, connection: PooledConnection) -> None:
        try:
            await connection.smtp.quit(timeout=5)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            connection.smtp.close()

    async def _close_other_certificates(self, key: ConnectionKey) -> None:
        """Close the tenant's idle connections that present another certificate or go elsewhere."""
        stale = [other for other in self._idle if other[0] == key[0] and other != key]
        for other in stale:
            for connection in self._idle.pop(other):
                await self._quit(connection)

    async def sweep(self) -> int:
        """Close connections idle for longer than the idle timeout; return how many were closed."""
        now = self._monotonic()
        closed = 0
        for key in list(self._idle):
            keep = []
            for connection in self._idle[key]:
                if now - connection.last_used > self._idle_timeout or not connection.smtp.is_connected:
                    await self._quit(connection)
                    closed += 1
                else:
                    keep.append(connection)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        return closed

    async def close_all(self) -> None:
        """Close every idle connection."""
        for key in list(self._idle):
            for connection in self._idle.pop(key):
                await self._quit(connection)

    def idle_count(self) -> int:
        return sum(len(connections) for connections in self._idle.values())
