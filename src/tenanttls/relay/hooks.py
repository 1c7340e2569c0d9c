"""The processing hook: where a signature service changes a message before it is queued.

A hook is an async callable that takes an `InboundMessage` and returns the message
data to queue. It may raise `MessageRejected` with a 5xx reply to reject the message,
or any `RelayError` to defer it (the sender gets 451 and retries). The default hook,
`LoopGuard`, adds one header and changes nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable

from tenanttls.errors import RelayError

LOOP_GUARD_HEADER = "X-TenantTLS-Relay"


@dataclass(frozen=True)
class InboundMessage:
    """A message the relay received, after its tenant was found."""

    tenant_id: str
    mail_from: str
    recipients: tuple[str, ...]
    content: bytes  # the message data exactly as received, CRLF line endings
    peer: str


ProcessingHook = Callable[[InboundMessage], Awaitable[bytes]]


class MessageRejected(RelayError):
    """A hook rejects a message for good; `reply` is the 5xx SMTP reply the sender gets."""

    def __init__(self, reply: str) -> None:
        if not reply.startswith("5"):
            raise ValueError(f"a rejection needs a 5xx reply, got {reply!r}")
        super().__init__(reply)
        self.reply = reply


class LoopGuard:
    """Stamp ``X-TenantTLS-Relay: <relay>; tenant=<id>`` and detect mail that passed this relay for the tenant before.

    The tenant's mail flow rule that routes mail to the relay should skip messages
    that carry this header. When the rule is missing or wrong, the message comes
    back, and `has_passed` stops the loop.
    """

    def __init__(self, relay_name: str) -> None:
        self.relay_name = relay_name.lower()

    def header_value(self, tenant_id: str) -> str:
        return f"{self.relay_name}; tenant={tenant_id.lower()}"

    def has_passed(self, content: bytes, tenant_id: str) -> bool:
        """Return True when the header section already has this relay's header for `tenant_id`."""
        end = content.find(b"\r\n\r\n")
        headers = content if end < 0 else content[:end]
        pattern = re.compile(
            rb"^" + re.escape(LOOP_GUARD_HEADER.encode()) + rb":[ \t]*" + re.escape(self.header_value(tenant_id).encode()) + rb"[ \t]*$",
            re.IGNORECASE | re.MULTILINE,
        )
        return pattern.search(headers.replace(b"\r\n", b"\n")) is not None

    async def __call__(self, message: InboundMessage) -> bytes:
        line = f"{LOOP_GUARD_HEADER}: {self.header_value(message.tenant_id)}\r\n".encode("ascii")
        return line + message.content
