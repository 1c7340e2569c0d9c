"""The relay: the SMTP server, the durable queue and delivery, on one event loop.

`Relay` is the async object (`await relay.start()`, `await relay.stop()`).
`RelayThread` runs one on its own event loop thread for synchronous callers: the
CLI, the demo and tests.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.engine import Engine

from tenanttls.clock import Clock, SystemClock
from tenanttls.errors import RelayError
from tenanttls.relay.assignments import AssignmentReader
from tenanttls.relay.certificates import ClientContexts, KeyPairSource
from tenanttls.relay.delivery import Delivery
from tenanttls.relay.handshakes import HandshakeFailures
from tenanttls.relay.hooks import LoopGuard, ProcessingHook
from tenanttls.relay.pemfiles import SERVER_CERTIFICATE, SERVER_KEY, check_key_pair_files
from tenanttls.relay.pool import ConnectionPool
from tenanttls.relay.queue import MessageQueue, Recovery
from tenanttls.relay.receiver import ConnectionLimits, Receiver, RelaySMTP
from tenanttls.relay.settings import RelaySettings

logger = logging.getLogger(__name__)

_IO_THREADS = 8


def listen_error_message(host: str, port: int, error: OSError) -> str:
    """Describe why the relay cannot listen on host:port, and what to change in relay_listen (--listen)."""
    address = f"{host}:{port}"
    if isinstance(error, socket.gaierror):
        return (f"invalid listen host {host!r} in relay_listen (--listen) {address}: {error.strerror}; "
                "give an IP address or a host name of this machine, such as 127.0.0.1:2525")
    if error.errno == errno.EADDRINUSE:
        return (f"failed to listen on {address}: the port is in use by another process; "
                "choose another port in relay_listen (--listen), or 0 for a free one")
    if error.errno == errno.EADDRNOTAVAIL:
        return (f"failed to listen on {address}: {host} is not an address of this machine; "
                "set relay_listen (--listen) to one of its addresses, such as 127.0.0.1:2525")
    if error.errno == errno.EACCES:
        return (f"failed to listen on {address}: permission denied; ports below 1024 need root "
                "or CAP_NET_BIND_SERVICE, so run with it or choose a port of 1024 or more in relay_listen (--listen)")
    reason = error.strerror or str(error)
    return f"failed to listen on {address}: {reason}; check relay_listen (--listen)"


class Relay:
    """Receive mail from tenants, queue it on disk and deliver it with the tenant's certificate.

    `engine` is the store's SQLAlchemy engine (read only). `key_pairs` loads unique
    certificates; without it only the legacy certificate can be presented. `hook` is
    the processing hook; the default only adds the loop-guard header.
    """

    def __init__(
        self,
        settings: RelaySettings,
        *,
        engine: Engine,
        key_pairs: KeyPairSource | None = None,
        hook: ProcessingHook | None = None,
        clock: Clock | None = None,
        durable: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.queue = MessageQueue(settings.queue_dir, clock=self.clock, durable=durable)
        self.assignments = AssignmentReader(engine, max_age=settings.assignment_max_age)
        self.contexts = ClientContexts(
            settings.legacy, key_pairs, server_ca=settings.smart_host_ca, max_contexts=settings.max_cached_contexts
        )
        self.loop_guard = LoopGuard(settings.hostname)
        self.hook = hook or self.loop_guard
        self.pool = ConnectionPool(
            reuse=settings.reuse_connections,
            per_key=settings.connections_per_tenant,
            idle_timeout=settings.idle_timeout,
            max_messages=settings.messages_per_delivery_connection,
            local_hostname=settings.hostname,
            timeout=settings.smtp_timeout,
        )
        self.limits = ConnectionLimits(settings.max_connections, settings.allowed_networks)
        self.handshakes = HandshakeFailures("relay")
        self.port: int | None = None
        self.recovery: Recovery | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._server: asyncio.AbstractServer | None = None
        self._delivery: Delivery | None = None
        self._delivery_task: asyncio.Task | None = None

    def _inbound_context(self) -> ssl.SSLContext | None:
        """Return the server context offered with STARTTLS; raise `ConfigurationError` naming a bad file."""
        if self.settings.tls_certificate is None or self.settings.tls_key is None:
            return None
        check_key_pair_files(
            self.settings.tls_certificate,
            self.settings.tls_key,
            what="relay server certificate",
            certificate_setting=SERVER_CERTIFICATE,
            key_setting=SERVER_KEY,
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.settings.tls_certificate, self.settings.tls_key)
        return context

    async def start(self) -> None:
        """Check the certificate files, recover the queue, start listening and start delivering.

        Raises `ConfigurationError` when a certificate, key or CA file is missing or
        invalid, and `RelayError` when the listen address cannot be used.
        """
        loop = asyncio.get_running_loop()
        inbound_context = self._inbound_context()
        self.contexts.check()
        self._executor = ThreadPoolExecutor(max_workers=_IO_THREADS, thread_name_prefix="relay-io")
        self.recovery = await loop.run_in_executor(self._executor, self.queue.recover)

        self._delivery = Delivery(
            settings=self.settings,
            queue=self.queue,
            assignments=self.assignments,
            contexts=self.contexts,
            pool=self.pool,
            clock=self.clock,
            executor=self._executor,
        )
        receiver = Receiver(
            settings=self.settings,
            queue=self.queue,
            assignments=self.assignments,
            contexts=self.contexts,
            hook=self.hook,
            loop_guard=self.loop_guard,
            executor=self._executor,
            on_queued=self._delivery.notify,
        )

        def make_protocol() -> RelaySMTP:
            return RelaySMTP(
                receiver,
                self.limits,
                self.handshakes,
                hostname=self.settings.hostname,
                ident="tenanttls relay",
                tls_context=inbound_context,
                require_starttls=self.settings.require_starttls,
                data_size_limit=self.settings.max_message_size,
                enable_SMTPUTF8=True,
                decode_data=False,
                timeout=self.settings.command_timeout,
                loop=loop,
            )

        try:
            self._server = await loop.create_server(make_protocol, host=self.settings.listen_host, port=self.settings.listen_port)
        except OSError as error:
            self._executor.shutdown(wait=False)
            raise RelayError(listen_error_message(self.settings.listen_host, self.settings.listen_port, error)) from error

        self.port = self._server.sockets[0].getsockname()[1]
        self._delivery_task = asyncio.create_task(self._delivery.run(), name="relay-delivery")
        logger.info(
            "relay: started host=%s port=%s queued=%d smart_host=%s reuse=%s",
            self.settings.listen_host, self.port, len(self.queue), self.settings.smart_host or "per tenant",
            self.settings.reuse_connections,
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening, let running deliveries finish for up to `grace` seconds, and close connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._delivery is not None:
            await self._delivery.stop(grace)
        if self._delivery_task is not None:
            await asyncio.gather(self._delivery_task, return_exceptions=True)
            self._delivery_task = None
        self.contexts.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        logger.info("relay: stopped port=%s queued=%d tls_handshake_failures=%d", self.port, len(self.queue), self.handshakes.total)

    @property
    def delivered(self) -> int:
        """Recipients delivered since start."""
        return self._delivery.delivered if self._delivery else 0

    def outcomes(self) -> list[dict[str, Any]]:
        """Return every delivery outcome written to the queue folder, oldest first."""
        return self.queue.outcomes()


class RelayThread:
    """Run a `Relay` on its own event loop in a background thread."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        return self.relay.port

    def start(self) -> RelayThread:
        """Start the relay and return when it listens; raise what `Relay.start` raised."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.relay.start())
            except BaseException as error:  # handed to the starting thread, which raises it
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.relay.stop())
            # Sessions still open (a client that did not QUIT) end with the loop.
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="relay", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop the relay and wait for its thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def wait_until_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queue to empty; return True when it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.relay.queue) == 0:
                return True
            time.sleep(0.02)
        return len(self.relay.queue) == 0

    def __enter__(self) -> RelayThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
