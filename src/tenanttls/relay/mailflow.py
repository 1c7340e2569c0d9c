"""A steady stream of mail through the relay during upgrades, and the count of what happened to it.

`MailFlowDriver` plays the tenants' Exchange Online outbound connectors: it sends, in
turn for each tenant, four kinds of message to the relay (normal and null-sender mail,
each to a recipient inside the tenant and one outside), stamped with the tenant's
``X-MS-Exchange-CrossTenant-Id``. For each message it notes the phase the tenant was
in when it was sent (its upgrade state, by default).

`MailFlowDriver.report` joins that with what the relay and the smart host recorded:

- accepted: the smart host took the message (the front door lists its Message-ID);
- rejected: the relay gave up on it after a 5xx (bounced with a DSN, or dropped for the null sender);
- deferred: it got a 4xx somewhere on the way at least once (a count, not a final state);
- pending: still in the relay's queue, or refused by the relay with a 4xx (its sender keeps it);
- lost: the relay answered 250 and the message is in none of the states above.

Expected, when the switch is right: before a tenant's switch (legacy certificate), null-sender
mail to outside recipients is rejected with 5.7.64 and everything else is accepted; after
it (unique certificate), everything is accepted and attributed to the tenant; nothing is
lost. `MailFlowReport.violations` lists every message that broke this.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import aiosmtplib

from tenanttls.relay.receiver import TENANT_HEADER

logger = logging.getLogger(__name__)

NORMAL_INSIDE = "normal-inside"
NORMAL_OUTSIDE = "normal-outside"
NULL_INSIDE = "null-inside"
NULL_OUTSIDE = "null-outside"
KINDS = (NORMAL_INSIDE, NORMAL_OUTSIDE, NULL_INSIDE, NULL_OUTSIDE)

OUTSIDE_DOMAIN = "outside.example"
# Submissions the relay defers (4xx) are tried again this often, as Exchange Online would.
_SUBMIT_ATTEMPTS = 3
_SUBMIT_RETRY_DELAY = 0.5
# The driver opens a new connection after this many messages, below the relay's per-connection limit.
_MESSAGES_PER_CONNECTION = 50

# The report's row order: the upgrade states as `tenanttls.migration.states.UpgradeState` lists
# them (the forward path, then rollback and the stops), after "not-requested" for tenants
# without an upgrade. The relay does not import the engine, so the names are repeated here.
UPGRADE_PHASE_ORDER = (
    "not-requested",
    "awaiting_consent",
    "identity",
    "domain",
    "accepted",
    "backup",
    "connector",
    "grace",
    "switched",
    "verified",
    "completed",
    "rolling_back",
    "rolled_back",
    "needs_attention",
    "manual",
)


@dataclass(frozen=True)
class FlowTenant:
    """A tenant in the stream: its id and an accepted domain used for senders and inside recipients."""

    tenant_id: str
    domain: str


@dataclass
class SentMessage:
    """One message the driver submitted to the relay."""

    message_id: str
    tenant_id: str
    kind: str
    phase: str
    reply: str = ""
    submit_deferrals: int = 0

    @property
    def queued(self) -> bool:
        return self.reply.startswith("250")


@dataclass
class PhaseCounts:
    """Counts of the messages sent during one phase, by outcome."""

    sent: int = 0
    accepted: int = 0
    deferred: int = 0
    rejected: int = 0
    pending: int = 0
    lost: int = 0
    misattributed: int = 0
    null_outside_sent: int = 0
    null_outside_accepted: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class MessageOutcome:
    """The final classification of one sent message."""

    message: SentMessage
    state: str  # accepted | rejected | pending | lost
    deferred: bool
    attributed_to: str | None
    certificate_mode: str | None
    reply: str | None


@dataclass
class MailFlowReport:
    """Counts per phase and per-message outcomes.

    `phases` are in `UPGRADE_PHASE_ORDER`; phases not in it follow, in the order they were first seen.
    """

    phases: dict[str, PhaseCounts]
    outcomes: list[MessageOutcome] = field(repr=False)

    @property
    def total(self) -> PhaseCounts:
        total = PhaseCounts()
        for counts in self.phases.values():
            for name, value in vars(counts).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    def violations(self) -> list[str]:
        """Return a line per message that broke the zero-downtime expectation (empty when none did)."""
        problems = []
        for outcome in self.outcomes:
            message = outcome.message
            label = f"{message.message_id} ({message.kind}, tenant {message.tenant_id}, phase {message.phase})"
            if outcome.state == "lost":
                problems.append(f"{label}: lost")
            elif outcome.state == "accepted" and outcome.attributed_to != message.tenant_id:
                problems.append(f"{label}: attributed to {outcome.attributed_to or 'no tenant'}")
            elif outcome.state == "rejected" and not _rejection_expected(outcome):
                problems.append(f"{label}: rejected with {outcome.certificate_mode} certificate: {outcome.reply}")
            elif outcome.state == "accepted" and message.kind == NULL_OUTSIDE and outcome.certificate_mode == "legacy":
                problems.append(f"{label}: accepted under the legacy certificate, which Exchange would reject")
        return problems

    def lines(self) -> list[str]:
        """Return the report as a text table: one row per phase, then the total."""
        header = f"{'phase':<18} {'sent':>6} {'accepted':>9} {'deferred':>9} {'rejected':>9} {'lost':>5} {'pending':>8}  null-sender to outside"
        rows = ["Mail through the relay, per phase:", header, "-" * len(header)]
        for phase, counts in [*self.phases.items(), ("total", self.total)]:
            null_outside = f"{counts.null_outside_accepted}/{counts.null_outside_sent} accepted"
            rows.append(
                f"{phase:<18} {counts.sent:>6} {counts.accepted:>9} {counts.deferred:>9} {counts.rejected:>9} "
                f"{counts.lost:>5} {counts.pending:>8}  {null_outside}"
            )
        problems = self.violations()
        rows.append(f"expectation: {'met' if not problems else f'{len(problems)} messages broke it'}")
        rows += [f"  {problem}" for problem in problems[:20]]
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "phases": {phase: counts.to_json() for phase, counts in self.phases.items()},
            "total": self.total.to_json(),
            "violations": self.violations(),
        }


def _rejection_expected(outcome: MessageOutcome) -> bool:
    """Only null-sender mail to outside recipients under the legacy certificate may be rejected."""
    return outcome.message.kind == NULL_OUTSIDE and outcome.certificate_mode == "legacy"


def outbound_message(tenant: FlowTenant, kind: str, message_id: str, sequence: int) -> tuple[str, str, bytes]:
    """Return (MAIL FROM, recipient, data) of one message as a tenant's outbound connector sends it."""
    sender = "" if kind.startswith("null") else f"user{sequence % 50}@{tenant.domain}"
    recipient = f"person{sequence % 50}@{tenant.domain if kind.endswith('inside') else OUTSIDE_DOMAIN}"
    header_from = sender or f"MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{tenant.domain}"
    subject = "Automatic reply: out of office" if kind.startswith("null") else f"Message {sequence}"
    lines = [
        f"From: {header_from}",
        f"To: {recipient}",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        f"{TENANT_HEADER}: {tenant.tenant_id}",
    ]
    if kind.startswith("null"):
        lines.append("Auto-Submitted: auto-replied")
    lines += ["", f"Message {sequence} of the tenanttls mail-flow driver ({kind}).", ""]
    return sender, recipient, "\r\n".join(lines).encode("ascii")


