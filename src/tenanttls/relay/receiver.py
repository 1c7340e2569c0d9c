"""The relay's SMTP server side: accept mail from tenants' outbound connectors and queue it.

Which tenant a message belongs to: Exchange Online stamps every message that leaves
a tenant with ``X-MS-Exchange-CrossTenant-Id: <tenant id>``, also automatic replies
and non-delivery reports whose MAIL FROM is empty. The relay reads the first such
header and looks up that tenant's relay assignment. The header is trusted only
because the relay accepts connections from `allowed_networks` alone, which in
production are Exchange Online's published outbound IP ranges.

Replies, in the order the checks run at the end of DATA:

- bare CR or LF in the data: ``550 5.6.11`` (RFC 5321 section 2.3.8 allows only CRLF);
- no tenant header, or not a GUID: ``550 5.7.1``;
- tenant without a relay assignment: ``451 4.7.1``, so the sender keeps the mail and retries;
- the tenant's certificate cannot be loaded: ``451 4.7.5``, logged with the tenant id;
- the message already passed this relay for this tenant: ``554 5.4.6`` (routing loop);
- the processing hook failed: ``451 4.3.0``, or the hook's own 5xx rejection;
- the queue write failed: ``451 4.3.0``;
- any other error on the relay's side: ``451 4.3.0``, logged with the tenant id;
- otherwise the message is on disk and the reply is ``250 2.0.0``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from concurrent.futures import Executor
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from tenanttls.domain.names import is_guid
from tenanttls.errors import CertificateError, RelayError, StoreError
from tenanttls.relay.assignments import AssignmentReader
from tenanttls.relay.handshakes import HandshakeFailures
from tenanttls.relay.certificates import ClientContexts
from tenanttls.relay.hooks import InboundMessage, LoopGuard, MessageRejected, ProcessingHook
from tenanttls.relay.queue import MessageQueue, QueuedMessage
from tenanttls.relay.settings import RelaySettings

logger = logging.getLogger(__name__)

TENANT_HEADER = "X-MS-Exchange-CrossTenant-Id"

BARE_LINE_ENDING = "550 5.6.11 Message contains a bare CR or LF; send CRLF line endings (RFC 5321 section 2.3.8)"
NO_TENANT = (
    f"550 5.7.1 Message has no valid {TENANT_HEADER} header; this relay accepts mail only from "
    "Exchange Online outbound connectors"
)
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TOO_MANY_MESSAGES = "451 4.7.0 Too many messages in this connection; reconnect to send more"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; try again later"
NOT_ALLOWED = "554 5.7.1 Connections from this address are not accepted"
LOOP_DETECTED = "554 5.4.6 Routing loop detected: the message already passed this relay for this tenant"
TEMPORARY_FAILURE = "451 4.3.0 Temporary failure on the relay; try again later"

_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def header_section(content: bytes) -> bytes:
    end = content.find(b"\r\n\r\n")
    return content if end < 0 else content[: end + 4]


def tenant_of(content: bytes) -> str | None:
    """Return the lower-case tenant id from the first `X-MS-Exchange-CrossTenant-Id` header, or None."""
    headers = _HEADER_PARSER.parsebytes(header_section(content))
    values = headers.get_all(TENANT_HEADER) or []
    if not values:
        return None
    value = str(values[0]).strip().lower()
    return value if is_guid(value) else None


def message_id_of(content: bytes) -> str | None:
    value = _HEADER_PARSER.parsebytes(header_section(content)).get("Message-ID")
    return str(value).strip() if value is not None else None


def null_sender_as_empty(address: str) -> str:
    """Return '' for the null reverse-path, which aiosmtpd passes on as ``<>``."""
    return "" if address.strip() in ("", "<>") else address


def peer_text(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class ConnectionLimits:
    """Admit connections from allowed networks, up to `max_connections` at once."""

    def __init__(self, max_connections: int, allowed_networks: tuple[str, ...]) -> None:
        self.max_connections = max_connections
        self.networks = [ipaddress.ip_network(network, strict=False) for network in allowed_networks]
        self.open = 0

    def admit(self, peer: object) -> str | None:
        """Count a new connection and return None, or return the reply that rejects it."""
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return NOT_ALLOWED
        if not any(ip in network for network in self.networks):
            return NOT_ALLOWED
        if self.open >= self.max_connections:
            return TOO_MANY_CONNECTIONS
        self.open += 1
        return None

    def release(self) -> None:
        self.open -= 1


class _RelaySession(Session):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.messages = 0


class RelaySMTP(SMTP):
    """aiosmtpd's server, rejecting connections that `ConnectionLimits` does not admit."""

    def __init__(self, handler: Receiver, limits: ConnectionLimits, handshakes: HandshakeFailures, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        # The relay trusts senders by network and tenant header, never by SMTP AUTH
        # (RFC 4954), so AUTH is an unknown command here; `Receiver.handle_EHLO` hides it.
        self._smtp_methods.pop("AUTH", None)
        self._limits = limits
        self._handshakes = handshakes
        self._admitted = False
        self._messages = 0

    def _create_session(self) -> Session:
        session = _RelaySession(self.loop)
        # STARTTLS starts a new session; the message count belongs to the connection.
        session.messages = self._messages
        return session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first_call = self.transport is None
        if first_call:
            peer = transport.get_extra_info("peername")
            refusal = self._limits.admit(peer)
            if refusal is not None:
                logger.warning("relay: connection rejected peer=%s reply=%s", peer, refusal)
                transport.write(refusal.encode("ascii") + b"\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._limits.release()
        super().connection_lost(error)

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, TLSSetupException):
            # One line per peer and reason instead of aiosmtpd's two tracebacks per connection.
            # aiosmtpd closes the connection and sends no reply after a failed handshake.
            assert self.session is not None
            self._handshakes.record(self.session.peer, error.__cause__)
            return "421 4.7.0 TLS handshake failed"

        # aiosmtpd would reply 500 to a bug in a command handler; a local fault must defer instead.
        peer = self.session.peer if self.session is not None else None
        logger.exception("relay: command failed unexpectedly, replied 451 peer=%s error=%s", peer, error.__class__.__name__)
        return TEMPORARY_FAILURE

    def count_message(self) -> int:
        self._messages += 1
        return self._messages


class Receiver:
    """The aiosmtpd handler: checks, processing hook, durable queue, then 250."""

    def __init__(
        self,
        *,
        settings: RelaySettings,
        queue: MessageQueue,
        assignments: AssignmentReader,
        contexts: ClientContexts,
        hook: ProcessingHook,
        loop_guard: LoopGuard,
        executor: Executor,
        on_queued: Callable[[QueuedMessage], None],
    ) -> None:
        self._settings = settings
        self._queue = queue
        self._assignments = assignments
        self._contexts = contexts
        self._hook = hook
        self._loop_guard = loop_guard
        self._executor = executor
        self._on_queued = on_queued
        self._unexpected: dict[str, int] = {}  # error class name -> count since start

    async def _in_thread(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def handle_EHLO(self, server: RelaySMTP, session: _RelaySession, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        """Reply to EHLO with aiosmtpd's lines except ``AUTH``, which the relay does not offer."""
        session.host_name = hostname  # aiosmtpd leaves this to a 5-argument EHLO hook
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_MAIL(self, server: RelaySMTP, session: _RelaySession, envelope: Envelope, address: str, options: list[str]) -> str:
        if session.messages >= self._settings.max_messages_per_connection:
            return TOO_MANY_MESSAGES
        # aiosmtpd needs a true mail_from to accept RCPT, so the null sender stays "<>" here.
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: RelaySMTP, session: _RelaySession, envelope: Envelope, address: str, options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self._settings.max_recipients:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: RelaySMTP, session: _RelaySession, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        peer = peer_text(session)
        try:
            reply, queued = await self._accept(content, envelope, peer)
        except Exception as error:
            # A fault on the relay's side must defer the message. aiosmtpd would reply
            # 500, and a 5xx makes the sender bounce mail that a retry would deliver.
            self._log_unexpected(error, content, peer)
            return TEMPORARY_FAILURE
        if queued is not None:
            session.messages = server.count_message()
            self._on_queued(queued)
        return reply

    def _log_unexpected(self, error: Exception, content: bytes, peer: str) -> None:
        """Log an unexpected error once per message; the traceback only the first time per error type."""
        try:
            tenant_id = tenant_of(content)
        except Exception:  # the header parser failed too; the error below is the one to report
            tenant_id = None
        kind = error.__class__.__name__
        self._unexpected[kind] = self._unexpected.get(kind, 0) + 1
        logger.error(
            "relay: accepting failed unexpectedly, replied 451 tenant=%s peer=%s error=%s: %s count=%d",
            tenant_id, peer, kind, error, self._unexpected[kind], exc_info=self._unexpected[kind] == 1,
        )

    async def _accept(self, content: bytes, envelope: Envelope, peer: str) -> tuple[str, QueuedMessage | None]:
        if _BARE_CR_OR_LF.search(content):
            logger.info("relay: rejected bare line ending peer=%s mail_from=%s", peer, envelope.mail_from)
            return BARE_LINE_ENDING, None

        tenant_id = tenant_of(content)
        if tenant_id is None:
            logger.info("relay: rejected without tenant header peer=%s mail_from=%s", peer, envelope.mail_from)
            return NO_TENANT, None

        refusal = await self._check_tenant(tenant_id)
        if refusal is not None:
            return refusal, None

        if self._loop_guard.has_passed(content, tenant_id):
            logger.warning("relay: routing loop tenant=%s peer=%s message_id=%s", tenant_id, peer, message_id_of(content))
            return LOOP_DETECTED, None

        mail_from = null_sender_as_empty(envelope.mail_from or "")
        inbound = InboundMessage(tenant_id, mail_from, tuple(envelope.rcpt_tos), content, peer)
        processed = await self._process(inbound)
        if isinstance(processed, str):
            return processed, None
        return await self._enqueue(inbound, processed, envelope)

    async def _check_tenant(self, tenant_id: str) -> str | None:
        """Return a 4xx reply when the tenant has no assignment or no loadable certificate."""
        try:
            assignment = await self._in_thread(self._assignments.get, tenant_id)
        except StoreError as error:
            logger.error("relay: store read failed tenant=%s error=%s", tenant_id, error)
            return "451 4.3.0 Temporary failure reading the relay configuration; try again later"

        if assignment is None:
            logger.warning("relay: no relay assignment tenant=%s; mail deferred to the sender", tenant_id)
            return f"451 4.7.1 Tenant {tenant_id} has no relay assignment at this relay; try again later"

        try:
            await self._in_thread(self._contexts.context_for, assignment)
        except (CertificateError, StoreError) as error:
            logger.error("relay: client certificate unavailable tenant=%s certificate=%s error=%s",
                         tenant_id, assignment.certificate_name, error)
            return f"451 4.7.5 The relay cannot load the TLS client certificate of tenant {tenant_id}; try again later"
        return None

    async def _process(self, inbound: InboundMessage) -> bytes | str:
        """Run the processing hook; return the new data or the reply that ends the transaction."""
        try:
            return await self._hook(inbound)
        except MessageRejected as rejection:
            logger.info("relay: hook rejected tenant=%s reply=%s", inbound.tenant_id, rejection.reply)
            return rejection.reply
        except RelayError as error:
            logger.error("relay: processing hook failed tenant=%s error=%s", inbound.tenant_id, error)
            return "451 4.3.0 Temporary failure processing the message; try again later"
        except Exception:
            # A bug in a hook must defer the message, never reject it for good.
            logger.exception("relay: processing hook raised tenant=%s", inbound.tenant_id)
            return "451 4.3.0 Temporary failure processing the message; try again later"

    async def _enqueue(self, inbound: InboundMessage, content: bytes, envelope: Envelope) -> tuple[str, QueuedMessage | None]:
        message_id = message_id_of(content)
        try:
            queued = await self._in_thread(
                lambda: self._queue.enqueue(
                    tenant_id=inbound.tenant_id,
                    mail_from=inbound.mail_from,
                    recipients=inbound.recipients,
                    content=content,
                    message_id=message_id,
                    mail_options=[option for option in envelope.mail_options if option.upper() == "SMTPUTF8"],
                )
            )
        except RelayError as error:
            logger.error("relay: queue write failed tenant=%s error=%s", inbound.tenant_id, error)
            return "451 4.3.0 Temporary failure writing the queue; try again later", None

        logger.info(
            "relay: queued tenant=%s queue_id=%s message_id=%s recipients=%d size=%d",
            inbound.tenant_id, queued.id, message_id, len(inbound.recipients), len(content),
        )
        return f"250 2.0.0 Queued as {queued.id}", queued
