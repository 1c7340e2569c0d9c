"""The relay's durable queue: one message file and one state file per queued message.

Layout of the queue folder:

    messages/<id>.eml    the message as it will be delivered, written once
    messages/<id>.json   the envelope and delivery state, replaced atomically
    tmp/                 files being written
    outcomes.jsonl       one line per delivery outcome, appended

`enqueue` returns only after both files and the folder entry are on disk (fsync), so
the relay replies 250 only for mail that survives a crash. A message is queued when
its state file exists: an ``.eml`` without one is a write that never completed (its
sender got no 250) or a message already finished, and `recover` removes it.

Before the message data is sent, the state file records the attempt (`in_flight`).
If the process dies between the smart host's 250 and the state update, `recover`
cannot know whether the smart host took the message. It delivers it again and
writes a ``possible-duplicate`` outcome, so every message ends delivered once or
reported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

from tenanttls.clock import Clock, SystemClock
from tenanttls.errors import RelayError

logger = logging.getLogger(__name__)

# Recipient states. FAILED recipients wait for their DSN to be queued; then they become
# BOUNCED, or DROPPED when the message had the null sender and gets no DSN.
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
BOUNCED = "bounced"
DROPPED = "dropped"

KIND_MESSAGE = "message"
KIND_DSN = "dsn"


@dataclass
class RecipientState:
    """One recipient of a queued message and the last reply for it."""

    address: str
    status: str = PENDING
    reply: str | None = None


@dataclass
class QueuedMessage:
    """The envelope and delivery state of one queued message."""

    id: str
    tenant_id: str
    mail_from: str
    recipients: list[RecipientState]
    received_at: datetime
    next_attempt_at: datetime
    message_id: str | None = None
    mail_options: list[str] = field(default_factory=list)
    kind: str = KIND_MESSAGE
    attempts: int = 0
    in_flight: bool = False  # message data was being sent when this state was written

    @property
    def pending(self) -> list[RecipientState]:
        return [recipient for recipient in self.recipients if recipient.status == PENDING]

    @property
    def failed(self) -> list[RecipientState]:
        """Recipients given up on whose DSN is not queued yet."""
        return [recipient for recipient in self.recipients if recipient.status == FAILED]

    @property
    def is_finished(self) -> bool:
        return not self.pending and not self.failed

    @property
    def last_reply(self) -> str | None:
        """The reply of the last attempt to the first pending recipient that has one, or None before any attempt."""
        for recipient in self.pending:
            if recipient.reply is not None:
                return recipient.reply
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["received_at"] = self.received_at.isoformat()
        data["next_attempt_at"] = self.next_attempt_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueuedMessage:
        data = dict(data)
        data["recipients"] = [RecipientState(**recipient) for recipient in data["recipients"]]
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        data["next_attempt_at"] = datetime.fromisoformat(data["next_attempt_at"])
        return cls(**data)


@dataclass(frozen=True)
class Recovery:
    """The result of `MessageQueue.recover` at start."""

    queued: int
    possible_duplicates: list[str]
    removed_partial: int


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class MessageQueue:
    """Queued messages on disk, with an in-memory index of their states. Thread-safe.

    `durable=False` skips fsync; only benchmarks that measure the cost of fsync use it.
    `create=False` leaves the folders as they are, for readers such as ``tenanttls relay-queue``
    that must not create a queue where none exists.
    """

    def __init__(self, directory: Path, *, clock: Clock | None = None, durable: bool = True, create: bool = True) -> None:
        self.directory = Path(directory)
        self._messages_dir = self.directory / "messages"
        self._tmp_dir = self.directory / "tmp"
        self._outcomes_path = self.directory / "outcomes.jsonl"
        self._clock = clock or SystemClock()
        self._durable = durable
        self._lock = threading.Lock()
        self._index: dict[str, QueuedMessage] = {}

        if create:
            for folder in (self.directory, self._messages_dir, self._tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)

    # -- writing

    def _write_file(self, path: Path, data: bytes) -> None:
        """Write `data` to `path` through a temporary file and rename, fsyncing both when durable."""
        temporary = self._tmp_dir / f"{path.name}.{uuid.uuid4().hex}"
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            if self._durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)

    def _sync_folder(self) -> None:
        if self._durable:
            _fsync_directory(self._messages_dir)

    def enqueue(
        self,
        *,
        tenant_id: str,
        mail_from: str,
        recipients: Iterable[str],
        content: bytes,
        message_id: str | None = None,
        mail_options: Iterable[str] = (),
        kind: str = KIND_MESSAGE,
    ) -> QueuedMessage:
        """Store a message durably and return its state; raise `RelayError` when the disk write fails."""
        now = self._clock.now()
        message = QueuedMessage(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            mail_from=mail_from,
            recipients=[RecipientState(address) for address in recipients],
            received_at=now,
            next_attempt_at=now,
            message_id=message_id,
            mail_options=list(mail_options),
            kind=kind,
        )
        try:
            self._write_file(self._messages_dir / f"{message.id}.eml", content)
            self._write_state(message)
        except OSError as error:
            raise RelayError(f"failed to write queue file in {self._messages_dir}: {error.strerror}; check free disk space") from error

        with self._lock:
            self._index[message.id] = message
        return message

    def _write_state(self, message: QueuedMessage) -> None:
        self._write_file(self._messages_dir / f"{message.id}.json", json.dumps(message.to_json()).encode())
        self._sync_folder()

    def save(self, message: QueuedMessage) -> None:
        """Write the message's state atomically (and durably)."""
        self._write_state(message)
        with self._lock:
            self._index[message.id] = message

    def remove(self, message: QueuedMessage) -> None:
        """Delete a finished message: the state file first, so a crash leaves no queued state behind."""
        with self._lock:
            self._index.pop(message.id, None)
        for suffix in (".json", ".eml"):
            try:
                os.unlink(self._messages_dir / f"{message.id}{suffix}")
            except FileNotFoundError:
                pass
        self._sync_folder()

    # -- reading

    def content(self, message: QueuedMessage) -> bytes:
        """Return the message data; raise `RelayError` when the file is gone or unreadable."""
        path = self._messages_dir / f"{message.id}.eml"
        try:
            return path.read_bytes()
        except OSError as error:
            raise RelayError(f"failed to read queued message {message.id} of tenant {message.tenant_id}: {error.strerror}") from error

    def get(self, message_id: str) -> QueuedMessage | None:
        with self._lock:
            return self._index.get(message_id)

    def all(self) -> list[QueuedMessage]:
        """Return every queued message, oldest first."""
        with self._lock:
            messages = list(self._index.values())
        return sorted(messages, key=lambda message: message.received_at)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def snapshot(self) -> list[QueuedMessage]:
        """Read the queued states from disk without changing anything (safe while a relay runs)."""
        messages = []
        for path in self._messages_dir.glob("*.json"):
            try:
                messages.append(QueuedMessage.from_json(json.loads(path.read_bytes())))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # finished or being replaced at this moment
        return sorted(messages, key=lambda message: message.received_at)

    # -- start-up

    def recover(self) -> Recovery:
        """Load the queue after a start, remove partial writes and report interrupted deliveries.

        A message whose state has `in_flight` set may have been delivered already; it is
        delivered again and a ``possible-duplicate`` outcome is written for it.
        """
        for leftover in self._tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)

        states = {path.stem for path in self._messages_dir.glob("*.json")}
        removed = 0
        for path in self._messages_dir.glob("*.eml"):
            if path.stem not in states:
                path.unlink(missing_ok=True)
                removed += 1

        duplicates: list[str] = []
        loaded: dict[str, QueuedMessage] = {}
        for stem in sorted(states):
            message = self._load_state(stem)
            if message is None:
                continue
            if message.in_flight:
                duplicates.append(message.id)
                self._report_possible_duplicate(message)
                message.in_flight = False
                self._write_state(message)
            loaded[message.id] = message

        with self._lock:
            self._index = loaded
        logger.info(
            "relay queue: recovered queued=%d possible_duplicates=%d removed_partial=%d dir=%s",
            len(loaded), len(duplicates), removed, self.directory,
        )
        return Recovery(len(loaded), duplicates, removed)

    def _load_state(self, stem: str) -> QueuedMessage | None:
        path = self._messages_dir / f"{stem}.json"
        try:
            return QueuedMessage.from_json(json.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            # NOTE: a damaged state file is moved aside, not deleted, so an operator can recover the message.
            aside = path.with_suffix(".damaged")
            path.rename(aside)
            logger.error("relay queue: damaged state file moved aside path=%s error=%s", aside, error)
            return None

    def _report_possible_duplicate(self, message: QueuedMessage) -> None:
        for recipient in message.pending:
            self.record_outcome(message, recipient.address, "possible-duplicate",
                                "delivery was interrupted after the data was sent; delivering again")
        logger.warning(
            "relay queue: delivery interrupted by a stop, delivering again tenant=%s queue_id=%s message_id=%s",
            message.tenant_id, message.id, message.message_id,
        )

    # -- outcomes

    def record_outcome(
        self,
        message: QueuedMessage,
        recipient: str,
        outcome: str,
        reply: str | None,
        *,
        certificate: dict[str, Any] | None = None,
    ) -> None:
        """Append one outcome line: delivered, deferred, bounced, dropped, expired or possible-duplicate."""
        line = {
            "at": self._clock.now().isoformat(),
            "queue_id": message.id,
            "message_id": message.message_id,
            "tenant_id": message.tenant_id,
            "kind": message.kind,
            "mail_from": message.mail_from,
            "recipient": recipient,
            "outcome": outcome,
            "reply": reply,
            "attempt": message.attempts,
            "certificate": certificate,
        }
        # The queue files, not this file, decide what is delivered again after a crash, so a
        # line is written without fsync: it survives a killed process but not a power loss.
        # NOTE: the outcome file grows without limit; rotate it with the host's log rotation.
        with self._lock:
            with open(self._outcomes_path, "ab") as handle:
                handle.write(json.dumps(line).encode() + b"\n")

    def outcomes(self) -> list[dict[str, Any]]:
        """Return every outcome line written so far, oldest first."""
        try:
            text = self._outcomes_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        outcomes = []
        for line in text.splitlines():
            try:
                outcomes.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a crash
        return outcomes


def next_attempt(schedule: tuple[float, ...], attempts: int, now: datetime) -> datetime:
    """Return when to retry after `attempts` failed attempts; the schedule's last delay repeats."""
    delay = schedule[min(max(attempts, 1), len(schedule)) - 1]
    return now + timedelta(seconds=delay)
