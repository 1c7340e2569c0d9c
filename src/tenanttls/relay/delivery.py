"""Delivery of queued messages to each tenant's smart host, presenting the tenant's certificate.

For each attempt the relay reads the tenant's current relay assignment, so the
certificate it presents (the legacy wildcard before the switch, the unique one after)
follows the store without a restart. Replies decide each recipient's fate:

- 2xx: delivered;
- 4xx, a failed connection, or a problem on the relay's side (no assignment, a
  certificate that cannot be loaded): kept and retried on the retry schedule, until
  the message is older than `max_queue_age`, then given up with 4.4.7;
- 5xx: given up at once.

Recipients given up on get a DSN to the MAIL FROM address, queued like any other
message (with the null sender), unless the MAIL FROM was empty: then the failure is
only written to the outcome file and the log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib

from tenanttls.clock import Clock
from tenanttls.errors import CertificateError, RelayError, StoreError
from tenanttls.relay.assignments import Assignment, AssignmentReader
from tenanttls.relay.certificates import ClientContexts
from tenanttls.relay.dsn import FailedRecipient, build_dsn, header_block, should_send_dsn
from tenanttls.relay.pool import ConnectionKey, ConnectionPool, PooledConnection, describe_connection_error
from tenanttls.relay.queue import (
    BOUNCED,
    DELIVERED,
    DROPPED,
    FAILED,
    KIND_DSN,
    MessageQueue,
    QueuedMessage,
    next_attempt,
)
from tenanttls.relay.receiver import message_id_of
from tenanttls.relay.settings import RelaySettings

logger = logging.getLogger(__name__)

# Maximum seconds the scheduler sleeps before it looks at the queue again.
_MAX_IDLE_WAIT = 1.0
_SWEEP_INTERVAL = 5.0

# Errors that mean the connection, not the message, failed.
_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPConnectTimeoutError,
    aiosmtplib.SMTPConnectResponseError,
    aiosmtplib.SMTPHeloError,
    aiosmtplib.SMTPException,
    ssl.SSLError,
    OSError,
    asyncio.TimeoutError,
    RelayError,
)


class _ReusedConnectionFailed(Exception):
    """A reused connection failed before any message data was sent; try a new one."""


@dataclass(frozen=True)
class AttemptContext:
    """The relay assignment and the smart host of one delivery attempt."""

    assignment: Assignment
    host: str
    port: int

    def certificate(self) -> dict[str, object]:
        return {
            "mode": self.assignment.mode,
            "name": self.assignment.certificate_name,
            "id": self.assignment.certificate_id,
            "version": self.assignment.version,
        }


class Delivery:
    """The scheduler and the delivery attempts. Runs on the relay's event loop."""

    def __init__(
        self,
        *,
        settings: RelaySettings,
        queue: MessageQueue,
        assignments: AssignmentReader,
        contexts: ClientContexts,
        pool: ConnectionPool,
        clock: Clock,
        executor: Executor,
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._assignments = assignments
        self._contexts = contexts
        self._pool = pool
        self._clock = clock
        self._executor = executor
        self._wakeup = asyncio.Event()
        self._limit = asyncio.Semaphore(settings.delivery_concurrency)
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self.delivered = 0

    async def _in_thread(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def notify(self, _message: QueuedMessage | None = None) -> None:
        """Wake the scheduler; call on the relay's event loop."""
        self._wakeup.set()

    # -- scheduling

    async def run(self) -> None:
        """Start attempts for due messages until `stop` is called."""
        last_sweep = self._clock.now()
        while not self._stopping:
            now = self._clock.now()
            next_due = self._start_due(now)

            if (now - last_sweep).total_seconds() >= _SWEEP_INTERVAL:
                await self._pool.sweep()
                last_sweep = now

            wait = _MAX_IDLE_WAIT if next_due is None else min(_MAX_IDLE_WAIT, max(0.0, (next_due - now).total_seconds()))
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=max(wait, 0.005))
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()

    def _start_due(self, now: datetime) -> datetime | None:
        """Start a task for each due message that is not being delivered; return the next due time."""
        next_due: datetime | None = None
        for message in self._queue.all():
            if message.id in self._running:
                continue
            if message.failed or (message.pending and message.next_attempt_at <= now):
                self._running.add(message.id)
                task = asyncio.create_task(self._deliver(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif message.pending and (next_due is None or message.next_attempt_at < next_due):
                next_due = message.next_attempt_at
        return next_due

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling, let running attempts finish for up to `grace` seconds, then cancel them."""
        self._stopping = True
        self._wakeup.set()
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
        await self._pool.close_all()

    async def _deliver(self, message: QueuedMessage) -> None:
        try:
            async with self._limit:
                if message.failed:
                    await self._bounce(message, None)
                if message.pending and message.next_attempt_at <= self._clock.now():
                    await self._attempt(message)
                elif message.is_finished:
                    await self._in_thread(self._queue.remove, message)
        except Exception:
            # A bug must not stop delivery of other messages; this one waits for its next turn.
            logger.exception("relay delivery: attempt failed unexpectedly tenant=%s queue_id=%s", message.tenant_id, message.id)
            message.next_attempt_at = self._clock.now() + timedelta(seconds=self._settings.retry_schedule[0])
        finally:
            self._running.discard(message.id)
            self._wakeup.set()

    # -- one attempt

    async def _attempt(self, message: QueuedMessage) -> None:
        """Make one delivery attempt for the message's pending recipients and record the result."""
        prepared = await self._prepare(message)
        if isinstance(prepared, str):
            await self._finish(message, {r.address: prepared for r in message.pending}, None)
            return

        attempt, context, content = prepared
        key: ConnectionKey = (message.tenant_id, attempt.assignment.certificate_key(), attempt.host, attempt.port)
        try:
            replies = await self._send_with_fresh_retry(key, context, message, content)
        except _CONNECTION_ERRORS as error:
            description = describe_connection_error(error, attempt.host, attempt.port)
            reply = f"451 4.4.1 {description}"
            logger.warning("relay delivery: connection failed tenant=%s queue_id=%s host=%s:%s error=%s",
                           message.tenant_id, message.id, attempt.host, attempt.port, description)
            replies = {r.address: reply for r in message.pending}
        await self._finish(message, replies, attempt)

    async def _prepare(self, message: QueuedMessage) -> tuple[AttemptContext, ssl.SSLContext, bytes] | str:
        """Return the assignment, TLS context and data for an attempt, or a 4xx reply that defers it."""
        tenant_id = message.tenant_id
        try:
            assignment = await self._in_thread(self._assignments.get, tenant_id)
        except StoreError as error:
            logger.error("relay delivery: store read failed tenant=%s queue_id=%s error=%s", tenant_id, message.id, error)
            return "451 4.3.0 The relay could not read its configuration"
        if assignment is None:
            logger.warning("relay delivery: no relay assignment tenant=%s queue_id=%s; message kept", tenant_id, message.id)
            return f"451 4.7.1 Tenant {tenant_id} has no relay assignment; message kept in the queue"

        try:
            context = await self._in_thread(self._contexts.context_for, assignment)
        except (CertificateError, StoreError) as error:
            logger.error("relay delivery: client certificate unavailable tenant=%s certificate=%s queue_id=%s error=%s",
                         tenant_id, assignment.certificate_name, message.id, error)
            return f"451 4.7.5 The TLS client certificate of tenant {tenant_id} could not be loaded; message kept"

        try:
            content = await self._in_thread(self._queue.content, message)
        except RelayError as error:
            logger.error("relay delivery: queued data unreadable tenant=%s queue_id=%s error=%s", tenant_id, message.id, error)
            return "451 4.3.0 The queued message data could not be read"

        host, port = assignment.destination(self._settings.smart_host)
        return AttemptContext(assignment, host, port), context, content

    async def _send_with_fresh_retry(
        self, key: ConnectionKey, context: ssl.SSLContext, message: QueuedMessage, content: bytes
    ) -> dict[str, str]:
        """Send on a pooled connection; when a reused one turns out dead, send once more on a new one."""
        try:
            return await self._send(key, context, message, content)
        except _ReusedConnectionFailed:
            return await self._send(key, context, message, content, allow_reused=False)

    async def _send(
        self, key: ConnectionKey, context: ssl.SSLContext, message: QueuedMessage, content: bytes, allow_reused: bool = True
    ) -> dict[str, str]:
        connection = await self._pool.acquire(key, context, fresh=not allow_reused)

        try:
            replies, data_sent = await self._transaction(connection, message, content)
        except _CONNECTION_ERRORS as error:
            await self._pool.discard(connection)
            if connection.reused and not getattr(error, "data_sent", False):
                raise _ReusedConnectionFailed() from error
            raise
        await self._pool.release(connection, healthy=True)
        return replies

    async def _transaction(self, connection: PooledConnection, message: QueuedMessage, content: bytes) -> tuple[dict[str, str], bool]:
        """Run MAIL, RCPT and DATA; return each pending recipient's reply and whether data was sent."""
        smtp = connection.smtp
        options, encoding = self._mail_options(smtp, message, content)
        replies: dict[str, str] = {}

        try:
            await smtp.mail(message.mail_from, options=options, encoding=encoding)
        except aiosmtplib.SMTPSenderRefused as refusal:
            await smtp.rset()
            return {r.address: f"{refusal.code} {refusal.message}" for r in message.pending}, False

        accepted: list[str] = []
        for recipient in message.pending:
            try:
                await smtp.rcpt(recipient.address, encoding=encoding)
                accepted.append(recipient.address)
            except aiosmtplib.SMTPRecipientRefused as refusal:
                replies[recipient.address] = f"{refusal.code} {refusal.message}"
        if not accepted:
            await smtp.rset()
            return replies, False

        await self._mark_in_flight(message)
        try:
            response = await smtp.data(content)
            reply = f"{response.code} {response.message}"
        except aiosmtplib.SMTPDataError as refusal:
            reply = f"{refusal.code} {refusal.message}"
        except _CONNECTION_ERRORS as error:
            error.data_sent = True  # type: ignore[union-attr]
            raise
        for address in accepted:
            replies[address] = reply
        return replies, True

    @staticmethod
    def _mail_options(smtp: aiosmtplib.SMTP, message: QueuedMessage, content: bytes) -> tuple[list[str], str]:
        options: list[str] = []
        if not content.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if "SMTPUTF8" in message.mail_options and smtp.supports_extension("smtputf8"):
            options.append("SMTPUTF8")
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(content)}")
        return options, "utf-8" if "SMTPUTF8" in options else "ascii"

    async def _mark_in_flight(self, message: QueuedMessage) -> None:
        message.in_flight = True
        await self._in_thread(self._queue.save, message)

    # -- results

    async def _finish(self, message: QueuedMessage, replies: dict[str, str], attempt: AttemptContext | None) -> None:
        """Apply the replies of one attempt, bounce what failed, and save or remove the message."""
        now = self._clock.now()
        message.attempts += 1
        message.in_flight = False
        certificate = attempt.certificate() if attempt else None
        remote = attempt.host if attempt else None

        for recipient in message.pending:
            reply = replies.get(recipient.address, "451 4.3.0 No reply was recorded for this recipient")
            recipient.reply = reply
            if reply.startswith("2"):
                recipient.status = DELIVERED
                self.delivered += 1
                await self._record(message, recipient.address, "delivered", reply, certificate)
            elif reply.startswith("5"):
                recipient.status = FAILED
            else:
                await self._record(message, recipient.address, "deferred", reply, certificate)

        self._expire(message, now)
        if message.pending:
            message.next_attempt_at = next_attempt(self._settings.retry_schedule, message.attempts, now)
        await self._bounce(message, remote, certificate)

    def _expire(self, message: QueuedMessage, now: datetime) -> None:
        age = (now - message.received_at).total_seconds()
        if not message.pending or age < self._settings.max_queue_age:
            return
        hours = self._settings.max_queue_age / 3600
        for recipient in message.pending:
            recipient.status = FAILED
            recipient.reply = f"550 4.4.7 Message expired: not delivered within {hours:g} hours; last reply: {recipient.reply}"
        logger.warning("relay delivery: message expired tenant=%s queue_id=%s attempts=%d",
                       message.tenant_id, message.id, message.attempts)

    async def _bounce(self, message: QueuedMessage, remote: str | None, certificate: dict[str, object] | None = None) -> None:
        """Queue a DSN for the failed recipients (never for the null sender), then save or remove the message."""
        failed = message.failed
        if failed and (message.kind == KIND_DSN or not should_send_dsn(message.mail_from)):
            for recipient in failed:
                recipient.status = DROPPED
                await self._record(message, recipient.address, "dropped", recipient.reply, certificate)
            logger.warning(
                "relay delivery: failed without DSN (null sender) tenant=%s queue_id=%s message_id=%s recipients=%s reply=%s",
                message.tenant_id, message.id, message.message_id, ",".join(r.address for r in failed), failed[0].reply,
            )
        elif failed:
            # The failed state is on disk before the DSN is queued, so a crash in between
            # queues the DSN again on restart rather than losing it.
            await self._in_thread(self._queue.save, message)
            await self._queue_dsn(message, [FailedRecipient(r.address, r.reply or "", remote) for r in failed])
            for recipient in failed:
                recipient.status = BOUNCED
                await self._record(message, recipient.address, "bounced", recipient.reply, certificate)

        if message.is_finished:
            await self._in_thread(self._queue.remove, message)
        else:
            await self._in_thread(self._queue.save, message)

    async def _queue_dsn(self, message: QueuedMessage, failures: list[FailedRecipient]) -> None:
        original = await self._in_thread(self._queue.content, message)
        dsn = build_dsn(
            reporting_mta=self._settings.hostname,
            mail_from=message.mail_from,
            original_headers=header_block(original),
            failures=failures,
            arrival=message.received_at,
            now=self._clock.now(),
            original_message_id=message.message_id,
        )
        queued = await self._in_thread(
            lambda: self._queue.enqueue(
                tenant_id=message.tenant_id,
                mail_from="",
                recipients=[message.mail_from],
                content=dsn,
                message_id=message_id_of(dsn),
                kind=KIND_DSN,
            )
        )
        logger.info("relay delivery: DSN queued tenant=%s queue_id=%s for=%s dsn_id=%s",
                    message.tenant_id, message.id, message.mail_from, queued.id)
        self._wakeup.set()

    async def _record(self, message: QueuedMessage, recipient: str, outcome: str, reply: str | None, certificate) -> None:
        await self._in_thread(lambda: self._queue.record_outcome(message, recipient, outcome, reply, certificate=certificate))