class MailFlowDriver:
    """Send a steady stream of messages to the relay from a background thread.

    `relay_ca` is the CA bundle that verifies the relay's server certificate. `phase_of`
    returns the phase to count a tenant's message under at the moment it is sent.
    `rate` is messages per second over all tenants.
    """

    def __init__(
        self,
        *,
        relay_host: str,
        relay_port: int,
        relay_ca: Path | None,
        tenants: Iterable[FlowTenant],
        phase_of: Callable[[str], str] | None = None,
        rate: float = 20.0,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.relay_host = relay_host
        self.relay_port = relay_port
        self.tenants = list(tenants)
        self.phase_of = phase_of or (lambda tenant_id: "all")
        self.rate = rate
        self.kinds = kinds
        self._context = ssl.create_default_context(cafile=str(relay_ca) if relay_ca else None)
        self._lock = threading.Lock()
        self._sent: list[SentMessage] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_id = uuid.uuid4().hex[:8]
        self._sequence = itertools.count(1)
        self._plan = itertools.cycle([(tenant, kind) for kind in kinds for tenant in self.tenants])
        self._messages_on_connection = 0

    @property
    def sent(self) -> list[SentMessage]:
        with self._lock:
            return list(self._sent)

    # -- sending

    def start(self) -> MailFlowDriver:
        """Start sending in the background until `stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="mail-flow", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending; returns after the message being sent is done."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def send(self, count: int) -> list[SentMessage]:
        """Send `count` messages now, in the calling thread, and return them."""
        return asyncio.run(self._send_many(count))

    async def _send_many(self, count: int) -> list[SentMessage]:
        client = None
        sent = []
        try:
            for _ in range(count):
                client, message = await self._send_next(client)
                sent.append(message)
        finally:
            await _close(client)
        return sent

    async def _run(self) -> None:
        client = None
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                client, _ = await self._send_next(client)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            await _close(client)

    async def _send_next(self, client: aiosmtplib.SMTP | None) -> tuple[aiosmtplib.SMTP | None, SentMessage]:
        tenant, kind = next(self._plan)
        sequence = next(self._sequence)
        message_id = f"<flow-{self._run_id}-{sequence}-{kind}@{tenant.domain}>"
        message = SentMessage(message_id, tenant.tenant_id, kind, self._phase(tenant.tenant_id))
        sender, recipient, data = outbound_message(tenant, kind, message_id, sequence)
        with self._lock:
            self._sent.append(message)

        for attempt in range(1, _SUBMIT_ATTEMPTS + 1):
            client, message.reply = await self._submit(client, sender, recipient, data)
            if not message.reply.startswith("4") or attempt == _SUBMIT_ATTEMPTS:
                break
            message.submit_deferrals += 1
            await asyncio.sleep(_SUBMIT_RETRY_DELAY)
        return client, message

    def _phase(self, tenant_id: str) -> str:
        try:
            return self.phase_of(tenant_id)
        except Exception as error:  # a failed phase lookup must not stop the stream
            logger.warning("mail flow: phase lookup failed tenant=%s error=%s", tenant_id, error)
            return "unknown"

    async def _submit(self, client, sender: str, recipient: str, data: bytes) -> tuple[aiosmtplib.SMTP | None, str]:
        """Send one message on `client` (connecting when needed); return the client to reuse and the reply.

        After a refusal the connection is closed, so the next attempt starts a new session.
        """
        if client is not None and self._messages_on_connection >= _MESSAGES_PER_CONNECTION:
            await _close(client)
            client = None
        try:
            if client is None or not client.is_connected:
                client = aiosmtplib.SMTP(hostname=self.relay_host, port=self.relay_port, start_tls=True,
                                         tls_context=self._context, timeout=30)
                await client.connect()
                self._messages_on_connection = 0
            self._messages_on_connection += 1
            _, reply = await client.sendmail(sender, [recipient], data)
            return client, f"250 {reply}"
        except aiosmtplib.SMTPRecipientsRefused as error:
            refusal = error.recipients[0]
            reply = f"{refusal.code} {refusal.message}"
        except aiosmtplib.SMTPResponseException as error:
            reply = f"{error.code} {error.message}"
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
            reply = f"421 {error.__class__.__name__}: {error}"
        await _close(client)
        return None, reply

    # -- counting

    def report(
        self,
        received: Iterable[dict[str, Any]],
        relay_outcomes: Iterable[dict[str, Any]],
        queued_message_ids: Iterable[str] = (),
    ) -> MailFlowReport:
        """Count the sent messages per phase.

        `received` are the smart host's accepted messages (dicts with ``message_id`` and
        ``tenant_id``, as ``/_simulator/messages`` lists them); `relay_outcomes` are the
        relay's outcome lines; `queued_message_ids` the Message-IDs still in its queue.
        """
        attributed: dict[str, str | None] = {}
        for entry in received:
            attributed.setdefault(entry.get("message_id"), entry.get("tenant_id"))
        lines_by_id: dict[str, list[dict[str, Any]]] = {}
        for line in relay_outcomes:
            if line.get("kind", "message") == "message":
                lines_by_id.setdefault(line.get("message_id"), []).append(line)
        still_queued = set(queued_message_ids)

        phases: dict[str, PhaseCounts] = {}
        outcomes = []
        for message in self.sent:
            outcome = _classify(message, attributed, lines_by_id.get(message.message_id, []), still_queued)
            outcomes.append(outcome)
            _count(phases.setdefault(message.phase, PhaseCounts()), outcome)
        return MailFlowReport(in_phase_order(phases), outcomes)


def in_phase_order(phases: dict[str, PhaseCounts]) -> dict[str, PhaseCounts]:
    """Return `phases` sorted by `UPGRADE_PHASE_ORDER`; other phases keep their order, after those."""
    rank = {phase: position for position, phase in enumerate(UPGRADE_PHASE_ORDER)}
    ordered = sorted(enumerate(phases), key=lambda item: (rank.get(item[1], len(rank)), item[0]))
    return {phase: phases[phase] for _, phase in ordered}


def _classify(message: SentMessage, attributed: dict[str, str | None], lines: list[dict[str, Any]], still_queued: set[str]) -> MessageOutcome:
    finals = [line for line in lines if line["outcome"] in ("delivered", "bounced", "dropped")]
    final = finals[-1] if finals else None
    certificate = (final or (lines[-1] if lines else {})).get("certificate") or {}
    deferred = message.submit_deferrals > 0 or any(line["outcome"] == "deferred" for line in lines)

    if message.message_id in attributed:
        state = "accepted"
    elif final is not None and final["outcome"] in ("bounced", "dropped"):
        state = "rejected"
    elif not message.queued or message.message_id in still_queued:
        state = "pending"
    else:
        state = "lost"
    return MessageOutcome(message, state, deferred, attributed.get(message.message_id), certificate.get("mode"),
                          final["reply"] if final else message.reply)


def _count(counts: PhaseCounts, outcome: MessageOutcome) -> None:
    counts.sent += 1
    setattr(counts, outcome.state, getattr(counts, outcome.state) + 1)
    counts.deferred += int(outcome.deferred)
    counts.misattributed += int(outcome.state == "accepted" and outcome.attributed_to != outcome.message.tenant_id)
    if outcome.message.kind == NULL_OUTSIDE:
        counts.null_outside_sent += 1
        counts.null_outside_accepted += int(outcome.state == "accepted")


async def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def upgrade_phase_reader(engine) -> Callable[[str], str]:
    """Return a `phase_of` that reads the tenant's upgrade state from the store ("not-requested" when none)."""
    from sqlalchemy import select

    from tenanttls.store.schema import upgrades

    def phase_of(tenant_id: str) -> str:
        with engine.connect() as connection:
            state = connection.execute(select(upgrades.c.state).where(upgrades.c.tenant_id == tenant_id)).scalar_one_or_none()
        return state or "not-requested"

    return phase_of


def queued_message_ids(queue) -> set[str]:
    """Return the Message-IDs of the messages in a relay queue (`MessageQueue`)."""
    return {message.message_id for message in queue.snapshot() if message.message_id}
